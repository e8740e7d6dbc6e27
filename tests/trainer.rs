//! The trainer end to end on tiny random models with the real vocabulary (and once on the
//! real teacher): losses fall, presets run, resume after SIGKILL is exact, bad runs stop
//! clearly.

mod common;

use std::process::Command;

use destila::bert::{self, Heads};
use destila::distill::recipe::Recipe;
use destila::distill::trainer::{run, RunOptions};

use common::{corpus, recipe, root, tiny_teacher, train_losses};

const SMALL: &str = "student: {layers: 1, init: from-teacher, teacher_layers: [1]}\n\
    losses: {temperature: 2.0, kd_mlm: {weight: 1.0}, kd_nsp: {weight: 1.0}, hidden_cos: {weight: 1.0}, mlm: {weight: 0.5}}\n\
    optimizer: {learning_rate: 0.002, warmup_steps: 2}\n\
    training: {steps: 30, batch_size: 8, eval_every: 15, eval_batches: 3, checkpoint_every: 10, log_every: 1}\n";

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..Default::default()
    }
}

#[test]
fn tiny_distillation_lowers_the_held_out_loss() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    // A random student learning the teacher's hidden states and soft targets.
    let body = SMALL
        .replace("init: from-teacher, teacher_layers: [1]", "init: random")
        .replace("mlm: {weight: 0.5}", "mlm: {weight: 0.0}");
    let r = recipe(dir.path(), &t, &body);
    let s = run(&r, &quiet()).unwrap();
    let (a, b) = (s.first_validation.unwrap(), s.last_validation.unwrap());
    assert!(b < 0.7 * a, "validation loss {a} -> {b}");
    // The final model is an HF folder destila (and transformers) can load, with the tokenizer.
    let m = bert::load(&s.final_model, &Default::default()).unwrap();
    assert_eq!(m.config().num_hidden_layers, 1);
    assert!(s.final_model.join("tokenizer.json").is_file());
    let svg = std::fs::read_to_string(&s.plot).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"));
    // Zero-weight losses are not computed: their columns stay empty.
    let rows = destila::distill::metrics::read(&s.metrics).unwrap();
    assert!(rows
        .iter()
        .all(|r| r["hidden_mse"].is_empty() && r["attention_kl"].is_empty()));
    assert!(rows
        .iter()
        .filter(|r| r["split"] == "train")
        .all(|r| !r["kd_mlm"].is_empty()));
    // Two checkpoints kept (keep_checkpoints default 2): steps 20 and 30.
    let kept = destila::distill::checkpoint::list(&r.output.join("checkpoints")).unwrap();
    let names: Vec<String> = kept
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["step-000020", "step-000030"]);
}

#[test]
fn a_run_killed_with_sigkill_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let body = SMALL
        .replace("steps: 30", "steps: 48")
        .replace("checkpoint_every: 10", "checkpoint_every: 4");
    let r = recipe(dir.path(), &t, &body);
    let recipe_path = dir.path().join("recipe.yaml");
    // Uninterrupted reference, in another output folder.
    let reference = dir.path().join("reference");
    let ok = common::destila()
        .args(["distill", recipe_path.to_str().unwrap(), "--quiet", "--set"])
        .arg(format!("output={}", reference.display()))
        .status()
        .unwrap();
    assert!(ok.success());
    // The same run, killed once its step-8 checkpoint exists.
    let mut child = common::destila()
        .args(["distill", recipe_path.to_str().unwrap(), "--quiet"])
        .spawn()
        .unwrap();
    let ckpt = r.output.join("checkpoints/step-000008/state.json");
    let t0 = std::time::Instant::now();
    while !ckpt.is_file() {
        assert!(t0.elapsed().as_secs() < 120, "no checkpoint appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Command::new("kill")
        .args(["-9", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    let out = common::destila()
        .args([
            "distill",
            recipe_path.to_str().unwrap(),
            "--quiet",
            "--resume",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("resuming from"));
    let (a, b) = (
        train_losses(&reference.join("metrics.csv")),
        train_losses(&r.output.join("metrics.csv")),
    );
    assert_eq!(a.len(), b.len(), "{a:?}\n{b:?}");
    for ((sa, la), (sb, lb)) in a.iter().zip(&b) {
        assert_eq!(sa, sb);
        assert!((la - lb).abs() < 1e-6, "step {sa}: {la} vs {lb}");
    }
}

#[test]
fn nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let body = SMALL
        .replace("checkpoint_every: 10", "checkpoint_every: 1")
        .replace("warmup_steps: 2", "warmup_steps: 0");
    let mut r = recipe(dir.path(), &t, &body);
    // A learning rate a recipe may not ask for (validation refuses it), set behind its back
    // to drive the loss to NaN: the trainer's own guard must stop the run.
    r.optimizer.learning_rate = 1.0e30;
    let e = run(&r, &quiet()).expect_err("must stop").to_string();
    assert!(
        e.contains("step ") && (e.contains("loss component") || e.contains("gradient norm")),
        "{e}"
    );
    let kept = destila::distill::checkpoint::list(&r.output.join("checkpoints")).unwrap();
    assert!(!kept.is_empty(), "the last good checkpoint is kept");
    bert::load(kept.last().unwrap(), &Default::default()).unwrap();
}

#[test]
fn heads_are_fitted_on_a_frozen_headless_teacher_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(
        &dir.path().join("teacher"),
        2,
        32,
        4,
        Heads {
            pooler: true,
            ..Default::default()
        },
    );
    let body = SMALL.replace("steps: 30", "steps: 2");
    let recipe_path = dir.path().join("recipe.yaml");
    let _ = recipe(dir.path(), &t, &body);
    let out = common::destila()
        .args(["distill", recipe_path.to_str().unwrap(), "--quiet"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("fitting MLM and NSP heads"), "{err}");
    let fitted = dir.path().join("run/teacher-heads");
    let original = bert::load(&t, &Default::default()).unwrap();
    let with_heads = bert::load(&fitted, &Default::default()).unwrap();
    assert_eq!(
        with_heads.report.as_ref().unwrap().checkpoint_heads,
        Heads::ALL
    );
    let (a, b) = (original.vs.variables(), with_heads.vs.variables());
    for (name, v) in a.iter().filter(|(n, _)| !n.starts_with("bert.pooler.")) {
        assert!(v.equal(&b[name]), "{name} changed while fitting the heads");
    }
    assert!(
        !a["bert.pooler.dense.weight"].equal(&b["bert.pooler.dense.weight"]),
        "the pooler trains with NSP"
    );
    let out = common::destila()
        .args([
            "distill",
            recipe_path.to_str().unwrap(),
            "--quiet",
            "--force",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.contains("reusing"), "{err}");
}

#[test]
fn a_headless_teacher_with_heads_fail_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(
        &dir.path().join("teacher"),
        2,
        32,
        4,
        Heads {
            pooler: true,
            ..Default::default()
        },
    );
    let mut r = recipe(dir.path(), &t, SMALL);
    r.teacher.as_mut().unwrap().heads = destila::distill::recipe::HeadPolicy::Fail;
    let e = run(&r, &quiet()).err().unwrap().to_string();
    assert!(
        e.contains("teacher.heads") && e.contains("no MLM head"),
        "{e}"
    );
}

#[test]
fn existing_checkpoints_need_resume_or_force() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let r = recipe(dir.path(), &t, &SMALL.replace("steps: 30", "steps: 2"));
    run(&r, &quiet()).unwrap();
    let e = run(&r, &quiet()).err().unwrap().to_string();
    assert!(e.contains("--resume") && e.contains("--force"), "{e}");
    run(
        &r,
        &RunOptions {
            force: true,
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    // Resuming with a changed recipe names the change (not a missing tensor), before any
    // work; only training.steps may change.
    let mut changed = r.clone();
    changed.student.as_mut().unwrap().layers = 2;
    changed.student.as_mut().unwrap().teacher_layers = None;
    let resume = RunOptions {
        resume: true,
        quiet: true,
        ..Default::default()
    };
    let e = run(&changed, &resume).err().unwrap().to_string();
    assert!(
        e.contains("student.layers (1 -> 2)") && e.contains("only training.steps"),
        "{e}"
    );
    let mut longer = r.clone();
    longer.training.steps = 3;
    run(&longer, &resume).unwrap();
    // Resuming to fewer steps than the run has done is refused before any work: no rows
    // appended out of order, final/ untouched.
    let metrics = std::fs::read_to_string(r.output.join("metrics.csv")).unwrap();
    let e = run(&r, &resume).err().unwrap().to_string();
    assert!(
        e.contains("training.steps") && e.contains("already at step 3"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(r.output.join("metrics.csv")).unwrap(),
        metrics
    );
    // A user's file in the run folder: the run refuses it, even with --force, and the
    // file survives; --force removes only the run's own entries.
    std::fs::write(r.output.join("notes.txt"), "mine").unwrap();
    let e = run(
        &r,
        &RunOptions {
            force: true,
            quiet: true,
            ..Default::default()
        },
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("notes.txt") && e.contains("did not write"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(r.output.join("notes.txt")).unwrap(),
        "mine"
    );
    // destila's own output inside the run folder (an export) is no stranger's: the run
    // starts over with --force and leaves it alone.
    std::fs::remove_file(r.output.join("notes.txt")).unwrap();
    let export = r.output.join("export");
    destila::export::export(
        &r.output.join("final"),
        &export,
        &destila::export::ExportOptions {
            dtype: tch::Kind::Float,
            heads: destila::export::HeadsMode::Keep,
            int8: false,
            force: false,
            eval: None,
        },
    )
    .unwrap();
    run(
        &r,
        &RunOptions {
            force: true,
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(export.join("model.safetensors").is_file());
}

#[test]
fn presets_validate_and_run_a_few_steps_on_tiny_models_of_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    // bert-base's shape, shrunk in width: 12 layers, 12 heads.
    let t = tiny_teacher(&dir.path().join("teacher"), 12, 48, 12, Heads::ALL);
    let (train, val) = corpus(dir.path());
    let narrow = ["student.hidden_size=24", "student.intermediate_size=48"];
    let cases: [(&str, &[&str]); 6] = [
        ("distilbert", &[]),
        // The teacher has its heads here: no adaptation (tests/adapt.rs covers that).
        ("pretraining-ab", &["teacher.heads=fail"]),
        ("embedding", &[]),
        ("tinybert", &narrow),
        ("minilm", &narrow),
        (
            "pretrain",
            &["student.hidden_size=32", "student.intermediate_size=64"],
        ),
    ];
    for (name, extra) in cases {
        let mut sets: Vec<String> = vec![
            format!("output={}", dir.path().join(name).display()),
            "device=cpu".into(),
            format!("data.train=[{}]", train.display()),
            format!("data.validation=[{}]", val.display()),
            "data.max_seq_len=32".into(),
            // One train entry here: a preset's mixing weights do not apply.
            "data.weights=[]".into(),
            format!("data.cache_dir={}", dir.path().join("cache").display()),
            "training.steps=3".into(),
            "training.batch_size=4".into(),
            "training.eval_batches=1".into(),
            "optimizer.warmup_steps=1".into(),
        ];
        if name == "pretrain" {
            sets.push(format!("data.tokenizer={}", t.display()));
        } else {
            sets.push(format!("teacher.checkpoint={}", t.display()));
        }
        sets.extend(extra.iter().map(|s| s.to_string()));
        let r = Recipe::from_file_with(root().join(format!("recipes/{name}.yaml")), &sets)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let s = run(&r, &quiet()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let v = s.last_validation.unwrap();
        assert!(v.is_finite(), "{name}: {v}");
        let m = bert::load(&s.final_model, &Default::default()).unwrap();
        let want_layers = match name {
            "distilbert" | "minilm" => 6,
            "embedding" | "pretraining-ab" => 3,
            _ => 4,
        };
        assert_eq!(m.config().num_hidden_layers, want_layers, "{name}");
    }
}

#[test]
fn bf16_precision_trains_on_cpu_and_exports_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let mut r = recipe(dir.path(), &t, &SMALL.replace("steps: 30", "steps: 4"));
    r.precision = "bf16".into();
    let s = run(&r, &quiet()).unwrap();
    assert!(s.last_validation.unwrap().is_finite());
    let m = bert::load(&s.final_model, &Default::default()).unwrap();
    assert_eq!(
        m.report.as_ref().unwrap().dtypes.iter().collect::<Vec<_>>(),
        ["F32"]
    );
}

#[test]
fn the_demo_recipe_runs_end_to_end_in_short() {
    let dir = tempfile::tempdir().unwrap();
    let out = common::destila()
        .args([
            "distill",
            root().join("recipes/demo.yaml").to_str().unwrap(),
            "--quiet",
        ])
        .args([
            "--set",
            &format!("output={}", dir.path().join("demo").display()),
        ])
        .args([
            "--set",
            &format!("teacher.checkpoint={}", common::teacher().display()),
        ])
        .args([
            "--set",
            &format!(
                "data.train=[{}]",
                root().join("data/austen/train").display()
            ),
        ])
        .args([
            "--set",
            &format!(
                "data.validation=[{}]",
                root().join("data/austen/validation").display()
            ),
        ])
        .args([
            "--set",
            &format!("data.cache_dir={}", dir.path().join("cache").display()),
        ])
        .args([
            "--set",
            &format!(
                "teacher.adapt.cache={}",
                dir.path().join("adapted").display()
            ),
            "--set",
            "teacher.adapt.steps=4",
            // Four steps of fresh heads at the recipe's rate would shake the encoder without
            // teaching it anything; this short run checks the path, at a gentle rate.
            "--set",
            "teacher.adapt.learning_rate=0.00001",
            "--set",
            "teacher.adapt.batch_size=8",
            "--set",
            &format!(
                "teacher.adapt.data.train=[{}]",
                root().join("data/austen/train").display()
            ),
            "--set",
            "teacher.adapt.data.weights=[]",
            "--set",
            &format!(
                "teacher.adapt.data.validation=[{}]",
                root().join("data/austen/validation").display()
            ),
            "--set",
            &format!(
                "teacher.adapt.data.cache_dir={}",
                dir.path().join("cache").display()
            ),
            "--set",
            "training.steps=8",
            "--set",
            "training.batch_size=8",
        ])
        .args([
            "--set",
            "training.eval_every=4",
            "--set",
            "training.eval_batches=2",
            "--set",
            "optimizer.warmup_steps=1",
        ])
        .args(["--set", "data.max_seq_len=64", "--set", "device=cpu"])
        .output()
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{e}");
    let line = o
        .lines()
        .find(|l| l.starts_with("validation loss"))
        .unwrap_or_else(|| panic!("{o}"));
    let nums: Vec<f64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(nums[1] < 0.9 * nums[0], "{line}");
    // Even this short run leaves a student better than its starting point (the layer copy
    // the run saved in init/) on text from a domain it never saw, and no worse on the human
    // judgements of that domain.
    // Against the run's teacher, the adapted one (as the demo measures it).
    let adapted = dir.path().join("demo/teacher-adapted");
    assert!(adapted.join("model.safetensors").is_file());
    let eval_dir = root().join(".cache/eval");
    let out = common::destila()
        .args(["eval", "--device", "cpu", "--max-sentences", "120"])
        .args(["--teacher", adapted.to_str().unwrap()])
        .args(["--student", dir.path().join("demo/final").to_str().unwrap()])
        .args([
            "--corpus",
            eval_dir.join("lee-background.txt").to_str().unwrap(),
        ])
        .args(["--pairs", eval_dir.join("lee-pairs.csv").to_str().unwrap()])
        .args(["--cache-dir", dir.path().join("cache").to_str().unwrap()])
        .args(["--out", dir.path().join("report").to_str().unwrap()])
        .output()
        .unwrap();
    let o = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{o}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report/eval.json")).unwrap(),
    )
    .unwrap();
    let gain = |metric: &str| {
        json["baseline"]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == metric)
            .unwrap_or_else(|| panic!("{metric} missing:\n{o}"))["gain"]
            .as_f64()
            .unwrap()
    };
    assert!(gain("similarity.mean.spearman") > 0.02, "{o}");
    assert!(gain("similarity.mean.cka") > 0.0, "{o}");
    assert!(gain("judgements.student_spearman") > -0.005, "{o}");
}

#[test]
fn recipe_check_reports_unknown_keys_and_bad_overrides() {
    let out = common::destila()
        .args([
            "recipe",
            "check",
            root().join("recipes/demo.yaml").to_str().unwrap(),
            "--set",
            "losses.kd_mlmm.weight=2",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("losses") && e.contains("kd_mlmm"),
        "{e}"
    );
    let out = common::destila()
        .args([
            "recipe",
            "check",
            root().join("recipes/demo.yaml").to_str().unwrap(),
            "--set",
            "student.layers=0",
        ])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("student.layers"), "{e}");
    let out = common::destila()
        .args([
            "recipe",
            "check",
            root().join("recipes/demo.yaml").to_str().unwrap(),
            "--set",
            "losses.kd_mlm.weight=2.0",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("weight: 2.0"));
}

#[test]
fn scheduled_values_by_hand() {
    use destila::distill::recipe::Scheduled;
    let s = Scheduled::Linear {
        start: 4.0,
        end: 1.0,
    };
    // 4 steps: 4, 3, 2, 1.
    let v: Vec<f64> = (0..4).map(|i| s.at(i, 4)).collect();
    assert_eq!(v, [4.0, 3.0, 2.0, 1.0]);
    assert_eq!(Scheduled::Constant(2.5).at(3, 10), 2.5);
    assert!(Scheduled::Linear {
        start: 0.0,
        end: 0.0
    }
    .is_zero());
}

#[test]
fn kd_on_all_positions_accumulation_and_scheduled_weights_run() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let body = "student: {layers: 1, init: from-teacher}\n\
        losses: {temperature: {start: 4.0, end: 1.0}, kd_mlm: {weight: {start: 0.0, end: 2.0}, positions: all}, mlm: {weight: 1.0}}\n\
        optimizer: {learning_rate: 0.001, warmup_steps: 1, schedule: cosine}\n\
        training: {steps: 4, batch_size: 4, gradient_accumulation: 2, eval_batches: 1, log_every: 1}\n";
    let r = recipe(dir.path(), &t, body);
    let s = run(&r, &quiet()).unwrap();
    let rows = destila::distill::metrics::read(&s.metrics).unwrap();
    let train: Vec<_> = rows.iter().filter(|r| r["split"] == "train").collect();
    assert_eq!(train.len(), 4);
    let temps: Vec<f64> = train
        .iter()
        .map(|r| r["temperature"].parse().unwrap())
        .collect();
    assert_eq!(temps, [4.0, 3.0, 2.0, 1.0]);
    // The weighted loss is the weights times the components: step 1 has kd_mlm weight 0.
    let first = &train[0];
    let (loss, mlm): (f64, f64) = (
        first["loss"].parse().unwrap(),
        first["mlm"].parse().unwrap(),
    );
    assert!((loss - mlm).abs() < 1e-6 * loss.abs().max(1.0));
    let last = &train[3];
    let (loss, mlm, kd): (f64, f64, f64) = (
        last["loss"].parse().unwrap(),
        last["mlm"].parse().unwrap(),
        last["kd_mlm"].parse().unwrap(),
    );
    assert!((loss - (mlm + 2.0 * kd)).abs() < 1e-6 * loss.abs().max(1.0));
    // Two micro-batches of 4 per step: 8 samples in each logged step (log_every 1).
    for row in &train {
        let sps: f64 = row["samples_per_s"].parse().unwrap();
        let secs: f64 = row["step_s"].parse().unwrap();
        let per_step = sps * secs;
        assert!((per_step - 8.0).abs() < 0.05, "{per_step} samples a step");
    }
}

#[test]
fn fp16_with_loss_scaling_trains_on_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let mut r = recipe(dir.path(), &t, &SMALL.replace("steps: 30", "steps: 3"));
    r.precision = "fp16".into();
    let s = run(&r, &quiet()).unwrap();
    assert!(s.last_validation.unwrap().is_finite());
}

#[test]
fn fitting_keeps_a_head_the_teacher_already_has() {
    // A BertForMaskedLM-like teacher: MLM head, no pooler, no NSP head.
    let dir = tempfile::tempdir().unwrap();
    let heads = Heads {
        mlm: true,
        ..Default::default()
    };
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, heads);
    let body = SMALL.replace("steps: 30", "steps: 2");
    let r = recipe(dir.path(), &t, &body);
    run(&r, &quiet()).unwrap();
    let original = bert::load(&t, &Default::default()).unwrap();
    let fitted = bert::load(dir.path().join("run/teacher-heads"), &Default::default()).unwrap();
    assert_eq!(fitted.report.as_ref().unwrap().checkpoint_heads, Heads::ALL);
    let (a, b) = (original.vs.variables(), fitted.vs.variables());
    for (name, v) in &a {
        assert!(v.equal(&b[name]), "{name} changed, but the teacher had it");
    }
    // A teacher with both heads has nothing to fit.
    let full = tiny_teacher(&dir.path().join("full"), 2, 32, 4, Heads::ALL);
    let mut r = recipe(dir.path(), &full, &body);
    r.job = destila::distill::recipe::Job::FitHeads;
    let opts = RunOptions {
        force: true,
        quiet: true,
        ..Default::default()
    };
    let e = run(&r, &opts).unwrap_err().to_string();
    assert!(e.contains("nothing to fit"), "{e}");
}

#[test]
fn tinybert_two_stages_chain_through_student_init_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    // bert-base's shape, shrunk in width: 12 layers, 12 heads.
    let t = tiny_teacher(&dir.path().join("teacher"), 12, 48, 12, Heads::ALL);
    let (train, val) = corpus(dir.path());
    let common_sets = |out: &str| -> Vec<String> {
        vec![
            format!("output={}", dir.path().join(out).display()),
            "device=cpu".into(),
            format!("teacher.checkpoint={}", t.display()),
            format!("data.train=[{}]", train.display()),
            format!("data.validation=[{}]", val.display()),
            "data.max_seq_len=32".into(),
            // One train entry here: a preset's mixing weights do not apply.
            "data.weights=[]".into(),
            format!("data.cache_dir={}", dir.path().join("cache").display()),
            "training.steps=3".into(),
            "training.batch_size=4".into(),
            "training.eval_batches=1".into(),
            "optimizer.warmup_steps=1".into(),
            "student.hidden_size=24".into(),
            "student.intermediate_size=48".into(),
        ]
    };
    let stage1 =
        Recipe::from_file_with(root().join("recipes/tinybert.yaml"), &common_sets("s1")).unwrap();
    let s1 = run(&stage1, &quiet()).unwrap();
    let proj = s1.final_model.join("projection.safetensors");
    assert!(proj.is_file(), "stage one saves its projection");

    let stage2 = |extra: &[String]| {
        let mut sets = common_sets("s2");
        sets.push(format!(
            "student.init={{checkpoint: {}, projection: drop}}",
            s1.final_model.display()
        ));
        sets.extend(extra.iter().cloned());
        Recipe::from_file_with(root().join("recipes/tinybert-stage2.yaml"), &sets)
    };
    // Stage two starts where stage one ended: its init/ is stage one's final model.
    let r2 = stage2(&[]).unwrap();
    let s2 = run(&r2, &quiet()).unwrap();
    let a = bert::load(&s1.final_model, &Default::default()).unwrap();
    let b = bert::load(s2.output.join("init"), &Default::default()).unwrap();
    let bv = b.vs.variables();
    let mut compared = 0;
    for (name, v) in a.vs.variables() {
        if name.starts_with("bert.") {
            assert_eq!(common::max_abs(&v, &bv[&name]), 0.0, "{name}");
            compared += 1;
        }
    }
    assert!(compared > 60, "{compared}");
    assert!(s2.last_validation.unwrap().is_finite());

    // The projection: keep it (hidden_mse continues with it) or drop it, explicitly.
    let keep = |more: &[&str]| {
        let mut v: Vec<String> = more.iter().map(|s| s.to_string()).collect();
        v.push(format!(
            "student.init={{checkpoint: {}, projection: keep}}",
            s1.final_model.display()
        ));
        v
    };
    let e = stage2(&keep(&[])).unwrap_err().to_string();
    assert!(
        e.contains("student.init.projection") && e.contains("no loss"),
        "{e}"
    );
    let r = stage2(&keep(&[
        "losses.hidden_mse.weight=1",
        "optimizer.learning_rate=1e-12",
        "training.steps=1",
        "training.checkpoint_every=1",
    ]))
    .map(|mut r| {
        r.output = dir.path().join("s2-keep");
        r
    })
    .unwrap();
    let s = run(&r, &quiet()).unwrap();
    let saved = destila::bert::weights::read_safetensors(&proj).unwrap();
    let ckpt = destila::bert::weights::read_safetensors(
        &s.output.join("checkpoints/step-000001/trainer.safetensors"),
    )
    .unwrap();
    let get = |v: &[(String, tch::Tensor)], n: &str| {
        v.iter().find(|(k, _)| k == n).unwrap().1.shallow_clone()
    };
    let d = common::max_abs(
        &get(&saved, "projection.weight"),
        &get(&ckpt, "extra.projection.weight"),
    );
    assert!(d < 1e-6, "kept projection moved by {d}");
    let mut no_field = common_sets("s2");
    no_field.push(format!(
        "student.init={{checkpoint: {}}}",
        s1.final_model.display()
    ));
    let e = Recipe::from_file_with(root().join("recipes/tinybert-stage2.yaml"), &no_field)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("student.init.projection") && e.contains("keep"),
        "{e}"
    );
    let e = stage2(&["student.layers=3".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("student.layers") && e.contains("has 4"), "{e}");
}
