//! Several BERT teachers that share the student's vocabulary (issue 21, item 4):
//! `teacher.also` with kd_mlm/kd_nsp runs every teacher on the student's ids and averages
//! their soft MLM and NSP targets, each weighted. The arithmetic of the mixture is checked
//! by hand in tests/losses.rs; here, whole runs against identities that hold for any
//! teachers and students:
//!
//! KL(Σ wᵢpᵢ ‖ q) = Σ wᵢ CE(pᵢ, q) − H(Σ wᵢpᵢ), and CE(pᵢ, q) = KL(pᵢ ‖ q) + H(pᵢ), so
//! L_mix(q) = Σ wᵢ Lᵢ(q) − G, where G = H(Σ wᵢpᵢ) − Σ wᵢ H(pᵢ) ≥ 0 depends on the teachers
//! alone. For two students q₁, q₂ on the same batches: L_mix(q₁) − L_mix(q₂) =
//! Σ wᵢ (Lᵢ(q₁) − Lᵢ(q₂)) exactly; and L_mix ≤ Σ wᵢ Lᵢ.

mod common;

use std::path::{Path, PathBuf};

use destila::bert::Heads;

const ALL: Heads = Heads::ALL;

fn tiny(dir: &Path, seed: i64, heads: Heads) -> PathBuf {
    common::tiny_bert(dir, 2, seed, heads)
}

fn student(dir: &Path, seed: i64) -> PathBuf {
    common::tiny_bert(dir, 1, seed, ALL)
}

/// Random tiny models predict nearly uniformly (their KLs differ by 1e-4 or less); a bias of
/// standard deviation `std` on the MLM and NSP outputs makes them disagree clearly. The bias
/// is drawn from its own generator seeded with `seed`, not from libtorch's global one, which
/// the tests of this binary share while they run in parallel; and two teachers get different
/// widths, so their losses against a near-uniform student differ by construction rather than
/// by the luck of two draws of one width.
fn sharpen(dir: &Path, seed: u64, std: f64) {
    use rand::{Rng, SeedableRng};
    let path = dir.join("model.safetensors");
    let mut named = tch::Tensor::read_safetensors(&path).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut found = 0;
    for (name, t) in named.iter_mut() {
        if name == "cls.predictions.bias" || name == "cls.seq_relationship.bias" {
            // MLM: uniform on [-√3·std, √3·std], standard deviation `std`. NSP has two
            // logits, and two random draws may land close together (on another CPU's
            // generator they did, and two students then agreed by chance): +std and −std
            // instead, the same direction for every model, so that how far each model
            // leans is set by `std` alone.
            let a = 3f64.sqrt() * std;
            let noise: Vec<f32> = if name == "cls.seq_relationship.bias" {
                vec![std as f32, -std as f32]
            } else {
                (0..t.numel())
                    .map(|_| rng.random_range(-a..a) as f32)
                    .collect()
            };
            *t = &*t + tch::Tensor::from_slice(&noise).view(t.size().as_slice());
            found += 1;
        }
    }
    assert_eq!(found, 2, "the MLM and NSP biases of {}", path.display());
    let refs: Vec<(&str, &tch::Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::Tensor::write_safetensors(&refs, &path).unwrap();
}

fn write_recipe(dir: &Path, teacher: &Path, init: &Path) -> PathBuf {
    let (train, val) = common::corpus(dir);
    let yaml = format!(
        "seed: 1\noutput: {out}\ndevice: cpu\n\
         teacher: {{checkpoint: {t}}}\n\
         student: {{layers: 1, init: {{checkpoint: {s}}}}}\n\
         data: {{train: [{train}], validation: [{val}], max_seq_len: 32, cache_dir: {cache}}}\n\
         losses: {{kd_mlm: {{weight: 1.0}}, kd_nsp: {{weight: 1.0}}, temperature: 2.0}}\n\
         optimizer: {{learning_rate: 0.001, warmup_steps: 0}}\n\
         training: {{steps: 1, batch_size: 8, eval_every: 0, eval_batches: 2, log_every: 1}}\n",
        out = dir.join("run").display(),
        t = teacher.display(),
        s = init.display(),
        train = train.display(),
        val = val.display(),
        cache = dir.join("cache").display(),
    );
    let path = dir.join("recipe.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn distill(recipe: &Path, out: &Path, sets: &[String]) -> (bool, String) {
    let mut c = common::destila();
    c.args(["--threads", "2", "distill", "--quiet"]).arg(recipe);
    c.args(["--set", &format!("output={}", out.display())]);
    for s in sets {
        c.args(["--set", s]);
    }
    let r = c.output().unwrap();
    (
        r.status.success(),
        String::from_utf8_lossy(&r.stderr).into(),
    )
}

/// The validation row at step 0 (before any update): kd_mlm and kd_nsp.
fn step0(out: &Path) -> [f64; 2] {
    let rows = destila::distill::metrics::read(&out.join("metrics.csv")).unwrap();
    let r = rows
        .iter()
        .find(|r| r["split"] == "validation" && r["step"] == "0")
        .expect("a validation row at step 0");
    [r["kd_mlm"].parse().unwrap(), r["kd_nsp"].parse().unwrap()]
}

fn also(entries: &[(&Path, f64)]) -> String {
    let list: Vec<String> = entries
        .iter()
        .map(|(p, w)| format!("{{checkpoint: {}, weight: {w}}}", p.display()))
        .collect();
    format!("teacher.also=[{}]", list.join(", "))
}

#[test]
fn averaged_soft_targets_obey_the_mixture_identities() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = tiny(&d.join("a"), 3, ALL);
    let b = tiny(&d.join("b"), 11, ALL);
    sharpen(&a, 1, 2.0);
    sharpen(&b, 2, 4.0);
    // A copy of A in another folder: the same teacher, not refused as listed twice.
    let a2 = d.join("a-copy");
    std::fs::create_dir_all(&a2).unwrap();
    for f in std::fs::read_dir(&a).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, a2.join(f.file_name().unwrap())).unwrap();
    }
    let students = [student(&d.join("s1"), 5), student(&d.join("s2"), 6)];
    sharpen(&students[1], 3, 2.0);
    let recipe = write_recipe(d, &a, &students[0]);
    let run = |name: &str, s: usize, sets: Vec<String>| -> [f64; 2] {
        let out = d.join(name);
        let mut sets = sets;
        sets.push(format!("student.init.checkpoint={}", students[s].display()));
        let (ok, err) = distill(&recipe, &out, &sets);
        assert!(ok, "{name}: {err}");
        step0(&out)
    };
    let set_b = format!("teacher.checkpoint={}", b.display());
    let mut l = std::collections::HashMap::new();
    for s in 0..2 {
        l.insert(("a", s), run(&format!("a{s}"), s, vec![]));
        l.insert(("b", s), run(&format!("b{s}"), s, vec![set_b.clone()]));
        l.insert(
            ("ab", s),
            run(
                &format!("ab{s}"),
                s,
                vec!["teacher.weight=3".into(), also(&[(&b, 1.0)])],
            ),
        );
    }
    // The weights' ratio is what counts; a teacher averaged with a copy of itself is itself.
    let ab62 = run(
        "ab62",
        0,
        vec![
            "teacher.weight=6".into(),
            also(&[(&b, 2.0)]),
            // The mixture of soft targets is what `combine: targets` names (and the default).
            "teacher.combine=targets".into(),
        ],
    );
    let aa = run("aa", 0, vec![also(&[(&a2, 1.0)])]);
    for (k, name) in ["kd_mlm", "kd_nsp"].iter().enumerate() {
        let (la, lb, lab) = (l[&("a", 0)][k], l[&("b", 0)][k], l[&("ab", 0)][k]);
        assert!(
            (la - lb).abs() > 1e-2,
            "{name}: the teachers agree ({la}, {lb})"
        );
        assert!(
            (ab62[k] - lab).abs() < 1e-5 * lab.max(1.0),
            "{name}: 6:2 {} against 3:1 {lab}",
            ab62[k]
        );
        assert!(
            (aa[k] - la).abs() < 1e-5 * la.max(1.0),
            "{name}: A with its copy {} against A {la}",
            aa[k]
        );
        // Jensen: the loss against the mean is at most the mean of the losses, and not
        // equal to it when the teachers differ.
        let mean = 0.75 * la + 0.25 * lb;
        assert!(
            lab < mean - 1e-3,
            "{name}: mixture {lab}, weighted mean {mean}"
        );
        assert!(lab > 0.0, "{name}: {lab}");
        // What reaches the student is the weighted mean: the difference between two
        // students is 3/4 of A's difference plus 1/4 of B's.
        let diff = |t: &str| l[&(t, 0)][k] - l[&(t, 1)][k];
        let want = 0.75 * diff("a") + 0.25 * diff("b");
        eprintln!(
            "{name}: A {la}, B {lb}, mixture {lab}; differences {} {} {} (want {want})",
            diff("a"),
            diff("b"),
            diff("ab")
        );
        assert!(
            (diff("ab") - want).abs() < 1e-5 * want.abs().max(1e-2),
            "{name}: mixture difference {}, 3/4 A's + 1/4 B's = {want}",
            diff("ab")
        );
        assert!(want.abs() > 1e-2, "{name}: the students agree ({want})");
    }

    // And it trains: 12 steps against the pair lower the validation loss.
    let out = d.join("train");
    let (ok, err) = distill(
        &recipe,
        &out,
        &[
            "teacher.weight=3".into(),
            also(&[(&b, 1.0)]),
            "training.steps=12".into(),
            "training.eval_every=12".into(),
        ],
    );
    assert!(ok, "{err}");
    let val: Vec<f64> = destila::distill::metrics::read(&out.join("metrics.csv"))
        .unwrap()
        .into_iter()
        .filter(|r| r["split"] == "validation")
        .map(|r| r["loss"].parse().unwrap())
        .collect();
    assert!(
        val.len() >= 2 && val.last().unwrap() < &val[0],
        "validation loss {val:?}"
    );
}

/// What averaged soft targets cannot do is refused by field before any work.
#[test]
fn averaged_teachers_refuse_what_they_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let a = tiny(&d.join("a"), 3, ALL);
    let b = tiny(&d.join("b"), 11, ALL);
    let no_nsp = tiny(&d.join("no-nsp"), 12, Heads { nsp: false, ..ALL });
    // Another vocabulary: the tiny fixture BERT (1,000 pieces) with a vocab.txt of its own.
    let other = d.join("other-vocab");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(common::fixtures().join("tiny-gelu").join(f), other.join(f)).unwrap();
    }
    let words: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .chain((5..1000).map(|i| format!("w{i}")))
        .collect();
    std::fs::write(other.join("vocab.txt"), words.join("\n") + "\n").unwrap();
    let s = student(&d.join("s"), 5);
    let recipe = write_recipe(d, &a, &s);
    let mpnet = common::fixtures().join("tiny-mpnet");
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (
            vec![also(&[(&mpnet, 1.0)])],
            "teacher.also[0].checkpoint",
            "not a BERT",
        ),
        (
            vec![also(&[(&other, 1.0)])],
            "teacher.also[0].checkpoint",
            "vocabulary",
        ),
        (
            vec![also(&[(&no_nsp, 1.0)])],
            "teacher.also[0].checkpoint",
            "no NSP head",
        ),
        (
            vec![also(&[(&b, 0.0)])],
            "teacher.also[0].weight",
            "positive",
        ),
        (
            vec![also(&[(&a, 1.0)])],
            "teacher.also[0].checkpoint",
            "the same teacher",
        ),
        (
            vec![also(&[(&b, 1.0)]), "losses.hidden_mse.weight=1".into()],
            "losses.hidden_mse",
            "averaged",
        ),
        (
            vec![also(&[(&b, 1.0)]), "job=fit-heads".into()],
            "job",
            "only job: distill",
        ),
        (
            vec![also(&[(&b, 1.0)]), "teacher.heads=fit".into()],
            "teacher.heads",
            "its own MLM/NSP heads",
        ),
        (
            vec![
                also(&[(&b, 1.0)]),
                format!("teacher.targets={{dir: {}}}", d.join("t").display()),
            ],
            "teacher.targets",
            "one teacher",
        ),
        (
            vec![also(&[(&b, 1.0)]), "teacher.combine=losses".into()],
            "teacher.combine",
            "mixture",
        ),
    ];
    for (sets, field, what) in cases {
        let out = d.join("run");
        let (ok, err) = distill(&recipe, &out, &sets);
        assert!(!ok, "{sets:?} ran");
        assert!(
            err.contains(field) && err.contains(what),
            "{sets:?}: wanted {field} and {what:?} in: {err}"
        );
        assert!(!out.join("metrics.csv").exists(), "{sets:?}: work started");
        // recipe check refuses alike (the head check needs the weights: distill's).
        if field != "teacher.also[0].checkpoint" || what != "no NSP head" {
            let mut c = common::destila();
            c.args(["recipe", "check"]).arg(&recipe);
            for s in &sets {
                c.args(["--set", s]);
            }
            let r = c.output().unwrap();
            let e = String::from_utf8_lossy(&r.stderr);
            assert!(
                !r.status.success() && e.contains(field),
                "recipe check {sets:?}: {e}"
            );
        }
    }
    // A target cache is one teacher's: `destila targets` refuses a list.
    let r = common::destila()
        .args(["targets", "--quiet"])
        .arg(&recipe)
        .args(["--set", &also(&[(&b, 1.0)])])
        .args(["--out", d.join("targets").to_str().unwrap()])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && e.contains("teacher.also"), "{e}");
    assert!(!d.join("targets").exists());
}
