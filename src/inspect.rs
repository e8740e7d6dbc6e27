//! `destila inspect`: what a checkpoint folder holds.

use std::path::Path;

use crate::bert::{self, model::count_params, model::param_kind, LoadOptions};
use crate::error::Result;
use crate::tokenize::BertTokenizer;

#[derive(Debug, serde::Serialize)]
pub struct Inspection {
    pub dir: String,
    pub layers: i64,
    pub hidden_size: i64,
    pub heads: i64,
    pub head_dim: i64,
    pub intermediate_size: i64,
    /// A structurally pruned model's heads and feed-forward widths, layer by layer.
    pub layer_heads: Option<Vec<i64>>,
    pub layer_intermediate_sizes: Option<Vec<i64>>,
    pub activation: String,
    pub vocab_size: i64,
    pub tokenizer_vocab_size: Option<usize>,
    pub tokenizer_source: Option<String>,
    pub max_positions: i64,
    pub type_vocab_size: i64,
    pub pooler: bool,
    pub mlm_head: bool,
    pub nsp_head: bool,
    pub stored_dtypes: Vec<String>,
    pub loaded_dtype: String,
    pub params_embeddings: i64,
    pub params_encoder: i64,
    pub params_pooler: i64,
    pub params_mlm_head: i64,
    pub params_nsp_head: i64,
    pub params_total: i64,
    pub weights: Vec<String>,
    pub notes: Vec<String>,
}

pub fn inspect(dir: &Path) -> Result<Inspection> {
    let model = bert::load(dir, &LoadOptions::default())?;
    // No tokenizer files is fine (a bare checkpoint); a tokenizer that fails to load is not.
    let has_tokenizer = dir.join("tokenizer.json").is_file() || dir.join("vocab.txt").is_file();
    let tokenizer = if has_tokenizer {
        Some(BertTokenizer::from_dir(dir)?)
    } else {
        None
    };
    if let Some(t) = &tokenizer {
        crate::embed::check_vocab(t, &model, dir)?;
    }
    let report = model.report.clone().expect("loaded models carry a report");
    let c = model.config();
    let p = |prefix: &str| count_params(&model.vs, prefix);
    Ok(Inspection {
        dir: dir.display().to_string(),
        layers: c.num_hidden_layers,
        hidden_size: c.hidden_size,
        heads: c.num_attention_heads,
        head_dim: c.head_dim(),
        intermediate_size: c.intermediate_size,
        layer_heads: c.layer_heads.clone(),
        layer_intermediate_sizes: c.layer_intermediate_sizes.clone(),
        activation: c.hidden_act.clone(),
        vocab_size: c.vocab_size,
        tokenizer_vocab_size: tokenizer.as_ref().map(|t| t.vocab_size()),
        tokenizer_source: tokenizer.as_ref().map(|t| t.source().display().to_string()),
        max_positions: c.max_position_embeddings,
        type_vocab_size: c.type_vocab_size,
        pooler: report.checkpoint_heads.pooler,
        mlm_head: report.checkpoint_heads.mlm,
        nsp_head: report.checkpoint_heads.nsp,
        stored_dtypes: report.dtypes.iter().cloned().collect(),
        loaded_dtype: crate::bert::weights::kind_name(param_kind(&model.vs)),
        params_embeddings: p("bert.embeddings."),
        params_encoder: p("bert.encoder."),
        params_pooler: p("bert.pooler."),
        params_mlm_head: p("cls.predictions."),
        params_nsp_head: p("cls.seq_relationship."),
        params_total: p(""),
        weights: report
            .weights
            .iter()
            .map(|w| w.display().to_string())
            .collect(),
        notes: report.notes,
    })
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

impl std::fmt::Display for Inspection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yes = |b: bool| if b { "present" } else { "absent" };
        writeln!(f, "checkpoint     {}", self.dir)?;
        writeln!(f, "weights        {}", self.weights.join(", "))?;
        writeln!(
            f,
            "architecture   BERT, {} layers, hidden {}, {} heads x {}, intermediate {}, {}",
            self.layers,
            self.hidden_size,
            self.heads,
            self.head_dim,
            self.intermediate_size,
            self.activation
        )?;
        let list = |v: &[i64]| {
            v.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if let Some(h) = &self.layer_heads {
            writeln!(f, "pruned heads   per layer: {}", list(h))?;
        }
        if let Some(i) = &self.layer_intermediate_sizes {
            writeln!(f, "pruned FFN     per layer: {}", list(i))?;
        }
        let tok = match (&self.tokenizer_vocab_size, &self.tokenizer_source) {
            (Some(n), Some(s)) => format!("tokenizer {n} ({s})"),
            _ => "no tokenizer".into(),
        };
        writeln!(f, "vocabulary     {} ({tok})", self.vocab_size)?;
        writeln!(
            f,
            "positions      {}, token types {}",
            self.max_positions, self.type_vocab_size
        )?;
        writeln!(
            f,
            "heads          pooler {}, MLM head {}, NSP head {}",
            yes(self.pooler),
            yes(self.mlm_head),
            yes(self.nsp_head)
        )?;
        writeln!(
            f,
            "dtype          stored {}, loaded {}",
            self.stored_dtypes.join("/"),
            self.loaded_dtype
        )?;
        writeln!(f, "parameters")?;
        let rows = [
            ("embeddings", self.params_embeddings),
            ("encoder", self.params_encoder),
            ("pooler", self.params_pooler),
            ("MLM head", self.params_mlm_head),
            ("NSP head", self.params_nsp_head),
            ("total", self.params_total),
        ];
        for (name, n) in rows {
            writeln!(f, "  {name:<12} {:>14}", thousands(n))?;
        }
        if self.mlm_head {
            writeln!(
                f,
                "  (the MLM decoder is tied to the word embeddings and counted there)"
            )?;
        }
        for n in &self.notes {
            writeln!(f, "note           {n}")?;
        }
        Ok(())
    }
}
