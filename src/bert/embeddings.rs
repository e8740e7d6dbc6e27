//! Mirrors `BertEmbeddings` (transformers/models/bert/modeling_bert.py): word + position +
//! token-type embeddings, LayerNorm, dropout. Absolute positions only.

use tch::{nn, Tensor};

use super::config::BertConfig;
use super::init;

#[derive(Debug)]
pub struct Embeddings {
    pub word_embeddings: nn::Embedding,
    pub position_embeddings: nn::Embedding,
    pub token_type_embeddings: nn::Embedding,
    layer_norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    pub fn new(p: &nn::Path, cfg: &BertConfig) -> Self {
        let emb =
            |name: &str, n: i64| nn::embedding(p / name, n, cfg.hidden_size, init::embedding(cfg));
        let word_embeddings = emb("word_embeddings", cfg.vocab_size);
        // HF zeroes the padding row of the word embeddings at initialisation.
        tch::no_grad(|| {
            let _ = word_embeddings.ws.get(cfg.pad_token_id).zero_();
        });
        Embeddings {
            word_embeddings,
            position_embeddings: emb("position_embeddings", cfg.max_position_embeddings),
            token_type_embeddings: emb("token_type_embeddings", cfg.type_vocab_size),
            layer_norm: init::layer_norm(&(p / "LayerNorm"), cfg),
            dropout: cfg.hidden_dropout_prob,
        }
    }

    /// `input_ids`, `token_type_ids`: [batch, len] int64.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let len = input_ids.size()[1];
        let positions = Tensor::arange(len, (tch::Kind::Int64, input_ids.device()));
        let xs = input_ids.apply(&self.word_embeddings)
            + token_type_ids.apply(&self.token_type_embeddings)
            + positions.apply(&self.position_embeddings).unsqueeze(0);
        xs.apply(&self.layer_norm).dropout(self.dropout, train)
    }
}
