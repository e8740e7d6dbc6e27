//! Data-parallel distillation over c10d's Gloo on loopback: two ranks with batch b follow
//! one process with batch 2b, their checkpoints resume, and a killed rank is named by the
//! survivor, which stops.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use destila::bert::{BertConfig, Heads};

/// A tiny teacher without dropout (so that the two runs' students see the same function).
fn teacher(dir: &Path) -> PathBuf {
    let cfg = BertConfig {
        num_hidden_layers: 2,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..Default::default()
    };
    common::random_checkpoint(dir, &cfg, Heads::ALL, 3, true, true)
}

/// Every loss kind that averages over a different count: masked positions, sequences,
/// tokens, query rows. A constant learning rate, so that runs of different lengths (and a
/// resumed run made longer) follow one schedule.
fn body(batch: usize, steps: usize) -> String {
    format!(
        "student: {{layers: 1, init: random}}\n\
         losses: {{temperature: 2.0, kd_mlm: {{weight: 1.0}}, kd_nsp: {{weight: 1.0}}, mlm: {{weight: 0.5}}, \
         nsp: {{weight: 0.5}}, hidden_cos: {{weight: 1.0}}, attention_kl: {{weight: 1.0}}}}\n\
         optimizer: {{learning_rate: 0.003, warmup_steps: 1, schedule: constant}}\n\
         training: {{steps: {steps}, batch_size: {batch}, eval_every: 0, eval_batches: 2, checkpoint_every: 3, log_every: 1}}\n"
    )
}

fn torchrun() -> PathBuf {
    let venv = common::root().join(".venv/bin/torchrun");
    if venv.is_file() {
        venv
    } else {
        PathBuf::from("torchrun")
    }
}

fn assert_same(a: &[(u64, f64)], b: &[(u64, f64)], tol: f64) {
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    for ((sa, la), (sb, lb)) in a.iter().zip(b) {
        assert_eq!(sa, sb);
        assert!(
            (la - lb).abs() < tol,
            "step {sa}: {la} vs {lb}\n{a:?}\n{b:?}"
        );
    }
}

fn run_torchrun(recipe: &Path, extra: &[&str]) {
    let out = Command::new(torchrun())
        .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
        .arg(env!("CARGO_BIN_EXE_destila"))
        .args(["distill", recipe.to_str().unwrap(), "--quiet"])
        .args(extra)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "torchrun: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn two_ranks_with_batch_b_follow_one_process_with_batch_2b_and_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = teacher(&dir.join("teacher"));
    let r = common::recipe(dir, &t, &body(4, 6));
    let path = dir.join("recipe.yaml");

    // One process, batch 8, 9 steps: the reference.
    let single = dir.join("single");
    let ok = common::destila()
        .args(["distill", path.to_str().unwrap(), "--quiet", "--set"])
        .arg(format!("output={}", single.display()))
        .args([
            "--set",
            "training.batch_size=8",
            "--set",
            "training.steps=9",
        ])
        .env("OMP_NUM_THREADS", "1")
        .status()
        .unwrap();
    assert!(ok.success());
    let reference = common::train_losses(&single.join("metrics.csv"));

    // Two ranks of batch 4 under torchrun, 6 steps; then resumed from their checkpoint to 9.
    run_torchrun(&path, &[]);
    let two = common::train_losses(&r.output.join("metrics.csv"));
    assert_same(&reference[..6], &two, 1e-5);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(r.output.join("checkpoints/step-000006/state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(state["world"], 2);
    run_torchrun(&path, &["--resume", "--set", "training.steps=9"]);
    let resumed = common::train_losses(&r.output.join("metrics.csv"));
    assert_same(&reference, &resumed, 1e-5);

    // A different number of processes is refused by name.
    let out = common::destila()
        .args(["distill", path.to_str().unwrap(), "--quiet", "--resume"])
        .args(["--set", "training.steps=12"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("2 process(es)") && e.contains("this run has 1"),
        "{e}"
    );
}

#[test]
fn accumulation_and_unused_parameters_under_two_ranks() {
    // No NSP loss: the pooler and NSP head get no gradient (the reducer finds them unused);
    // two micro-batches per step: only the second one's backward is averaged.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = teacher(&dir.join("teacher"));
    let body = body(2, 5)
        .replace(", kd_nsp: {weight: 1.0}", "")
        .replace(", \n         nsp: {weight: 0.5}", "")
        .replace("nsp: {weight: 0.5}, ", "")
        .replace("batch_size: 2,", "batch_size: 2, gradient_accumulation: 2,");
    assert!(!body.contains("nsp"), "{body}");
    let r = common::recipe(dir, &t, &body);
    let path = dir.join("recipe.yaml");
    let single = dir.join("single");
    let ok = common::destila()
        .args(["distill", path.to_str().unwrap(), "--quiet", "--set"])
        .arg(format!("output={}", single.display()))
        .args(["--set", "training.batch_size=4"])
        .env("OMP_NUM_THREADS", "1")
        .status()
        .unwrap();
    assert!(ok.success());
    run_torchrun(&path, &[]);
    assert_same(
        &common::train_losses(&single.join("metrics.csv")),
        &common::train_losses(&r.output.join("metrics.csv")),
        1e-5,
    );
}

#[test]
fn heads_are_fitted_once_under_two_ranks() {
    // A headless teacher: the two ranks fit its heads together (only the heads train, so
    // the reducer holds those), rank 0 caches them, both then distill with them.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let t = common::tiny_teacher(
        &dir.join("teacher"),
        2,
        32,
        4,
        Heads {
            pooler: false,
            mlm: false,
            nsp: false,
        },
    );
    let r = common::recipe(dir, &t, &body(4, 3));
    run_torchrun(&dir.join("recipe.yaml"), &[]);
    let heads = r.output.join("teacher-heads");
    assert!(heads.join("fit.json").is_file());
    let m = destila::bert::load(&heads, &Default::default()).unwrap();
    let has = m.report.unwrap().checkpoint_heads;
    assert!(has.mlm && has.nsp);
    assert_eq!(common::train_losses(&r.output.join("metrics.csv")).len(), 3);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_rank(recipe: &Path, rank: usize, port: u16, timeout_s: u32) -> Child {
    common::destila()
        .args(["distill", recipe.to_str().unwrap(), "--quiet"])
        .env("WORLD_SIZE", "2")
        .env("RANK", rank.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("DESTILA_DIST_TIMEOUT_S", timeout_s.to_string())
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Sends `signal` to `victim` once rank 0 has written a checkpoint; the survivor must exit
/// non-zero within `within`, naming the lost rank; the checkpoint stays loadable. A killed
/// rank closes its sockets (seen at once); a stopped one is found by the timeout.
fn stop_one(victim: usize, signal: &str, timeout_s: u32, within: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let t = teacher(&dir.path().join("teacher"));
    let r = common::recipe(dir.path(), &t, &body(4, 100_000));
    let path = dir.path().join("recipe.yaml");
    let port = free_port();
    let mut ranks = vec![
        spawn_rank(&path, 0, port, timeout_s),
        spawn_rank(&path, 1, port, timeout_s),
    ];
    let ckpt = r.output.join("checkpoints/step-000003/state.json");
    let t0 = Instant::now();
    while !ckpt.is_file() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        for c in &mut ranks {
            assert!(c.try_wait().unwrap().is_none(), "a rank ended early");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let pid = ranks[victim].id().to_string();
    Command::new("kill").args([signal, &pid]).status().unwrap();
    let survivor = ranks.remove(1 - victim);
    let t1 = Instant::now();
    let out = survivor.wait_with_output().unwrap();
    let took = t1.elapsed();
    Command::new("kill").args(["-9", &pid]).status().unwrap();
    ranks[0].wait().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the survivor must fail: {e}");
    assert!(took < within, "took {took:?}: {e}");
    assert!(e.contains(&format!("lost rank {victim}")), "{e}");
    let kept = destila::distill::checkpoint::list(&r.output.join("checkpoints")).unwrap();
    destila::bert::load(kept.last().unwrap(), &Default::default()).unwrap();
}

#[test]
fn a_killed_rank_1_stops_rank_0_with_its_name() {
    stop_one(1, "-KILL", 60, Duration::from_secs(30));
}

#[test]
fn a_killed_rank_0_stops_rank_1_with_its_name() {
    stop_one(0, "-KILL", 60, Duration::from_secs(30));
}

#[test]
fn a_hung_rank_stops_the_other_after_the_timeout() {
    // SIGSTOP: the rank's sockets stay open; its peer waits out DESTILA_DIST_TIMEOUT_S.
    stop_one(1, "-STOP", 5, Duration::from_secs(40));
}

/// A loss column of a run's train rows.
fn column(metrics: &Path, col: &str) -> Vec<(u64, f64)> {
    destila::distill::metrics::read(metrics)
        .unwrap()
        .into_iter()
        .filter(|r| r["split"] == "train")
        .map(|r| (r["step"].parse().unwrap(), r[col].parse().unwrap()))
        .collect()
}

#[test]
fn every_preset_runs_under_two_ranks_like_one_process() {
    // Each shipped recipe, shrunk to tiny models: two ranks of batch 2 against one process
    // of batch 4, 3 steps. Presets whose losses leave parameters without gradients (MiniLM's
    // last-layer attention and values, TinyBERT's layer maps, no NSP) must not stall the
    // reducer. The in-batch similarity loss compares the sequences of one rank's batch, so
    // runs that use it are compared on their other (decomposable) losses at the first step.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cfg = BertConfig {
        num_hidden_layers: 4,
        hidden_size: 32,
        num_attention_heads: 4,
        intermediate_size: 64,
        max_position_embeddings: 64,
        hidden_dropout_prob: 0.0,
        attention_probs_dropout_prob: 0.0,
        ..Default::default()
    };
    let t = common::random_checkpoint(&dir.join("teacher"), &cfg, Heads::ALL, 3, true, true);
    let (train, val) = common::corpus(dir);
    let small = [
        "student.hidden_size=32",
        "student.attention_heads=4",
        "student.intermediate_size=64",
    ];
    let narrow = [
        "student.hidden_size=16",
        "student.attention_heads=4",
        "student.intermediate_size=32",
    ];
    // (preset, overrides, columns compared, rows compared, tolerance). The pretrain
    // student has BERT's default dropout (no teacher to copy 0 from), drawn per rank, so
    // it is held to the dropout noise only.
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], usize, f64);
    let cases: [Case; 6] = [
        (
            "demo",
            // The teacher has its heads: no adaptation (tests/adapt.rs covers that).
            &["student.layers=2", "teacher.heads=fail"],
            &["kd_mlm", "mlm", "pooled_cos"],
            1,
            1e-5,
        ),
        ("embedding", &["student.layers=2"], &["pooled_cos"], 1, 1e-5),
        (
            "distilbert",
            &["student.layers=2", "student.teacher_layers=uniform"],
            &["loss"],
            3,
            1e-5,
        ),
        ("tinybert", &narrow, &["loss"], 3, 1e-5),
        ("minilm", &small, &["loss"], 3, 1e-5),
        ("pretrain", &small, &["loss"], 3, 0.1),
    ];
    for (name, extra, compare, rows, tol) in cases {
        let mut sets: Vec<String> = vec![
            "device=cpu".into(),
            format!("data.train=[{}]", train.display()),
            format!("data.validation=[{}]", val.display()),
            "data.max_seq_len=32".into(),
            // One train entry here: a preset's mixing weights do not apply.
            "data.weights=[]".into(),
            format!("data.cache_dir={}", dir.join("cache").display()),
            "training.steps=3".into(),
            "training.eval_every=0".into(),
            "training.eval_batches=1".into(),
            "training.checkpoint_every=0".into(),
            "training.log_every=1".into(),
            "optimizer.warmup_steps=1".into(),
        ];
        if name == "pretrain" {
            sets.push(format!("data.tokenizer={}", t.display()));
            sets.push("student.layers=2".into());
        } else {
            sets.push(format!("teacher.checkpoint={}", t.display()));
        }
        if matches!(name, "tinybert" | "minilm") {
            sets.push("student.layers=2".into());
        }
        sets.extend(extra.iter().map(|s| s.to_string()));
        let recipe = common::root().join(format!("recipes/{name}.yaml"));
        let go = |out: &Path, batch: usize, ranks: bool| {
            let mut args: Vec<String> = vec![
                "distill".into(),
                recipe.display().to_string(),
                "--quiet".into(),
            ];
            for s in sets.iter().cloned().chain([
                format!("output={}", out.display()),
                format!("training.batch_size={batch}"),
            ]) {
                args.push("--set".into());
                args.push(s);
            }
            let mut cmd = if ranks {
                let mut c = Command::new("timeout");
                c.arg("300")
                    .arg(torchrun())
                    .args(["--standalone", "--nproc-per-node", "2", "--no-python"])
                    .arg(env!("CARGO_BIN_EXE_destila"));
                c
            } else {
                let mut c = Command::new("timeout");
                c.arg("300").arg(env!("CARGO_BIN_EXE_destila"));
                c
            };
            let o = cmd
                .args(&args)
                .env("OMP_NUM_THREADS", "1")
                .env("DESTILA_DIST_TIMEOUT_S", "60")
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{name} ({}): {}\n{}",
                if ranks { "2 ranks" } else { "1 process" },
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let one = dir.join(format!("{name}-1"));
        let two = dir.join(format!("{name}-2"));
        go(&one, 4, false);
        go(&two, 2, true);
        for col in compare {
            let (a, b) = (
                column(&one.join("metrics.csv"), col),
                column(&two.join("metrics.csv"), col),
            );
            assert_eq!(a.len(), 3, "{name}: {a:?}");
            assert_same(&a[..rows], &b[..rows], tol);
        }
    }
}
