//! The whole BERT: embeddings, encoder layers, optional pooler, MLM and NSP heads.
//! Mirrors `BertForPreTraining` / `BertModel` (transformers/models/bert/modeling_bert.py);
//! variable paths are HF's parameter names (`bert.encoder.layer.3.attention.self.query.weight`).

use tch::{nn, Device, Kind, Tensor};

use super::attention::{additive_mask, AttentionDetail};
use super::config::BertConfig;
use super::embeddings::Embeddings;
use super::heads::{MlmHead, NspHead, Pooler};
use super::layer::Layer;
use crate::error::{Error, Result};

/// Which optional parts a model has. NSP needs the pooler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heads {
    pub pooler: bool,
    pub mlm: bool,
    pub nsp: bool,
}

impl Heads {
    pub const ALL: Heads = Heads {
        pooler: true,
        mlm: true,
        nsp: true,
    };

    /// The union of two sets (NSP pulls in the pooler).
    pub fn union(self, other: Heads) -> Heads {
        Heads {
            pooler: self.pooler || other.pooler || self.nsp || other.nsp,
            mlm: self.mlm || other.mlm,
            nsp: self.nsp || other.nsp,
        }
    }

    /// The HF class a checkpoint with these heads is saved as.
    pub fn architecture(self) -> &'static str {
        match (self.mlm, self.nsp) {
            (true, true) => "BertForPreTraining",
            (true, false) => "BertForMaskedLM",
            (false, true) => "BertForNextSentencePrediction",
            (false, false) => "BertModel",
        }
    }

    pub fn describe(self) -> String {
        let yes = |b: bool| if b { "present" } else { "absent" };
        format!(
            "pooler {}, MLM head {}, NSP head {}",
            yes(self.pooler),
            yes(self.mlm),
            yes(self.nsp)
        )
    }
}

/// Token ids, 0/1 attention mask and token types, each [batch, len] int64.
#[derive(Debug)]
pub struct Inputs {
    pub input_ids: Tensor,
    pub attention_mask: Tensor,
    pub token_type_ids: Tensor,
}

impl Inputs {
    /// Random token ids (uniform over the non-special vocabulary), no padding, seeded: the
    /// batches of the benchmarks and of `doctor`'s parity check.
    pub fn random(vocab: i64, batch: i64, len: i64, seed: u64) -> Inputs {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Real BERT vocabularies keep [PAD], [unused*] and specials below 1000.
        let low = if vocab > 2000 { 1000 } else { 5.min(vocab - 1) };
        let ids: Vec<i64> = (0..batch * len)
            .map(|_| rng.random_range(low..vocab))
            .collect();
        Inputs {
            input_ids: Tensor::from_slice(&ids).view([batch, len]),
            attention_mask: Tensor::ones([batch, len], (tch::Kind::Int64, Device::Cpu)),
            token_type_ids: Tensor::zeros([batch, len], (tch::Kind::Int64, Device::Cpu)),
        }
    }

    pub fn to_device(&self, device: Device) -> Inputs {
        Inputs {
            input_ids: self.input_ids.to_device(device),
            attention_mask: self.attention_mask.to_device(device),
            token_type_ids: self.token_type_ids.to_device(device),
        }
    }

    pub fn batch_size(&self) -> i64 {
        self.input_ids.size()[0]
    }

    pub fn seq_len(&self) -> i64 {
        self.input_ids.size()[1]
    }
}

/// Where the MLM head runs. The full-vocabulary projection dominates a step's cost, so
/// distillation asks for the masked positions only.
#[derive(Debug, Default)]
pub enum MlmPositions {
    #[default]
    None,
    /// Every position: logits [batch, len, vocab].
    All,
    /// Positions as indices into the flattened [batch * len] sequence: logits [n, vocab].
    Flat(Tensor),
}

impl Clone for MlmPositions {
    fn clone(&self) -> Self {
        match self {
            MlmPositions::None => MlmPositions::None,
            MlmPositions::All => MlmPositions::All,
            MlmPositions::Flat(t) => MlmPositions::Flat(t.shallow_clone()),
        }
    }
}

#[derive(Debug, Default)]
pub struct ForwardOptions {
    /// Return every layer's attention internals (scores, probabilities, q, k, v).
    pub attentions: bool,
    pub mlm: MlmPositions,
    /// Compute the NSP logits (needs the NSP head).
    pub nsp: bool,
    /// Train mode: dropout on.
    pub train: bool,
}

#[derive(Debug)]
pub struct BertOutput {
    /// The embedding output, then each layer's output: num_hidden_layers + 1 tensors
    /// [batch, len, hidden].
    pub hidden_states: Vec<Tensor>,
    pub attentions: Option<Vec<AttentionDetail>>,
    /// tanh(dense(first token)), when the model has a pooler.
    pub pooled: Option<Tensor>,
    pub mlm_logits: Option<Tensor>,
    pub nsp_logits: Option<Tensor>,
}

impl BertOutput {
    pub fn last_hidden_state(&self) -> &Tensor {
        self.hidden_states
            .last()
            .expect("at least the embedding output")
    }
}

#[derive(Debug)]
pub struct Bert {
    pub config: BertConfig,
    pub heads: Heads,
    pub embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Pooler>,
    mlm: Option<MlmHead>,
    nsp: Option<NspHead>,
}

impl Bert {
    /// Builds the model under `root` (a VarStore root), freshly initialised.
    pub fn new(root: &nn::Path, config: &BertConfig, heads: Heads) -> Bert {
        let heads = heads.union(Heads::default());
        let b = root / "bert";
        let embeddings = Embeddings::new(&(&b / "embeddings"), config);
        let enc = &b / "encoder" / "layer";
        let layers = (0..config.num_hidden_layers)
            .map(|i| Layer::new(&(&enc / i), config, i as usize))
            .collect();
        let cls = root / "cls";
        let pooler = heads.pooler.then(|| Pooler::new(&(&b / "pooler"), config));
        let mlm = heads.mlm.then(|| {
            MlmHead::new(
                &(&cls / "predictions"),
                config,
                &embeddings.word_embeddings.ws,
            )
        });
        let nsp = heads.nsp.then(|| NspHead::new(&cls, config));
        Bert {
            config: config.clone(),
            heads,
            embeddings,
            layers,
            pooler,
            mlm,
            nsp,
        }
    }

    /// The encoder's dense layers (what `export --quantize int8` quantises, with the heads'
    /// which inference leaves out).
    pub fn encoder_linears(&self) -> Vec<&super::linear::Linear> {
        self.layers.iter().flat_map(|l| l.linears()).collect()
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    pub fn forward(&self, inputs: &Inputs, opts: &ForwardOptions) -> Result<BertOutput> {
        let size = inputs.input_ids.size();
        if size.len() != 2 {
            return Err(Error::Invalid(format!(
                "input_ids must be [batch, len], got {size:?}"
            )));
        }
        for (name, t) in [
            ("attention_mask", &inputs.attention_mask),
            ("token_type_ids", &inputs.token_type_ids),
        ] {
            if t.size() != size {
                return Err(Error::Invalid(format!(
                    "{name} has shape {:?}, input_ids {size:?}",
                    t.size()
                )));
            }
        }
        if size[1] > self.config.max_position_embeddings {
            return Err(Error::Invalid(format!(
                "sequence length {} exceeds max_position_embeddings {}",
                size[1], self.config.max_position_embeddings
            )));
        }
        if opts.nsp && self.nsp.is_none() {
            return Err(Error::Invalid(
                "NSP logits asked for, but the model has no NSP head".into(),
            ));
        }
        if !matches!(opts.mlm, MlmPositions::None) && self.mlm.is_none() {
            return Err(Error::Invalid(
                "MLM logits asked for, but the model has no MLM head".into(),
            ));
        }

        let train = opts.train;
        let mut xs = self
            .embeddings
            .forward(&inputs.input_ids, &inputs.token_type_ids, train);
        let mask = additive_mask(&inputs.attention_mask, xs.kind());
        let mut hidden_states = Vec::with_capacity(self.layers.len() + 1);
        let mut attentions = opts.attentions.then(Vec::new);
        for layer in &self.layers {
            let (next, detail) = layer.forward(&xs, &mask, opts.attentions, train);
            hidden_states.push(xs);
            if let (Some(all), Some(d)) = (attentions.as_mut(), detail) {
                all.push(d);
            }
            xs = next;
        }
        hidden_states.push(xs);
        let last = hidden_states.last().expect("pushed above");

        let pooled = self.pooler.as_ref().map(|p| p.forward(last));
        let mlm_logits = match (&opts.mlm, &self.mlm) {
            (MlmPositions::All, Some(head)) => Some(head.forward(last)),
            (MlmPositions::Flat(index), Some(head)) => {
                let flat = last.view([-1, self.config.hidden_size]);
                Some(head.forward(&flat.index_select(0, index)))
            }
            _ => None,
        };
        let nsp_logits = match (opts.nsp, &self.nsp, &pooled) {
            (true, Some(head), Some(p)) => Some(head.forward(p)),
            _ => None,
        };
        Ok(BertOutput {
            hidden_states,
            attentions,
            pooled,
            mlm_logits,
            nsp_logits,
        })
    }
}

/// Parameter count of every variable whose name starts with `prefix`.
pub fn count_params(vs: &nn::VarStore, prefix: &str) -> i64 {
    vs.variables()
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(_, t)| t.numel() as i64)
        .sum()
}

/// The kind of the model's floating-point variables.
pub fn param_kind(vs: &nn::VarStore) -> Kind {
    vs.variables()
        .values()
        .next()
        .map(|t| t.kind())
        .unwrap_or(Kind::Float)
}
