//! MPNet against HF `transformers`' `MPNetModel` (fixture from scripts/fixtures.py: a small
//! random model, perturbed, with a strong relative-position bias, on padded inputs of up to
//! 150 tokens so the logarithmic buckets are reached), and its bad inputs.

mod common;

use common::{max_abs, read};
use destila::mpnet;
use tch::{Device, Tensor};

const TOL: f64 = 1e-4;

#[test]
fn tiny_mpnet_matches_transformers() {
    let r = read("tiny-mpnet.safetensors");
    let model = mpnet::load(common::fixtures().join("tiny-mpnet"), Device::Cpu).unwrap();
    let out = tch::no_grad(|| model.forward(&r["input_ids"], &r["attention_mask"], true)).unwrap();
    let hs = Tensor::stack(&out.hidden_states, 0);
    let d = max_abs(&hs, &r["hidden_states"]);
    eprintln!("tiny MPNet: hidden states max abs difference {d:.2e}");
    assert!(d < TOL, "hidden states differ by {d}");
    let d = max_abs(
        &Tensor::stack(out.attentions.as_ref().unwrap(), 0),
        &r["attentions"],
    );
    assert!(d < TOL, "attention probabilities differ by {d}");
    let d = max_abs(out.pooled.as_ref().unwrap(), &r["pooler_output"]);
    assert!(d < TOL, "pooled output differs by {d}");
    // Not a trivially small difference: the bias and the positions matter.
    let scale = r["hidden_states"].abs().max().double_value(&[]);
    assert!(
        scale > 0.5,
        "reference hidden states too small to test ({scale})"
    );
}

/// A copy of the tiny MPNet in a temporary folder, with `edit` applied to its tensors.
fn edited(edit: impl Fn(&mut Vec<(String, Tensor)>)) -> tempfile::TempDir {
    let src = common::fixtures().join("tiny-mpnet");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut ts = Tensor::read_safetensors(src.join("model.safetensors")).unwrap();
    edit(&mut ts);
    Tensor::write_safetensors(&ts, dir.path().join("model.safetensors")).unwrap();
    dir
}

fn load_err(dir: &std::path::Path) -> String {
    mpnet::load(dir, Device::Cpu).unwrap_err().to_string()
}

#[test]
fn mpnet_checkpoint_errors_name_the_tensor() {
    let d = edited(|ts| ts.retain(|(n, _)| n != "encoder.layer.1.attention.attn.k.bias"));
    let e = load_err(d.path());
    assert!(
        e.contains("encoder.layer.1.attention.attn.k.bias: missing"),
        "{e}"
    );

    let d = edited(|ts| {
        for (n, t) in ts.iter_mut() {
            if n == "encoder.relative_attention_bias.weight" {
                *t = Tensor::zeros([16, 4], (tch::Kind::Float, Device::Cpu));
            }
        }
    });
    let e = load_err(d.path());
    assert!(
        e.contains("encoder.relative_attention_bias.weight: shape [16, 4]"),
        "{e}"
    );

    // A BERT's tensors are not silently ignored.
    let d = edited(|ts| {
        ts.push((
            "embeddings.token_type_embeddings.weight".into(),
            Tensor::zeros([2, 32], (tch::Kind::Float, Device::Cpu)),
        ))
    });
    let e = load_err(d.path());
    assert!(
        e.contains("embeddings.token_type_embeddings.weight: not part of an MPNet encoder"),
        "{e}"
    );

    // The `mpnet.` prefix (MPNetForMaskedLM) loads, with its lm_head left unread.
    let d = edited(|ts| {
        for (n, _) in ts.iter_mut() {
            *n = format!("mpnet.{n}");
        }
        ts.push((
            "lm_head.bias".into(),
            Tensor::zeros([500], (tch::Kind::Float, Device::Cpu)),
        ));
    });
    let m = mpnet::load(d.path(), Device::Cpu).unwrap();
    let r = read("tiny-mpnet.safetensors");
    let out = tch::no_grad(|| m.forward(&r["input_ids"], &r["attention_mask"], false)).unwrap();
    let d = max_abs(out.last_hidden_state(), &r["hidden_states"].get(2));
    assert!(d < TOL, "prefixed checkpoint differs by {d}");
}

#[test]
fn mpnet_config_and_input_errors_name_the_field() {
    let src = common::fixtures().join("tiny-mpnet");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    for (field, value, want) in [
        (
            "model_type",
            serde_json::json!("bert"),
            "model_type: \"bert\" is not \"mpnet\"",
        ),
        (
            "num_attention_heads",
            serde_json::json!(5),
            "num_attention_heads: 5 does not divide",
        ),
        (
            "hidden_act",
            serde_json::json!("swiglu"),
            "hidden_act: \"swiglu\" is not supported",
        ),
        (
            "relative_attention_num_buckets",
            serde_json::json!(8),
            "relative_attention_num_buckets: 8 is fewer",
        ),
        (
            "hidden_size",
            serde_json::json!(0),
            "hidden_size: 0 must be positive",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut c = cfg.clone();
        c[field] = value;
        std::fs::write(dir.path().join("config.json"), c.to_string()).unwrap();
        std::fs::copy(
            src.join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let e = load_err(dir.path());
        assert!(
            e.contains("config.json") && e.contains(want),
            "{field}: {e}"
        );
    }

    let m = mpnet::load(&src, Device::Cpu).unwrap();
    let ids = Tensor::from_slice(&[0i64, 7, 500]).view([1, 3]);
    let mask = ids.ones_like();
    let e = m.forward(&ids, &mask, false).unwrap_err().to_string();
    assert!(
        e.contains("input_ids: token id 500 outside the vocabulary of 500"),
        "{e}"
    );
    let long = Tensor::full([1, 159], 7, (tch::Kind::Int64, Device::Cpu));
    let e = m
        .forward(&long, &long.ones_like(), false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("159 tokens, the model takes at most 158"), "{e}");
    let e = m
        .forward(
            &ids,
            &Tensor::ones([1, 2], (tch::Kind::Int64, Device::Cpu)),
            false,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("attention_mask: shape [1, 2]"), "{e}");
}

/// The real all-mpnet-base-v2 (`make teacher-mpnet`; skipped, saying so, when it is absent):
/// its tokenizer through `tokenizers` gives transformers' ids, and the encoder and mean
/// pooling (then normalisation, as the folder's modules.json says) give transformers' last
/// hidden state and sentence-transformers' embeddings.
#[test]
fn real_mpnet_matches_transformers_and_sentence_transformers() {
    let dir = common::root().join(".cache/teachers/all-mpnet-base-v2");
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "SKIPPED: {} is absent (run `make teacher-mpnet`, 404 MB)",
            dir.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ref.safetensors");
    let r = std::process::Command::new(common::python())
        .arg(common::root().join("scripts/check_mpnet.py"))
        .args([&dir, &out])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stdout = String::from_utf8_lossy(&r.stdout);
    let texts: Vec<String> = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let r: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(&out)
        .unwrap()
        .into_iter()
        .collect();
    let (ids, mask) = (&r["input_ids"], &r["attention_mask"]);

    let mut tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tok.with_truncation(Some(tokenizers::TruncationParams {
        max_length: 128,
        ..Default::default()
    }))
    .unwrap();
    tok.with_padding(None);
    for (i, t) in texts.iter().enumerate() {
        let enc = tok.encode(t.as_str(), true).unwrap();
        let n = mask.get(i as i64).sum(tch::Kind::Int64).int64_value(&[]);
        let want: Vec<i64> = Vec::try_from(ids.get(i as i64).narrow(0, 0, n)).unwrap();
        let got: Vec<i64> = enc.get_ids().iter().map(|&x| x as i64).collect();
        assert_eq!(got, want, "text {i}: token ids differ from transformers'");
    }

    let m = mpnet::load(&dir, Device::Cpu).unwrap();
    assert_eq!(m.config().hidden_size, 768);
    let o = tch::no_grad(|| m.forward(ids, mask, false)).unwrap();
    let d = max_abs(o.last_hidden_state(), &r["last_hidden_state"]);
    eprintln!("all-mpnet-base-v2: last hidden state max abs difference {d:.2e}");
    assert!(d < TOL, "last hidden state differs by {d}");
    // The folder's modules: mean pooling, then Normalize.
    let pooled = destila::distill::losses::mean_pool(o.last_hidden_state(), mask);
    let pooled = &pooled / pooled.norm_scalaropt_dim(2.0, [-1i64].as_slice(), true);
    let d = max_abs(&pooled, &r["sentence_embedding"]);
    eprintln!("all-mpnet-base-v2: sentence embedding max abs difference {d:.2e}");
    assert!(d < TOL, "sentence embeddings differ by {d}");
}
