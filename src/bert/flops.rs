//! The FLOP model of a BERT forward pass (benchmarks and the trainer's GFLOP/s).

use super::BertConfig;

/// Forward FLOPs of a BERT over `tokens` tokens of sequence length `len`, with the MLM
/// head at `masked` positions (multiply-adds count 2).
pub fn forward_flops(c: &BertConfig, tokens: f64, len: f64, masked: f64) -> f64 {
    let (h, i, v, l) = (
        c.hidden_size as f64,
        c.intermediate_size as f64,
        c.vocab_size as f64,
        c.num_hidden_layers as f64,
    );
    let per_token_layer = 2.0 * (4.0 * h * h + 2.0 * h * i) + 4.0 * len * h;
    l * tokens * per_token_layer + 2.0 * masked * (h * h + v * h)
}
