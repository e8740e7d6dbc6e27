//! What issue 12 added: loss views (clean versus masked input), single-sentence examples,
//! the relational and pooled losses in a run, the shared cache of fitted teacher heads, the
//! baseline (the student's own initialisation) in every evaluation, and the settings'
//! validation. Tiny random models with the real vocabulary, except where said.

mod common;

use std::path::Path;

use destila::bert::Heads;
use destila::distill::recipe::Recipe;
use destila::distill::trainer::{run, RunOptions};

use common::{recipe, tiny_teacher};

const BODY: &str = "student: {layers: 1, init: from-teacher, teacher_layers: [1]}\n\
    optimizer: {learning_rate: 0.002, warmup_steps: 1}\n\
    training: {steps: 2, batch_size: 8, eval_every: 0, eval_batches: 3, log_every: 1}\n";

/// Runs in this process share libtorch's global random generator (the random init, the
/// dropout): a test that compares two runs holds this while it trains.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn quiet() -> RunOptions {
    RunOptions {
        quiet: true,
        ..Default::default()
    }
}

/// The first validation row's value of `column`.
fn first_validation(metrics: &Path, column: &str) -> f64 {
    let rows = destila::distill::metrics::read(metrics).unwrap();
    let row = rows.iter().find(|r| r["split"] == "validation").unwrap();
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("{column}: {:?}", row[column]))
}

#[test]
fn a_clean_view_loss_does_not_see_the_masking() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // (view, mlm_probability) → the step-0 validation values of pooled_cos and similarity.
    let value = |view: &str, p: f64| {
        // A random student, so that the losses are far from 0 at step 0.
        let body = format!(
            "{BODY}losses: {{pooled_cos: {{weight: 1.0, view: {view}}}, similarity: {{weight: 1.0, view: {view}}}}}\n"
        )
        .replace("init: from-teacher, teacher_layers: [1]", "init: random");
        let mut r = recipe(dir.path(), &t, &body);
        r.data.mlm_probability = p;
        r.output = dir.path().join(format!("run-{view}-{p}"));
        let s = run(&r, &quiet()).unwrap();
        (
            first_validation(&s.metrics, "pooled_cos"),
            first_validation(&s.metrics, "similarity"),
        )
    };
    let (c1, c2) = (value("clean", 0.15), value("clean", 0.6));
    assert_eq!(c1, c2, "the clean view changed with the masking");
    let (m1, m2) = (value("masked", 0.15), value("masked", 0.6));
    let rel = |a: f64, b: f64| (a - b).abs() / a.abs().max(b.abs());
    assert!(
        rel(m1.0, m2.0) > 1e-3 && rel(m1.1, m2.1) > 1e-3,
        "the masked view did not: {m1:?} {m2:?}"
    );
    // Clean input is the masked input with the masked tokens restored: with 60% of the
    // tokens masked the student's and teacher's sentences differ from the clean ones.
    assert!(rel(m2.0, c2.0) > 1e-3, "{m2:?} {c2:?}");
}

#[test]
fn sentence_examples_distil_with_the_relational_losses() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let body = "student: {layers: 1, init: random}\n\
        losses: {pooled_mse: {weight: 1.0, view: clean}, similarity: {weight: 1.0, view: clean, form: kl, temperature: 0.2}, hidden_cos: {weight: 1.0, view: clean}}\n\
        optimizer: {learning_rate: 0.003, warmup_steps: 2}\n\
        training: {steps: 30, batch_size: 16, eval_every: 15, eval_batches: 3, log_every: 1}\n";
    let mut r = recipe(dir.path(), &t, body);
    r.data.examples = destila::data::ExampleFormat::Sentences;
    let s = {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        run(&r, &quiet()).unwrap()
    };
    let (a, b) = (s.first_validation.unwrap(), s.last_validation.unwrap());
    assert!(b < 0.8 * a, "validation loss {a} -> {b}");
    // No masked-view loss: the MLM and NSP accuracies are not reported (nothing predicted).
    let rows = destila::distill::metrics::read(&s.metrics).unwrap();
    assert!(rows.iter().all(
        |r| r["mlm_accuracy"].is_empty() && !r["similarity"].is_empty() || r["split"] == "train"
    ));
}

#[test]
fn the_init_is_saved_and_eval_measures_the_student_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, Heads::ALL);
    let body = format!("{BODY}losses: {{pooled_cos: {{weight: 1.0, view: clean}}}}\n");
    let r = recipe(dir.path(), &t, &body);
    let s = {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        run(&r, &quiet()).unwrap()
    };
    let init = r.output.join("init");
    // The init is the student before its first step: teacher layer 1 copied.
    let m = destila::bert::load(&init, &Default::default()).unwrap();
    let teacher = destila::bert::load(&t, &Default::default()).unwrap();
    let (a, b) = (m.vs.variables(), teacher.vs.variables());
    assert!(a["bert.encoder.layer.0.attention.self.query.weight"]
        .equal(&b["bert.encoder.layer.1.attention.self.query.weight"]));
    assert!(init.join("tokenizer.json").is_file());
    let (train, val) = common::corpus(dir.path());
    let _ = train;
    let eval = |student: &Path, extra: &[&str]| {
        let out = common::destila()
            .args(["eval", "--device", "cpu", "--max-sentences", "40"])
            .args(["--teacher", t.to_str().unwrap()])
            .args(["--student", student.to_str().unwrap()])
            .args(["--corpus", val.to_str().unwrap()])
            .args(["--cache-dir", dir.path().join("cache").to_str().unwrap()])
            .args(["--head-batches", "1"])
            .args(["--out", dir.path().join("report").to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap();
        let o = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{o}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        o
    };
    // Beside a run's final/ the init is found by itself; the table has every metric.
    let o = eval(&s.final_model, &[]);
    assert!(o.contains("against the student's initialisation"), "{o}");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("report/eval.json")).unwrap(),
    )
    .unwrap();
    let metrics = json["baseline"]["metrics"].as_array().unwrap();
    let spearman = metrics
        .iter()
        .find(|m| m["metric"] == "similarity.mean.spearman")
        .unwrap();
    let (si, ss) = (
        spearman["init"].as_f64().unwrap(),
        spearman["student"].as_f64().unwrap(),
    );
    assert_eq!(json["similarity"]["mean"]["spearman"].as_f64().unwrap(), ss);
    assert!((spearman["gain"].as_f64().unwrap() - (ss - si)).abs() < 1e-12);
    // The init against itself gains nothing; the teacher as "init" beats any student,
    // and the report says so plainly.
    let o = eval(&init, &["--init", init.to_str().unwrap()]);
    assert!(o.contains("at least as good as its init"), "{o}");
    let o = eval(&s.final_model, &["--init", t.to_str().unwrap()]);
    assert!(o.contains("WORSE THAN ITS INIT"), "{o}");
    let o = eval(&s.final_model, &["--no-init"]);
    assert!(!o.contains("initialisation"), "{o}");
    let out = common::destila()
        .args(["eval", "--teacher", t.to_str().unwrap()])
        .args(["--student", s.final_model.to_str().unwrap()])
        .args(["--init", dir.path().join("nothing").to_str().unwrap()])
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("--init") && e.contains("nothing"),
        "{e}"
    );
}

#[test]
fn fitted_heads_are_reused_across_runs_and_never_for_another_teacher() {
    let dir = tempfile::tempdir().unwrap();
    let headless = Heads {
        pooler: true,
        ..Default::default()
    };
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, headless);
    let body = format!("{BODY}losses: {{kd_mlm: {{weight: 1.0}}, kd_nsp: {{weight: 1.0}}}}\n");
    let _ = recipe(dir.path(), &t, &body);
    let path = dir.path().join("recipe.yaml");
    let distill = |extra: &[String]| {
        let out = common::destila()
            .args(["distill", path.to_str().unwrap(), "--quiet", "--force"])
            .args(extra.iter().flat_map(|s| ["--set", s.as_str()]))
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{e}");
        e
    };
    // A cache path that is a file is refused before any fitting.
    let file = dir.path().join("not-a-folder");
    std::fs::write(&file, "x").unwrap();
    let out = common::destila()
        .args([
            "distill",
            path.to_str().unwrap(),
            "--quiet",
            "--force",
            "--set",
        ])
        .arg(format!("teacher.fit.cache={}", file.display()))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && e.contains("teacher.fit.cache") && !e.contains("fitting"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
    let e = distill(&[]);
    assert!(e.contains("fitting MLM and NSP heads"), "{e}");
    // Another run (another output folder) takes them from the shared cache.
    let other = dir.path().join("run2");
    let e = distill(&[format!("output={}", other.display())]);
    assert!(
        e.contains("reusing") && e.contains("heads-cache") && !e.contains("fitting"),
        "{e}"
    );
    assert!(other.join("teacher-heads/model.safetensors").is_file());
    // Another teacher (other weights, same shape and tokenizer): the run's folder and the
    // shared cache hold heads for the first one, which are refused by name and refitted.
    let cfg = destila::bert::load(&t, &Default::default())
        .unwrap()
        .config()
        .clone();
    let t2 = common::random_checkpoint(&dir.path().join("teacher2"), &cfg, headless, 9, true, true);
    let e = distill(&[format!("teacher.checkpoint={}", t2.display())]);
    assert!(
        e.contains("not reusing") && e.contains("another teacher") && e.contains("fitting"),
        "{e}"
    );
    // The distillation's own data view does not change the fit: its mlm_probability,
    // example format and batch size are not the fit's.
    let e = distill(&[
        format!("teacher.checkpoint={}", t2.display()),
        "data.mlm_probability=0.3".into(),
        "data.examples=sentences".into(),
        "losses.kd_nsp.weight=0".into(),
        "training.batch_size=4".into(),
    ]);
    assert!(e.contains("reusing") && !e.contains("fitting"), "{e}");
}

#[test]
fn new_settings_are_validated_by_name() {
    let p = Path::new("r.yaml");
    let base = "teacher: {checkpoint: t}\nstudent: {layers: 1}\ndata: {train: [a]}\n";
    let bad = [
        ("losses: {mlm: {weight: 1, view: clean}}", "losses.mlm.view"),
        ("losses: {kd_mlm: {weight: 1, view: clean}}", "losses.kd_mlm.view"),
        (
            "losses: {pooled_cos: {weight: 1, form: kl}}",
            "losses.pooled_cos.form",
        ),
        (
            "losses: {similarity: {weight: 1, temperature: 0.1}}",
            "losses.similarity.temperature",
        ),
        (
            "losses: {similarity: {weight: 1, form: kl, temperature: 0}}",
            "losses.similarity.temperature",
        ),
        (
            "losses: {similarity: {weight: 1, form: cosine}}",
            "losses.similarity.form",
        ),
        (
            "losses: {similarity: {weight: 1, view: both}}",
            "losses.similarity.view",
        ),
        ("losses: {nsp: {weight: 1}}\ndata: {train: [a], examples: sentences}", "losses.nsp.weight"),
        (
            "losses: {kd_nsp: {weight: 1}}\ndata: {train: [a], examples: sentences}",
            "losses.kd_nsp.weight",
        ),
        ("losses: {pooled_cos: {weight: 1}}\ndata: {train: [a], examples: words}", "data.examples"),
        (
            "losses: {pooled_cos: {weight: 1}}\nteacher: {checkpoint: t, fit: {steps: 0}}",
            "teacher.fit.steps",
        ),
        (
            "losses: {pooled_cos: {weight: 1}}\nteacher: {checkpoint: t, fit: {batch_size: 0}}",
            "teacher.fit.batch_size",
        ),
        (
            "losses: {pooled_cos: {weight: 1}}\nteacher: {checkpoint: t, fit: {learning_rate: -1}}",
            "teacher.fit.learning_rate",
        ),
        (
            "losses: {pooled_cos: {weight: 1}}\nteacher: {checkpoint: t, fit: {mlm_probability: 1.5}}",
            "teacher.fit.mlm_probability",
        ),
        (
            "losses: {pooled_cos: {weight: 1, view: clean}}\nteacher: {checkpoint: t, targets: {dir: c}}",
            "losses.pooled_cos.view",
        ),
    ];
    for (extra, field) in bad {
        // Later keys replace the base's sections of the same name.
        let mut doc: serde_yaml::Mapping = serde_yaml::from_str(base).unwrap();
        let over: serde_yaml::Mapping = serde_yaml::from_str(extra).unwrap();
        for (k, v) in over {
            doc.insert(k, v);
        }
        let text = serde_yaml::to_string(&doc).unwrap();
        let e = Recipe::from_str(&text, p)
            .err()
            .unwrap_or_else(|| panic!("accepted: {extra}"));
        let e = e.to_string();
        assert!(e.contains("r.yaml") && e.contains(field), "{extra}: {e}");
    }
    let ok = Recipe::from_str(
        &format!("{base}losses: {{similarity: {{weight: 1, view: clean, form: kl, temperature: 0.05}}, pooled_mse: {{weight: 2}}}}\n"),
        p,
    )
    .unwrap();
    assert_eq!(
        ok.losses.similarity.relation(),
        (destila::distill::losses::Relation::Kl, 0.05)
    );
}

#[test]
fn a_pairs_file_without_variance_or_with_nan_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, body: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap();
        p
    };
    let flat = write("flat.csv", "text_a,text_b,score\na,b,1\nc,d,1\ne,f,1\n");
    let e = destila::eval::compare::read_pairs(&flat)
        .unwrap_err()
        .to_string();
    assert!(e.contains("flat.csv") && e.contains("variance"), "{e}");
    let nan = write("nan.csv", "text_a,text_b,score\na,b,1\nc,d,NaN\ne,f,2\n");
    let e = destila::eval::compare::read_pairs(&nan)
        .unwrap_err()
        .to_string();
    assert!(e.contains("nan.csv") && e.contains("line 3"), "{e}");
    let empty = write("empty.csv", "text_a,text_b,score\n");
    let e = destila::eval::compare::read_pairs(&empty)
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty.csv") && e.contains("0 pairs"), "{e}");
}

#[test]
fn untied_head_fitting_trains_its_own_decoder_and_the_student_stays_tied() {
    let dir = tempfile::tempdir().unwrap();
    let headless = Heads {
        pooler: true,
        ..Default::default()
    };
    let t = tiny_teacher(&dir.path().join("teacher"), 2, 32, 4, headless);
    let body = format!("{BODY}losses: {{kd_mlm: {{weight: 1.0}}}}\n");
    let mut r = recipe(dir.path(), &t, &body);
    r.teacher.as_mut().unwrap().fit.decoder = destila::distill::recipe::Decoder::Untied;
    let s = {
        let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        run(&r, &quiet()).unwrap()
    };
    let fitted = destila::bert::load(r.output.join("teacher-heads"), &Default::default()).unwrap();
    assert!(!fitted.config().tie_word_embeddings);
    let original = destila::bert::load(&t, &Default::default()).unwrap();
    let (a, b) = (original.vs.variables(), fitted.vs.variables());
    let emb = "bert.embeddings.word_embeddings.weight";
    assert!(a[emb].equal(&b[emb]), "the embeddings moved");
    let dec = &b["cls.predictions.decoder.weight"];
    assert!(!dec.equal(&b[emb]), "the decoder did not train");
    // It started from the embeddings: after 4 small steps it is still close to them.
    let rel = (dec - &b[emb]).norm().double_value(&[]) / b[emb].norm().double_value(&[]);
    assert!(rel < 0.2, "{rel}");
    // The student keeps one vocabulary matrix.
    let student = destila::bert::load(&s.final_model, &Default::default()).unwrap();
    assert!(student.config().tie_word_embeddings);
    assert!(!student
        .vs
        .variables()
        .contains_key("cls.predictions.decoder.weight"));
}
