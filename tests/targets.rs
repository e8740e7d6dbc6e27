//! The teacher-target cache: written by `destila targets`, read back equal to the live
//! teacher (within fp16), refused when made for another teacher or data, and a distillation
//! from a full-vocabulary cache follows the one with the live teacher.

mod common;

use std::path::{Path, PathBuf};

use destila::bert::{self, BertConfig, ForwardOptions, Heads, MlmPositions};
use destila::data::{self, Cursor, Loader};
use destila::distill::recipe::Recipe;
use destila::distill::targets::{self, Cache};
use tch::{Kind, Tensor};

fn teacher(dir: &Path, seed: i64) -> PathBuf {
    let cfg = BertConfig {
        num_hidden_layers: 2,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        ..Default::default()
    };
    common::random_checkpoint(dir, &cfg, Heads::ALL, seed, true, true)
}

/// A recipe over a short stretch of Persuasion (an epoch of a few batches), with a cache.
fn recipe(dir: &Path, teacher: &Path, cache: &str, losses: &str) -> PathBuf {
    let text =
        std::fs::read_to_string(common::root().join("data/austen/validation/persuasion.txt"))
            .unwrap();
    let paras: Vec<&str> = text.split("\n\n").filter(|p| p.trim().len() > 40).collect();
    let (train, val) = (dir.join("train.txt"), dir.join("val.txt"));
    std::fs::write(&train, paras[..24].join("\n\n")).unwrap();
    std::fs::write(&val, paras[300..330].join("\n\n")).unwrap();
    let yaml = format!(
        "seed: 1\noutput: {out}\ndevice: cpu\nteacher: {{checkpoint: {t}{cache}}}\n\
         data: {{train: [{train}], validation: [{val}], max_seq_len: 32, cache_dir: {shards}}}\n\
         student: {{layers: 1, init: from-teacher, teacher_layers: [1]}}\n\
         losses: {{temperature: 2.0, {losses}}}\n\
         optimizer: {{learning_rate: 0.003, warmup_steps: 1}}\n\
         training: {{steps: 6, batch_size: 4, eval_every: 0, eval_batches: 2, checkpoint_every: 0, log_every: 1}}\n",
        out = dir.join("run").display(),
        t = teacher.display(),
        train = train.display(),
        val = val.display(),
        shards = dir.join("shards").display(),
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn targets_cli(recipe: &Path, extra: &[&str]) -> std::process::Output {
    common::destila()
        .args(["targets", recipe.to_str().unwrap(), "--quiet"])
        .args(extra)
        .output()
        .unwrap()
}

/// A tiny teacher and a recipe whose `teacher.targets` is `{dir: DIR/cache, <targets>}`.
struct Setup {
    dir: tempfile::TempDir,
    teacher: PathBuf,
    cache: PathBuf,
    /// The `, targets: {...}` text inside the recipe's teacher section.
    cache_yaml: String,
    path: PathBuf,
}

fn setup(targets: &str, losses: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let teacher = teacher(&dir.path().join("teacher"), 3);
    let cache = dir.path().join("cache");
    let cache_yaml = format!(", targets: {{dir: {}, {targets}}}", cache.display());
    let path = recipe(dir.path(), &teacher, &cache_yaml, losses);
    Setup {
        dir,
        teacher,
        cache,
        cache_yaml,
        path,
    }
}

/// `distill RECIPE --quiet --force EXTRA...`: whether it succeeded, and its stderr.
fn distill_with(recipe: &Path, extra: &[&str]) -> (bool, String) {
    let out = common::destila()
        .args(["distill", recipe.to_str().unwrap(), "--quiet", "--force"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `out`, after checking that its command succeeded (its stderr otherwise).
fn succeeded(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

const KD: &str =
    "kd_mlm: {weight: 1.0}, kd_nsp: {weight: 1.0}, mlm: {weight: 0.5}, nsp: {weight: 0.5}";

#[test]
fn a_cache_holds_the_teachers_top_k_and_nsp_logits_and_pooled_embeddings() {
    let Setup {
        teacher: t,
        cache,
        path,
        dir: _dir,
        ..
    } = setup("top_k: 5, pooled: true", KD);
    let out = succeeded(targets_cli(&path, &[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("bytes/token"), "{stdout}");

    let r = Recipe::from_file(&path).unwrap();
    let tok = r.tokenizer().unwrap();
    let sets = data::prepare(&r.data, &tok).unwrap();
    let c = Cache::open(&cache, &targets::key(&r, &sets).unwrap()).unwrap();
    let m = &c.manifest;
    assert_eq!((m.top_k, m.pooled, m.id_dtype.as_str()), (5, true, "int16"));
    assert_eq!(c.batches("validation"), 2);

    // Batch for batch, the cache equals the live pipeline and the live teacher.
    let model = bert::load(&t, &Default::default()).unwrap();
    let lo = data::loader_options(&r.data, &tok, 4, r.seed);
    let mut live = Loader::new(
        sets.train.corpus.clone(),
        sets.train.docs.clone(),
        lo,
        Cursor::default(),
    );
    let mut n = 0;
    let (mut masked, mut tokens) = (0i64, 0i64);
    while let Some(b) = live.next_batch() {
        let s = c.batch("train", n, tok.pad_id).unwrap();
        assert_eq!(s.inputs.input_ids, b.inputs.input_ids, "batch {n}");
        assert_eq!(s.inputs.token_type_ids, b.inputs.token_type_ids);
        assert_eq!(s.labels, b.labels);
        assert_eq!(s.masked_positions, b.masked_positions);
        assert_eq!(s.nsp_labels, b.nsp_labels);
        masked += b.masked_positions.size()[0];
        tokens += b.inputs.attention_mask.sum(Kind::Int64).int64_value(&[]);
        let o = model
            .forward(
                &b.inputs,
                &ForwardOptions {
                    mlm: MlmPositions::Flat(b.masked_positions.shallow_clone()),
                    nsp: true,
                    ..Default::default()
                },
            )
            .unwrap();
        let logits = o.mlm_logits.unwrap();
        let (v, i) = logits.topk(5, -1, true, true);
        let tg = s.targets.as_ref().unwrap();
        assert_eq!(tg.topk_ids, i, "batch {n}");
        // fp16 keeps 11 significant bits.
        let rel =
            |a: &Tensor, b: &Tensor| ((a - b).abs() / (b.abs() + 1e-3)).max().double_value(&[]);
        assert!(rel(&tg.topk_logits, &v) < 1e-3);
        assert!(rel(&tg.nsp_logits, &o.nsp_logits.unwrap()) < 1e-3);
        // The tail: log of the teacher's mass off its top 5, at the recipe's T = 2.
        let lp = (&logits / 2.0).log_softmax(-1, Kind::Float);
        let off = lp.exp().sum_dim_intlist(-1, false, Kind::Float)
            - lp.gather(-1, &i, false)
                .exp()
                .sum_dim_intlist(-1, false, Kind::Float);
        assert!((&tg.tail - off.log()).abs().max().double_value(&[]) < 1e-4);
        let h = o.hidden_states.last().unwrap();
        let mask = b.inputs.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
        let pooled = (h * &mask).sum_dim_intlist(1, false, Kind::Float)
            / mask.sum_dim_intlist(1, false, Kind::Float);
        assert!(rel(tg.pooled.as_ref().unwrap(), &pooled) < 2e-3);
        n += 1;
        if live.cursor().epoch > 0 || n == c.batches("train") {
            break;
        }
    }
    assert_eq!(n, c.batches("train"));
    let train = &m.splits["train"];
    assert_eq!((train.masked as i64, train.tokens as i64), (masked, tokens));
    // Top-k storage: k ids (int16), k fp16 logits and an fp32 tail per masked token.
    assert_eq!(train.topk_bytes, train.masked * (5 * 4 + 4));
}

#[test]
fn a_sampled_cache_holds_draws_from_the_teachers_distribution_at_the_kd_temperature() {
    let n = 2000usize;
    let Setup {
        teacher: t,
        cache,
        path,
        dir: _dir,
        ..
    } = setup(&format!("sample: {n}"), KD);
    let out = succeeded(targets_cli(&path, &[]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("2000 draws per masked token"), "{stdout}");
    let r = Recipe::from_file(&path).unwrap();
    let tok = r.tokenizer().unwrap();
    let sets = data::prepare(&r.data, &tok).unwrap();
    let c = Cache::open(&cache, &targets::key(&r, &sets).unwrap()).unwrap();
    assert_eq!((c.manifest.sample, c.manifest.top_k), (Some(n), n));
    let model = bert::load(&t, &Default::default()).unwrap();
    // Per masked token, the mean of log p(drawn id) against its expectation under p (at the
    // recipe's T = 2), summed over tokens in standard deviations; and the same expectation
    // had the draws been uniform over the vocabulary, which they must be far from.
    let (mut diff, mut var, mut uniform_gap, mut rows) = (0.0, 0.0, 0.0, 0);
    for i in 0..c.batches("train") {
        let b = c.batch("train", i, tok.pad_id).unwrap();
        let o = model
            .forward(
                &b.inputs,
                &ForwardOptions {
                    mlm: MlmPositions::Flat(b.masked_positions.shallow_clone()),
                    ..Default::default()
                },
            )
            .unwrap();
        let lp = (o.mlm_logits.unwrap() / 2.0).log_softmax(-1, Kind::Double);
        let tg = b.targets.unwrap();
        let counts = (tg.topk_logits.to_kind(Kind::Double) / 2.0).exp();
        let used = tg.topk_logits.gt(-1e4).to_kind(Kind::Double);
        let counts = &counts * &used;
        for row in 0..counts.size()[0] {
            let total = counts.get(row).sum(Kind::Double).double_value(&[]);
            assert!((total - n as f64).abs() < 0.01 * n as f64, "{total}");
            let ids = tg.topk_ids.get(row);
            let kept = used.get(row).sum(Kind::Double).int64_value(&[]);
            let distinct = ids.narrow(0, 0, kept).unique_dim(0, false, false, false).0;
            assert_eq!(distinct.size()[0], kept, "a token in two slots");
            let l = lp.get(row);
            let obs = (counts.get(row) * l.gather(0, &ids, false)).sum(Kind::Double) / n as f64;
            let p = l.exp();
            let mean = (&p * &l).sum(Kind::Double);
            let sq = (&p * &l * &l).sum(Kind::Double);
            diff += (obs - &mean).double_value(&[]);
            var += (sq - &mean * &mean).double_value(&[]) / n as f64;
            uniform_gap += (mean - l.mean(Kind::Double)).double_value(&[]);
            rows += 1;
        }
    }
    let sd = var.sqrt();
    eprintln!("{rows} masked tokens: drawn - expected {diff:.5} (sd {sd:.5}), uniform gap {uniform_gap:.4}");
    assert!(rows > 50);
    assert!(diff.abs() < 5.0 * sd, "{diff} vs sd {sd}");
    assert!(
        uniform_gap > 20.0 * sd,
        "the check could not tell uniform draws: {uniform_gap}"
    );

    // A distillation reads it; a recipe asking for another form is refused by name.
    let distill = |extra: &[&str]| distill_with(&path, extra);
    let (ok, e) = distill(&[]);
    assert!(ok, "{e}");
    let (ok, e) = distill(&["--set", "teacher.targets.sample=500"]);
    assert!(
        !ok && e.contains("teacher.targets.sample") && e.contains("2000 draws"),
        "{e}"
    );
    let (ok, e) = distill(&["--set", "teacher.targets.top_k=8"]);
    assert!(!ok && e.contains("not both"), "{e}");
    let (ok, e) = distill(&["--set", "teacher.targets.sample=0"]);
    assert!(!ok && e.contains("teacher.targets.sample"), "{e}");
    let (ok, e) = distill(&["--set", "losses.temperature=1.0"]);
    assert!(
        !ok && e.contains("losses.temperature") && e.contains("draws"),
        "{e}"
    );
}

#[test]
fn bench_topk_compares_the_top_k_and_draws_with_the_full_soft_targets() {
    let Setup {
        dir, teacher: t, ..
    } = setup("top_k: 4", KD);
    let student = teacher(&dir.path().join("student"), 4);
    // A teacher shaped like a language's token distribution: a Zipf bias on its MLM decoder
    // (logit -1.5 ln rank, so at T = 2 p falls as rank^-0.75: a long, heavy tail), and a
    // student that has learnt the same shape but each token's odds a little off (noise of
    // sd 1 on every logit): what a student made from the teacher's own layers looks like.
    // What the two disagree on is spread over the whole vocabulary, mostly the tail.
    let zipf = |dir: &Path, noise: f64| {
        let m = bert::load(dir, &Default::default()).unwrap();
        tch::manual_seed(11);
        tch::no_grad(|| {
            for (name, mut v) in m.vs.variables() {
                if name.ends_with("predictions.bias") {
                    let n = v.size()[0];
                    let ranks = Tensor::arange(n, (Kind::Float, tch::Device::Cpu)) + 1.0;
                    let e = Tensor::randn([n], (Kind::Float, tch::Device::Cpu)) * noise;
                    v.copy_(&(ranks.log() * -1.0 + e));
                }
            }
        });
        bert::save(&m, dir).unwrap();
    };
    zipf(&t, 0.0);
    zipf(&student, 1.0);
    let out = succeeded(
        common::destila()
            .args(["bench", "topk"])
            .arg(&t)
            .arg(&student)
            .args(["--data"])
            .arg(dir.path().join("train.txt"))
            .args(["--batches", "2", "--batch", "32", "--seq-len", "32"])
            .args(["--k", "64,30522", "--sample", "64,4096,65536"])
            .output()
            .unwrap(),
    );
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let get = |form: &str, k: u64| {
        rows.iter()
            .find(|r| r["form"] == form && r["k"] == k)
            .unwrap_or_else(|| panic!("{rows:?}"))
    };
    let f = |r: &serde_json::Value, key: &str| r[key].as_f64().unwrap();
    // The whole vocabulary is the full KD: the same loss, the same gradient.
    let all = get("top-k", 30522);
    assert!(
        f(all, "relative").abs() < 1e-4
            && (f(all, "grad_cos") - 1.0).abs() < 1e-6
            && (f(all, "grad_norm_ratio") - 1.0).abs() < 1e-4,
        "{all}"
    );
    // The top k are biased: the teacher's top 64 hold a few percent of its mass, the rest
    // is one outcome to them, and their gradient points elsewhere than the full KD's. Draws
    // are unbiased: their gradient converges to the full KD's as N grows (the noise of 64
    // draws over this flat a tail is large; 65,536 draws are within a few degrees).
    eprintln!("{rows:?}");
    let top = get("top-k", 64);
    assert!(f(top, "mass") < 0.1 && f(top, "grad_cos") < 0.9, "{top}");
    let cos: Vec<f64> = [64, 4096, 65536]
        .iter()
        .map(|&n| f(get("sample", n), "grad_cos"))
        .collect();
    assert!(
        cos[0] < cos[1] && cos[1] < cos[2] && cos[2] > 0.98,
        "{cos:?}"
    );
    assert_eq!(
        f(top, "bytes_per_masked"),
        f(get("sample", 64), "bytes_per_masked")
    );
}

#[test]
fn a_cache_made_for_another_teacher_or_data_is_refused() {
    let Setup { dir, path, .. } = setup("top_k: 4", KD);
    succeeded(targets_cli(&path, &[]));
    let distill = |extra: &[&str]| distill_with(&path, extra);
    let (ok, e) = distill(&[]);
    assert!(ok, "{e}");
    let (ok, e) = distill(&["--set", "seed=2"]);
    // The field that differs is named, with both values, in one short line.
    assert!(
        !ok && e.contains("manifest.json") && e.contains("other data settings: seed (1 -> 2)"),
        "{e}"
    );
    assert!(e.len() < 400, "{e}");
    let other = teacher(&dir.path().join("other"), 4);
    let (ok, e) = distill(&["--set", &format!("teacher.checkpoint={}", other.display())]);
    assert!(!ok && e.contains("another teacher (weights"), "{e}");
    // The same vocabulary, read cased: another tokenizer.
    let cased = common::fixtures().join("vocab-cased");
    let (ok, e) = distill(&["--set", &format!("data.tokenizer={}", cased.display())]);
    assert!(!ok && e.contains("another tokenizer"), "{e}");
    let (ok, e) = distill(&["--set", "losses.temperature=3.0"]);
    assert!(
        !ok && e.contains("losses.temperature") && e.contains("temperature 2"),
        "{e}"
    );
    // Another form of MLM targets than the cache holds (it keeps the top 4).
    let (ok, e) = distill(&["--set", "teacher.targets.top_k=8"]);
    assert!(
        !ok && e.contains("teacher.targets.top_k") && e.contains("holds the top 4"),
        "{e}"
    );
    let (ok, e) = distill(&["--set", "losses.pooled_cos.weight=1"]);
    assert!(!ok && e.contains("no pooled embeddings"), "{e}");
    let (ok, e) = distill(&["--set", "losses.hidden_cos.weight=1"]);
    assert!(
        !ok && e.contains("teacher.targets") && e.contains("losses.hidden_cos"),
        "{e}"
    );
    let (ok, e) = distill(&[
        "--set",
        &format!("teacher.targets.dir={}", dir.path().join("none").display()),
    ]);
    assert!(!ok && e.contains("no target cache here"), "{e}");
}

fn losses_of(metrics: &Path) -> Vec<f64> {
    common::train_losses(metrics)
        .into_iter()
        .map(|(_, l)| l)
        .collect()
}

#[test]
fn distilling_from_a_full_vocabulary_cache_follows_the_live_teacher() {
    let losses = format!("{KD}, pooled_cos: {{weight: 1.0}}");
    let Setup {
        dir,
        path,
        cache_yaml,
        ..
    } = setup("top_k: 100000, pooled: true", &losses);
    // Only the batches the run draws (6 steps of one batch), not the whole epoch.
    succeeded(targets_cli(&path, &["--train-batches", "6"]));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("cache/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["splits"]["train"]["batches"], 6, "{manifest}");
    succeeded(
        common::destila()
            .args(["distill", path.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap(),
    );
    // The same recipe without the cache runs the teacher live.
    let live_yaml = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&cache_yaml, "");
    let live_path = dir.path().join("live.yaml");
    std::fs::write(&live_path, live_yaml.replace("/run", "/live")).unwrap();
    succeeded(
        common::destila()
            .args(["distill", live_path.to_str().unwrap(), "--quiet"])
            .output()
            .unwrap(),
    );
    let (a, b) = (
        losses_of(&dir.path().join("run/metrics.csv")),
        losses_of(&dir.path().join("live/metrics.csv")),
    );
    assert_eq!(a.len(), 6);
    eprintln!("cache {a:?}\nlive  {b:?}");
    for (x, y) in a.iter().zip(&b) {
        // The cache stores logits in fp16 (relative error 2^-11 on each logit); on these
        // small logits the losses agree far closer than that.
        assert!((x - y).abs() < 1e-5 * y.abs(), "{a:?}\n{b:?}");
    }
}

#[test]
fn two_ranks_under_torchrun_write_the_same_cache_as_one_process() {
    // The top k, and draws (each batch's generator is seeded by its number, not its rank).
    for form in ["top_k: 6", "sample: 50"] {
        two_ranks(form);
    }
}

fn two_ranks(form: &str) {
    let Setup {
        dir,
        path,
        cache: one,
        ..
    } = setup(form, KD);
    succeeded(targets_cli(&path, &[]));
    let two = dir.path().join("two");
    let torchrun = common::root().join(".venv/bin/torchrun");
    succeeded(
        std::process::Command::new(&torchrun)
            .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
            .arg(env!("CARGO_BIN_EXE_destila"))
            .args(["targets", path.to_str().unwrap(), "--quiet", "--out"])
            .arg(&two)
            .env("OMP_NUM_THREADS", "1")
            .output()
            .unwrap(),
    );
    let r = Recipe::from_file(&path).unwrap();
    let tok = r.tokenizer().unwrap();
    let sets = data::prepare(&r.data, &tok).unwrap();
    let key = targets::key(&r, &sets).unwrap();
    let (a, b) = (
        Cache::open(&one, &key).unwrap(),
        Cache::open(&two, &key).unwrap(),
    );
    let files = std::fs::read_dir(&two)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    assert!(files.iter().any(|f| f.contains("-r1-")), "{files:?}");
    for split in ["train", "validation"] {
        assert_eq!(a.batches(split), b.batches(split));
        for i in 0..a.batches(split) {
            let (x, y) = (
                a.batch(split, i, tok.pad_id).unwrap(),
                b.batch(split, i, tok.pad_id).unwrap(),
            );
            assert_eq!(x.inputs.input_ids, y.inputs.input_ids);
            let (tx, ty) = (x.targets.unwrap(), y.targets.unwrap());
            assert_eq!(tx.topk_ids, ty.topk_ids);
            assert_eq!(tx.topk_logits, ty.topk_logits);
            assert_eq!(tx.nsp_logits, ty.nsp_logits);
        }
    }
}

#[test]
fn a_run_from_the_cache_resumes_exactly_across_epochs() {
    let Setup {
        dir, path, cache, ..
    } = setup("top_k: 8", KD);
    succeeded(targets_cli(&path, &[]));
    let batches = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(cache.join("manifest.json")).unwrap(),
    )
    .unwrap()["splits"]["train"]["batches"]
        .as_u64()
        .unwrap();
    // Long enough to reshuffle into a third epoch; stopped and resumed inside the second.
    let total = 2 * batches + 3;
    let stop = batches + 2;
    let run = |extra: &[String]| {
        succeeded(
            common::destila()
                .args(["distill", path.to_str().unwrap(), "--quiet"])
                .args(["--set", "optimizer.schedule=constant", "--set"])
                .arg(format!("training.checkpoint_every={stop}"))
                .args(extra)
                .output()
                .unwrap(),
        );
    };
    let reference = dir.path().join("reference");
    run(&[
        "--set".into(),
        format!("output={}", reference.display()),
        "--set".into(),
        format!("training.steps={total}"),
    ]);
    run(&["--set".into(), format!("training.steps={stop}")]);
    run(&[
        "--resume".into(),
        "--set".into(),
        format!("training.steps={total}"),
    ]);
    let (a, b) = (
        losses_of(&reference.join("metrics.csv")),
        losses_of(&dir.path().join("run/metrics.csv")),
    );
    assert_eq!(a.len(), total as usize);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() < 1e-6, "{a:?}\n{b:?}");
    }
}
