//! The FLOP model of a BERT forward pass (benchmarks and the trainer's GFLOP/s).

use super::BertConfig;

/// Forward FLOPs of a BERT over `tokens` tokens of sequence length `len`, with the MLM
/// head at `masked` positions (multiply-adds count 2).
pub fn forward_flops(c: &BertConfig, tokens: f64, len: f64, masked: f64) -> f64 {
    let (h, d, v) = (
        c.hidden_size as f64,
        c.head_dim() as f64,
        c.vocab_size as f64,
    );
    // Each layer at its own widths (a structurally pruned model's differ).
    let layers: f64 = (0..c.num_hidden_layers as usize)
        .map(|l| {
            let (inner, i) = (c.heads_of(l) as f64 * d, c.intermediate_of(l) as f64);
            2.0 * (4.0 * h * inner + 2.0 * h * i) + 4.0 * len * inner
        })
        .sum();
    tokens * layers + 2.0 * masked * (h * h + v * h)
}
