//! HF `config.json` for BERT, with the defaults of `transformers`' `BertConfig`
//! (transformers/models/bert/configuration_bert.py).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Activation named by `hidden_act` (transformers/activations.py, ACT2FN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact erf form.
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`: the tanh approximation.
    GeluTanh,
    Relu,
    /// `silu`, `swish`.
    Silu,
}

/// The first of `fields` (a config's sizes) that is not positive, as (field, message).
pub(crate) fn first_non_positive(fields: &[(&str, i64)]) -> Option<(String, String)> {
    fields
        .iter()
        .find(|(_, v)| *v <= 0)
        .map(|(f, v)| (f.to_string(), format!("{v} must be positive")))
}

impl Activation {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            _ => return None,
        })
    }

    pub fn apply(self, xs: &tch::Tensor) -> tch::Tensor {
        match self {
            Activation::Gelu => xs.gelu("none"),
            Activation::GeluTanh => xs.gelu("tanh"),
            Activation::Relu => xs.relu(),
            Activation::Silu => xs.silu(),
        }
    }
}

/// The `model_type` of a structurally pruned model's config.json: transformers does not know
/// it, and so refuses the folder rather than build a model of the wrong shape.
pub const PRUNED_MODEL_TYPE: &str = "destila-pruned-bert";

/// The `model_type` of an int8 export's config.json, which transformers does not know.
pub const INT8_MODEL_TYPE: &str = "destila-int8-bert";

/// The `model_type`s a BERT config may carry (none at all counts as BERT): transformers'
/// own, and destila's pruned and int8 folders. Any other (roberta, mpnet, ...) is refused
/// by name, not read as a BERT with other weights.
pub const BERT_MODEL_TYPES: [&str; 3] = ["bert", PRUNED_MODEL_TYPE, INT8_MODEL_TYPE];

pub const ACTIVATIONS: &str = "gelu, gelu_new, gelu_pytorch_tanh, relu, silu, swish";

fn d_vocab() -> i64 {
    30522
}
fn d_hidden() -> i64 {
    768
}
fn d_layers() -> i64 {
    12
}
fn d_heads() -> i64 {
    12
}
fn d_intermediate() -> i64 {
    3072
}
fn d_act() -> String {
    "gelu".into()
}
fn d_dropout() -> f64 {
    0.1
}
fn d_positions() -> i64 {
    512
}
fn d_types() -> i64 {
    2
}
fn d_init() -> f64 {
    0.02
}
fn d_eps() -> f64 {
    1e-12
}
fn d_position_type() -> String {
    "absolute".into()
}
fn d_true() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    #[serde(default = "d_vocab")]
    pub vocab_size: i64,
    #[serde(default = "d_hidden")]
    pub hidden_size: i64,
    #[serde(default = "d_layers")]
    pub num_hidden_layers: i64,
    #[serde(default = "d_heads")]
    pub num_attention_heads: i64,
    #[serde(default = "d_intermediate")]
    pub intermediate_size: i64,
    #[serde(default = "d_act")]
    pub hidden_act: String,
    #[serde(default = "d_dropout")]
    pub hidden_dropout_prob: f64,
    #[serde(default = "d_dropout")]
    pub attention_probs_dropout_prob: f64,
    #[serde(default = "d_positions")]
    pub max_position_embeddings: i64,
    #[serde(default = "d_types")]
    pub type_vocab_size: i64,
    #[serde(default = "d_init")]
    pub initializer_range: f64,
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub pad_token_id: i64,
    #[serde(default = "d_position_type")]
    pub position_embedding_type: String,
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
    /// Structured pruning (`destila prune --heads`): each layer's attention heads, of
    /// `head_dim()` each, where they differ from `num_attention_heads`. transformers 5 has
    /// no `pruned_heads`, so a folder with this key is destila's own (its `model_type` says
    /// so) and `destila export` pads it back to a plain BERT with zero heads.
    #[serde(
        default,
        rename = "destila_layer_heads",
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_heads: Option<Vec<i64>>,
    /// Structured pruning (`destila prune --ffn`): each layer's feed-forward width, where it
    /// differs from `intermediate_size`.
    #[serde(
        default,
        rename = "destila_layer_intermediate_sizes",
        skip_serializing_if = "Option::is_none"
    )]
    pub layer_intermediate_sizes: Option<Vec<i64>>,
    /// Every other key of the file, kept so that a save writes it back.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for BertConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("defaults deserialise")
    }
}

impl BertConfig {
    /// Reads and validates `config.json`; errors name the file and the field.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = crate::error::read_to_string_max(path, crate::error::MAX_CONFIG_BYTES)?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let cfg: BertConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            Error::config(path, field, e.into_inner().to_string())
        })?;
        cfg.validate()
            .map_err(|(field, msg)| Error::config(path, field, msg))?;
        Ok(cfg)
    }

    /// Checks the values a BERT can be built from: `Err((field, message))`.
    /// The weights of this shape (embeddings and encoder layers), as a float.
    pub fn parameter_estimate(&self) -> f64 {
        let h = self.hidden_size as f64;
        let d = self.head_dim() as f64;
        let nominal = 4.0 * h * h + 2.0 * h * self.intermediate_size as f64;
        // The pruned layers one by one (their lists are short: read from a file); the
        // nominal size times the count otherwise, whatever the count.
        let listed = self
            .layer_heads
            .iter()
            .chain(&self.layer_intermediate_sizes)
            .map(Vec::len)
            .max()
            .unwrap_or(0)
            .min(self.num_hidden_layers.max(0) as usize);
        let layers: f64 = (0..listed)
            .map(|i| {
                4.0 * h * d * self.heads_of(i) as f64 + 2.0 * h * self.intermediate_of(i) as f64
            })
            .sum::<f64>()
            + (self.num_hidden_layers as f64 - listed as f64) * nominal;
        (self.vocab_size as f64 + self.max_position_embeddings as f64) * h + layers
    }

    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        if let Some(t) = self.extra.get("model_type") {
            if !t.as_str().is_some_and(|t| BERT_MODEL_TYPES.contains(&t)) {
                let why = if t.as_str() == Some("mpnet") {
                    "destila reads MPNet only as a teacher that reads text (sentence losses)"
                } else {
                    "destila reads BERT encoders (and MPNet as a teacher)"
                };
                return Err(("model_type".into(), format!("{t}: {why}")));
            }
        }
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        if let Some(e) = first_non_positive(&positive) {
            return Err(e);
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err((
                "hidden_size".into(),
                format!(
                    "{} is not divisible by num_attention_heads {}",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        self.validate_kinds()?;
        self.validate_layers()?;
        self.validate_numbers()
    }

    /// The per-layer widths of a structurally pruned model: one per layer, each at least 1,
    /// heads at most `num_attention_heads` (which fixes the head size).
    fn validate_layers(&self) -> std::result::Result<(), (String, String)> {
        for (field, list, max) in [
            (
                "destila_layer_heads",
                &self.layer_heads,
                Some(self.num_attention_heads),
            ),
            (
                "destila_layer_intermediate_sizes",
                &self.layer_intermediate_sizes,
                None,
            ),
        ] {
            let Some(list) = list else { continue };
            if list.len() as i64 != self.num_hidden_layers {
                return Err((
                    field.into(),
                    format!(
                        "{} entries, but num_hidden_layers is {}",
                        list.len(),
                        self.num_hidden_layers
                    ),
                ));
            }
            for (i, &n) in list.iter().enumerate() {
                if n < 1 || max.is_some_and(|m| n > m) {
                    let bound = max.map_or(String::new(), |m| {
                        format!(" and at most num_attention_heads {m}")
                    });
                    return Err((
                        format!("{field}[{i}]"),
                        format!("{n} must be at least 1{bound}"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Layer `i`'s attention heads.
    pub fn heads_of(&self, i: usize) -> i64 {
        self.layer_heads
            .as_ref()
            .and_then(|l| l.get(i).copied())
            .unwrap_or(self.num_attention_heads)
    }

    /// Layer `i`'s feed-forward width.
    pub fn intermediate_of(&self, i: usize) -> i64 {
        self.layer_intermediate_sizes
            .as_ref()
            .and_then(|l| l.get(i).copied())
            .unwrap_or(self.intermediate_size)
    }

    /// Whether some layer is narrower than the config's nominal shape.
    pub fn is_pruned(&self) -> bool {
        self.layer_heads.is_some() || self.layer_intermediate_sizes.is_some()
    }

    /// The same shape with every layer at the nominal widths (what `export` pads to).
    pub fn unpruned(&self) -> BertConfig {
        BertConfig {
            layer_heads: None,
            layer_intermediate_sizes: None,
            ..self.clone()
        }
    }

    /// The named choices: activation and position embedding type.
    fn validate_kinds(&self) -> std::result::Result<(), (String, String)> {
        if Activation::parse(&self.hidden_act).is_none() {
            return Err((
                "hidden_act".into(),
                format!(
                    "{:?} is not supported (allowed: {ACTIVATIONS})",
                    self.hidden_act
                ),
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err((
                "position_embedding_type".into(),
                format!(
                    "{:?} is not supported (only \"absolute\")",
                    self.position_embedding_type
                ),
            ));
        }
        Ok(())
    }

    /// Probabilities, epsilons, the size of the whole, the padding id.
    fn validate_numbers(&self) -> std::result::Result<(), (String, String)> {
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            (
                "attention_probs_dropout_prob",
                self.attention_probs_dropout_prob,
            ),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err((field.into(), format!("{p} must be in [0, 1)")));
            }
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err((
                "layer_norm_eps".into(),
                format!("{} must be positive and finite", self.layer_norm_eps),
            ));
        }
        if !(self.initializer_range.is_finite() && (0.0..=1.0).contains(&self.initializer_range)) {
            // BERT uses 0.02; weights drawn wider than 1 overflow float32 activations.
            return Err((
                "initializer_range".into(),
                format!(
                    "{} must be between 0 and 1 (BERT uses 0.02)",
                    self.initializer_range
                ),
            ));
        }
        // Far beyond any BERT, and beyond what fits in memory: refused before allocating.
        let params = self.parameter_estimate();
        if params > 2e10 {
            // Named: the size furthest beyond the largest BERT-like models.
            let far = [
                ("vocab_size", self.vocab_size as f64 / 250_002.0),
                ("hidden_size", self.hidden_size as f64 / 1024.0),
                ("num_hidden_layers", self.num_hidden_layers as f64 / 24.0),
                ("intermediate_size", self.intermediate_size as f64 / 4096.0),
                (
                    "max_position_embeddings",
                    self.max_position_embeddings as f64 / 8192.0,
                ),
            ]
            .into_iter()
            .fold(("vocab_size", 0.0), |a, b| if b.1 > a.1 { b } else { a });
            return Err((
                far.0.into(),
                format!(
                    "this shape (vocab_size {}, hidden_size {}, {} layers, intermediate_size {}, max_position_embeddings {}) has about {:.0e} parameters: too large to build",
                    self.vocab_size,
                    self.hidden_size,
                    self.num_hidden_layers,
                    self.intermediate_size,
                    self.max_position_embeddings,
                    params
                ),
            ));
        }
        if self.pad_token_id < 0 || self.pad_token_id >= self.vocab_size {
            return Err((
                "pad_token_id".into(),
                format!(
                    "{} is outside the vocabulary (size {})",
                    self.pad_token_id, self.vocab_size
                ),
            ));
        }
        Ok(())
    }

    pub fn activation(&self) -> Activation {
        // validate() has checked the name; fall back to gelu for a config built in code.
        Activation::parse(&self.hidden_act).unwrap_or(Activation::Gelu)
    }

    pub fn head_dim(&self) -> i64 {
        self.hidden_size / self.num_attention_heads
    }

    /// The JSON written beside a saved model: our fields, the kept extras, and `architectures`.
    pub fn to_json(&self, architecture: &str) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("config serialises");
        let map = v.as_object_mut().expect("config is an object");
        map.insert("architectures".into(), serde_json::json!([architecture]));
        let model_type = if self.is_pruned() {
            PRUNED_MODEL_TYPE
        } else {
            "bert"
        };
        map.insert("model_type".into(), serde_json::json!(model_type));
        v
    }
}
