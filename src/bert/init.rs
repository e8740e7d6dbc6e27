//! BERT's initialisation (`BertPreTrainedModel._init_weights`): weights N(0, initializer_range),
//! biases zero, LayerNorm weight one and bias zero.

use tch::nn;

use super::config::BertConfig;
use super::linear::Linear;

fn normal(cfg: &BertConfig) -> nn::Init {
    nn::Init::Randn {
        mean: 0.0,
        stdev: cfg.initializer_range,
    }
}

pub fn linear(p: nn::Path, in_dim: i64, out_dim: i64, cfg: &BertConfig) -> Linear {
    let c = nn::LinearConfig {
        ws_init: normal(cfg),
        bs_init: Some(nn::Init::Const(0.0)),
        bias: true,
    };
    Linear::new(nn::linear(p, in_dim, out_dim, c))
}

pub fn embedding(cfg: &BertConfig) -> nn::EmbeddingConfig {
    nn::EmbeddingConfig {
        ws_init: normal(cfg),
        ..Default::default()
    }
}

pub fn layer_norm(p: &nn::Path, cfg: &BertConfig) -> nn::LayerNorm {
    let c = nn::LayerNormConfig {
        eps: cfg.layer_norm_eps,
        ..Default::default()
    };
    nn::layer_norm(p, vec![cfg.hidden_size], c)
}
