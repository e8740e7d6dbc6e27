//! destila's int8 kernels (`export --quantize int8` run through libtorch's dynamic int8
//! linear) against PyTorch's own `torch.ao.nn.quantized.dynamic.Linear` in transformers
//! (scripts/check_int8.py), on a 2-layer student of the real teacher.

mod common;

use std::path::{Path, PathBuf};

use destila::bert::{self, ForwardOptions, LoadOptions};
use destila::export::{export, ExportOptions, HeadsMode};
use tch::{Kind, Tensor};

fn python() -> PathBuf {
    std::env::var_os("DESTILA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::root().join(".venv/bin/python"))
}

/// A 2-layer student of the real teacher, exported int8 without heads.
fn int8_student(dir: &Path) -> PathBuf {
    let student = common::short_student(dir);
    let q = dir.join("int8");
    let o = ExportOptions {
        dtype: Kind::Float,
        heads: HeadsMode::Drop,
        int8: true,
        force: false,
        eval: None,
    };
    export(&student, &q, &o).unwrap();
    q
}

fn hidden(dir: &Path, int8_kernels: bool, x: &bert::Inputs) -> (Tensor, usize) {
    let m = bert::load(
        dir,
        &LoadOptions {
            int8_kernels,
            ..Default::default()
        },
    )
    .unwrap();
    let o = tch::no_grad(|| m.forward(x, &ForwardOptions::default())).unwrap();
    (o.last_hidden_state().shallow_clone(), m.int8_layers())
}

#[test]
fn int8_kernels_match_pytorch_dynamic_quantisation() {
    let dir = tempfile::tempdir().unwrap();
    let q = int8_student(dir.path());
    let tok = destila::tokenize::BertTokenizer::from_dir(&q).unwrap();
    let texts = [
        destila::tokenize::Text::Single("The quick brown fox jumps over the lazy dog."),
        destila::tokenize::Text::Single("Ele ocupa um alto posto na empresa."),
        destila::tokenize::Text::Single("A short one."),
    ];
    let (x, _) = tok.batch(&texts).unwrap();
    let inputs = dir.path().join("inputs.safetensors");
    Tensor::write_safetensors(
        &[
            ("input_ids", &x.input_ids),
            ("attention_mask", &x.attention_mask),
            ("token_type_ids", &x.token_type_ids),
        ],
        &inputs,
    )
    .unwrap();
    let out = dir.path().join("reference.safetensors");
    let r = std::process::Command::new(python())
        .arg(common::root().join("scripts/check_int8.py"))
        .args([&q, &inputs, &out])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let info: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&r.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(info["quantised"], 12, "{info}");
    let reference: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();

    let (kernels, packed) = hidden(&q, true, &x);
    let (dequantised, unpacked) = hidden(&q, false, &x);
    assert_eq!((packed, unpacked), (12, 0));
    // Valid positions only: transformers and destila may differ on padding rows.
    let mask = x.attention_mask.to_kind(Kind::Float).unsqueeze(-1);
    let diff = |a: &Tensor, b: &Tensor| common::max_abs(&(a * &mask), &(b * &mask));
    let vs_dynamic = diff(&kernels, &reference["dynamic"]);
    let f32_vs_f32 = diff(&dequantised, &reference["dequantised"]);
    let kernels_vs_f32 = diff(&kernels, &dequantised);
    eprintln!("int8 vs PyTorch dynamic {vs_dynamic:e}, f32 vs transformers {f32_vs_f32:e}, int8 vs f32 {kernels_vs_f32:e}");
    // The same int8 kernels as PyTorch's dynamic Linear: equal to float rounding.
    assert!(
        vs_dynamic < 1e-4,
        "int8 kernels vs PyTorch dynamic: {vs_dynamic}"
    );
    assert!(
        f32_vs_f32 < 1e-4,
        "dequantised vs transformers: {f32_vs_f32}"
    );
    // And they are really used: activations quantised at run time move the outputs.
    assert!(
        kernels_vs_f32 > 10.0 * vs_dynamic.max(1e-6),
        "int8 kernels {kernels_vs_f32} from the dequantised model: were they used?"
    );
}

#[test]
fn int8_kernels_are_switched_off_by_the_environment_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let q = int8_student(dir.path());
    let texts = dir.path().join("texts.txt");
    std::fs::write(&texts, "One sentence.\nAnother one here.\n").unwrap();
    let run = |v: Option<&str>| {
        let mut c = common::destila();
        c.args(["embed"]).arg(&q).arg("--input").arg(&texts);
        c.args(["--format", "jsonl"]);
        if let Some(v) = v {
            c.env("DESTILA_INT8_KERNELS", v);
        }
        c.output().unwrap()
    };
    let on = run(None);
    let off = run(Some("0"));
    assert!(on.status.success() && off.status.success());
    assert_ne!(on.stdout, off.stdout, "the kernels changed nothing");
    let bad = run(Some("yes"));
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("DESTILA_INT8_KERNELS"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
