"""A structurally pruned folder against transformers, for tests/structure.rs.

  python scripts/check_structure.py ORIGINAL COMPACT EXPORT TEXTS.txt

ORIGINAL is the model pruned; COMPACT is `destila prune --heads/--ffn/--hidden`'s output
(its prune.json names the kept units in ORIGINAL's numbering); EXPORT is `destila export
COMPACT` (the pruned units padded back as zeros). For each line of TEXTS.txt:

- the ORIGINAL with the pruned units masked to zero (a pruned head's value rows and bias,
  which is transformers' old head_mask = 0; a pruned neuron's intermediate row and bias)
  against EXPORT, last hidden states, when no hidden dimension was pruned (hidden pruning
  changes the LayerNorm statistics, so no mask reproduces it);
- EXPORT through sentence-transformers: the embeddings (printed, for destila to match).

Also tries AutoModel and SentenceTransformer on COMPACT, which must refuse it. Prints JSON.
"""

import json
import sys

import torch
from transformers import AutoModel, AutoTokenizer

orig_dir, compact_dir, export_dir, texts_path = sys.argv[1:5]
texts = [l.strip() for l in open(texts_path, encoding="utf-8") if l.strip()]
kept = json.load(open(f"{compact_dir}/prune.json"))["kept"]

orig = AutoModel.from_pretrained(orig_dir).eval()
cfg = orig.config
d = cfg.hidden_size // cfg.num_attention_heads
hidden_pruned = len(kept["hidden"]) != cfg.hidden_size
masked_heads = masked_ffn = 0
with torch.no_grad():
    for l, layer in enumerate(orig.encoder.layer):
        v = layer.attention.self.value
        for h in range(cfg.num_attention_heads):
            if h not in kept["heads"][l]:
                v.weight[h * d:(h + 1) * d] = 0
                v.bias[h * d:(h + 1) * d] = 0
                masked_heads += 1
        inter = layer.intermediate.dense
        drop = [i for i in range(cfg.intermediate_size) if i not in set(kept["ffn"][l])]
        inter.weight[drop] = 0
        inter.bias[drop] = 0
        masked_ffn += len(drop)

exp = AutoModel.from_pretrained(export_dir).eval()
tok = AutoTokenizer.from_pretrained(export_dir)
worst = 0.0
for text in texts:
    x = tok(text, return_tensors="pt")
    with torch.no_grad():
        a = orig(**x).last_hidden_state
        b = exp(**x).last_hidden_state
    if not hidden_pruned:
        worst = max(worst, (a - b).abs().max().item())


def refused(load):
    try:
        load()
        return None
    except Exception as e:  # the refusal is the point
        return f"{type(e).__name__}: {str(e)[:300]}"


from sentence_transformers import SentenceTransformer

st = SentenceTransformer(export_dir, device="cpu")
emb = st.encode(texts, convert_to_numpy=True, batch_size=8)
print(json.dumps({
    "masked_vs_export_max_abs": None if hidden_pruned else worst,
    "masked_heads": masked_heads,
    "masked_ffn": masked_ffn,
    "export_heads": exp.config.num_attention_heads,
    "export_hidden": exp.config.hidden_size,
    "compact_automodel_refused": refused(lambda: AutoModel.from_pretrained(compact_dir)),
    "compact_sentence_transformers_refused": refused(
        lambda: SentenceTransformer(compact_dir, device="cpu")),
    "st_embeddings": emb.tolist(),
}))
