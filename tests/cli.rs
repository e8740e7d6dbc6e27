//! The command line on the real teacher: outputs, and errors without panics.

mod common;

use common::destila;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = destila().args(args).output().unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    );
    assert!(!e.contains("panicked"), "panic: {e}");
    (out.status.success(), o, e)
}

#[test]
fn inspect_reports_architecture_heads_and_parameters() {
    let t = common::teacher();
    let (ok, out, err) = run(&["inspect", t.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["layers"], 6);
    assert_eq!(v["hidden_size"], 384);
    assert_eq!(v["vocab_size"], 30522);
    assert_eq!(v["pooler"], true);
    assert_eq!(v["mlm_head"], false);
    assert_eq!(v["nsp_head"], false);
    // Hand count: embeddings (30522 + 512 + 2) * 384 + 2 * 384; per layer 4 * (384*384 + 384)
    // + 2 * (384*1536) + 1536 + 384 + 2 * 2 * 384; pooler 384*384 + 384.
    assert_eq!(v["params_embeddings"], 11_918_592);
    assert_eq!(v["params_encoder"], 6 * 1_774_464);
    assert_eq!(v["params_pooler"], 147_840);
    assert_eq!(v["params_total"], 22_713_216);
    let (ok, text, _) = run(&["inspect", t.to_str().unwrap()]);
    assert!(ok && text.contains("MLM head absent"), "{text}");
}

#[test]
fn embed_prints_similarity_table_and_jsonl() {
    let t = common::teacher();
    let t = t.to_str().unwrap();
    let (ok, out, err) = run(&[
        "embed",
        t,
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    // all-MiniLM-L6-v2's published similarity for this pair is 0.7553.
    assert!(out.contains("0.7553"), "{out}");
    let (ok, out, err) = run(&[
        "embed",
        t,
        "one",
        "two",
        "--format",
        "jsonl",
        "--pooling",
        "cls",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["text"], "two");
    assert_eq!(lines[0]["embedding"].as_array().unwrap().len(), 384);
}

#[test]
fn embed_reads_an_input_file() {
    let t = common::teacher();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("texts.txt");
    std::fs::write(&f, "first line\n\nsecond line\n").unwrap();
    let (ok, out, err) = run(&[
        "embed",
        t.to_str().unwrap(),
        "--input",
        f.to_str().unwrap(),
        "--format",
        "jsonl",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 2);
}

#[test]
fn contrast_separates_the_two_postos() {
    let t = common::teacher();
    let (ok, out, err) = run(&["contrast", t.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The same word piece has the same static vector in both sentences.
    assert!((v["word_static"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    // In context the two senses move apart.
    assert!(v["word_contextual"].as_f64().unwrap() < 0.95, "{v}");
}

#[test]
fn errors_exit_non_zero_with_a_message() {
    let (ok, _, err) = run(&["inspect", "/nonexistent/model"]);
    assert!(!ok && err.contains("/nonexistent/model"), "{err}");
    let t = common::teacher();
    let (ok, _, err) = run(&["embed", t.to_str().unwrap()]);
    assert!(!ok && err.contains("no texts"), "{err}");
    let (ok, _, err) = run(&["embed", t.to_str().unwrap(), "x", "--device", "cuda:7"]);
    assert!(!ok && err.contains("cuda:7"), "{err}");
    let (ok, _, err) = run(&[
        "embed",
        t.to_str().unwrap(),
        "--input",
        "/nonexistent/texts.txt",
    ]);
    assert!(!ok && err.contains("/nonexistent/texts.txt"), "{err}");
    let (ok, _, err) = run(&["contrast", t.to_str().unwrap(), "--word", "absent"]);
    assert!(!ok && err.contains("absent"), "{err}");
}

#[test]
fn init_writes_a_loadable_random_model_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("random");
    let cfg = common::fixtures().join("tiny-gelu/config.json");
    let (ok, _, err) = run(&[
        "init",
        out.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, text, err) = run(&["inspect", out.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (v["mlm_head"].as_bool(), v["nsp_head"].as_bool()),
        (Some(true), Some(true))
    );
    let (ok, _, err) = run(&[
        "init",
        out.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--force"), "{err}");
}

#[test]
fn doctor_reports_environment_and_cpu_parity() {
    let (ok, out, err) = run(&[
        "doctor",
        "--model",
        common::fixtures().join("tiny-gelu").to_str().unwrap(),
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["cuda_available"], false);
    assert_eq!(lines[0]["c10d_backends"][0], "gloo");
    assert_eq!(lines[1]["max_abs_last_hidden"].as_f64(), Some(0.0));
}

#[test]
fn bench_forward_prints_throughput() {
    let (ok, out, err) = run(&[
        "bench",
        "forward",
        common::fixtures().join("tiny-gelu").to_str().unwrap(),
        "--batch",
        "2",
        "--seq-len",
        "16",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(v["seconds"].as_array().unwrap().len(), 2);
}

#[test]
fn data_stats_and_preview() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t.txt");
    std::fs::write(
        &f,
        "Mr. Knightley came. He sat down.\n\nAnother document. With two sentences.\n",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let (ok, out, err) = run(&[
        "data",
        "stats",
        f.to_str().unwrap(),
        "--cache-dir",
        cache.to_str().unwrap(),
        "--json",
        "--tokenizer",
        common::teacher().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["documents"].as_u64(), v["sentences"].as_u64()),
        (Some(2), Some(4))
    );
    let recipe = dir.path().join("r.yaml");
    std::fs::write(
        &recipe,
        format!(
            "teacher: {{checkpoint: {}}}\nstudent: {{layers: 1}}\nlosses: {{kd_mlm: {{weight: 1}}}}\ndata:\n  train: [{}]\n  validation: [{}]\n  cache_dir: {}\n",
            common::teacher().display(),
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/austen/validation").display(),
            f.display(),
            cache.display()
        ),
    )
    .unwrap();
    let (ok, out, err) = run(&["data", "preview", recipe.to_str().unwrap(), "-n", "6"]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("example ").count(), 6, "{out}");
    assert!(
        out.contains("IsNext") && out.contains("NotNext") && out.contains("{[MASK]/"),
        "{out}"
    );
    assert!(out.contains("[CLS]") && out.contains("[SEP]"));
    // Single-sentence examples: one segment, one [SEP], no NSP label.
    let (ok, out, err) = run(&[
        "data",
        "preview",
        recipe.to_str().unwrap(),
        "-n",
        "4",
        "--set",
        "data.examples=sentences",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.matches("one sentence").count(), 4, "{out}");
    assert!(!out.contains("IsNext") && !out.contains("  B:"), "{out}");
    assert!(out
        .lines()
        .filter(|l| l.contains("[CLS]"))
        .all(|l| l.matches("[SEP]").count() == 1));
    let (ok, _, err) = run(&["data", "preview", "/nonexistent/recipe.yaml"]);
    assert!(!ok && err.contains("/nonexistent/recipe.yaml"), "{err}");
}

#[test]
fn bench_step_runs_the_trainer_step() {
    let (ok, out, err) = run(&[
        "bench",
        "step",
        common::fixtures().join("tiny-gelu").to_str().unwrap(),
        "--student-layers",
        "1",
        "--batch",
        "2",
        "--seq-len",
        "16",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--device",
        "cpu",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["samples_per_s"].as_f64().unwrap() > 0.0);
    assert!(v["step_flops"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_binary_finds_libtorch_by_rpath_and_links_libtorch_cuda() {
    let exe = env!("CARGO_BIN_EXE_destila");
    let out = std::process::Command::new("readelf")
        .args(["-d", exe])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("RUNPATH") || text.contains("RPATH"), "{text}");
    let lib = text
        .lines()
        .find(|l| l.contains("RUNPATH") || l.contains("RPATH"))
        .and_then(|l| l.split('[').nth(1))
        .map(|s| s.trim_end_matches(']').to_string())
        .unwrap();
    if std::path::Path::new(&lib).join("libtorch_cuda.so").exists() {
        assert!(
            text.contains("NEEDED") && text.contains("libtorch_cuda.so"),
            "{text}"
        );
    }
    // And it runs without LD_LIBRARY_PATH.
    let r = std::process::Command::new(exe)
        .arg("--version")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(r.status.success());
}

#[test]
fn contrast_of_several_models_is_a_row_each_with_the_single_model_figures() {
    let t = common::teacher();
    let dir = tempfile::tempdir().unwrap();
    let other = common::short_student(dir.path());
    let ts = t.to_str().unwrap();
    let (ok, one, err) = run(&["contrast", ts, "--json"]);
    assert!(ok, "{err}");
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    let (ok, many, err) = run(&["contrast", ts, other.to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let many: serde_json::Value = serde_json::from_str(&many).unwrap();
    assert_eq!(many[ts], one);
    assert!(many[other.to_str().unwrap()]["word_contextual"].is_f64());
    let (ok, table, err) = run(&["contrast", ts, other.to_str().unwrap()]);
    assert!(ok, "{err}");
    let row = table.lines().find(|l| l.starts_with(ts)).unwrap();
    let nums: Vec<f64> = row
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert!(
        (nums[0] - 1.0).abs() < 1e-4
            && (nums[1] - one["word_contextual"].as_f64().unwrap()).abs() < 1e-4,
        "{table}"
    );
    // A missing folder among several: refused by name before anything is printed.
    let (ok, out, err) = run(&["contrast", ts, "/nonexistent/model"]);
    assert!(
        !ok && out.is_empty() && err.contains("/nonexistent/model"),
        "{err}"
    );
}

#[test]
fn curves_draw_a_metrics_column_of_several_runs() {
    let dir = tempfile::tempdir().unwrap();
    let header = destila::distill::metrics::COLUMNS.join(",");
    let row = |split: &str, step: u64, mlm: f64| {
        destila::distill::metrics::COLUMNS
            .iter()
            .map(|c| match *c {
                "split" => split.to_string(),
                "step" => step.to_string(),
                "mlm" => mlm.to_string(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut runs = Vec::new();
    for (name, base) in [("a", 5.0), ("b", 4.0)] {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let text = [
            header.clone(),
            row("validation", 0, base),
            row("train", 5, 9.0),
            row("validation", 10, base - 1.0),
        ]
        .join("\n")
            + "\n";
        std::fs::write(d.join("metrics.csv"), text).unwrap();
        runs.push(d.display().to_string());
    }
    let out = dir.path().join("curves");
    let (ok, stdout, err) = run(&[
        "curves",
        &runs[0],
        &runs[1],
        "--column",
        "mlm",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(
        stdout.contains("a: 4 at step 10") && stdout.contains("b: 3 at step 10"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(out.join("curves.csv")).unwrap();
    assert_eq!(csv, "run,step,value\na,0,5\na,10,4\nb,0,4\nb,10,3\n");
    let svg = std::fs::read_to_string(out.join("curves.svg")).unwrap();
    // One line per run, in the first two series colours, and no third.
    for colour in ["#1F77B4", "#D62728"] {
        assert!(
            svg.contains(&format!("stroke=\"{colour}\"")),
            "{colour}: {svg}"
        );
    }
    assert!(!svg.contains("#2CA02C"), "{svg}");
    assert!(out.join("curves.png").is_file());
    // Bad columns and names are refused by name; a user's file is never overwritten.
    let (ok, _, err) = run(&[
        "curves",
        &runs[0],
        "--column",
        "mlmm",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("mlmm"), "{err}");
    let (ok, _, err) = run(&[
        "curves",
        &runs[0],
        "--column",
        "kd_mlm",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("kd_mlm"), "{err}");
    let (ok, _, err) = run(&[
        "curves",
        &runs[0],
        "--name",
        "x",
        "--name",
        "y",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("--name"), "{err}");
    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("curves.svg"), "my own").unwrap();
    let (ok, _, err) = run(&[
        "curves",
        &runs[0],
        "--column",
        "mlm",
        "--out",
        mine.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("did not write"), "{err}");
    assert_eq!(
        std::fs::read_to_string(mine.join("curves.svg")).unwrap(),
        "my own"
    );
}

/// stdout closed early (a pipe to `head`) ends quietly; a full disk is an error naming it.
#[test]
fn a_closed_pipe_ends_quietly_and_a_full_disk_names_stdout() {
    let t = common::teacher();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {} embed {} --format jsonl {} | head -c 1 > /dev/null",
            env!("CARGO_BIN_EXE_destila"),
            t.display(),
            // About 8 KB a line, 240 KB in all: more than a pipe holds.
            vec!["'A sentence to embed.'"; 30].join(" ")
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.is_empty(), "{err}");
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = destila()
        .args(["recipe", "check"])
        .arg(common::root().join("recipes/pretrain.yaml"))
        .stdout(full)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("stdout") && !err.contains("panicked"),
        "{err}"
    );
}
