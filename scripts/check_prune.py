"""A pruned folder against the original, in transformers, for tests/prune.rs.

  python scripts/check_prune.py ORIGINAL PRUNED TEXTS.txt

Loads both with AutoModel and AutoTokenizer (fast, from tokenizer.json) and, for each
line of TEXTS.txt, compares the word pieces (the same tokens, under their new ids) and the
mean-pooled last hidden states. Also loads the pruned folder's vocab.txt with the slow
BertTokenizer. Prints JSON: the largest embedding difference, whether the tokens agree,
how many texts came out as [UNK]-free, the vocabulary sizes.
"""

import json
import sys

import torch
from transformers import AutoModel, AutoTokenizer, BertTokenizer

orig_dir, pruned_dir, texts_path = sys.argv[1:4]
texts = [l.strip() for l in open(texts_path, encoding="utf-8") if l.strip()]
mo, mp = AutoModel.from_pretrained(orig_dir).eval(), AutoModel.from_pretrained(pruned_dir).eval()
to, tp = AutoTokenizer.from_pretrained(orig_dir), AutoTokenizer.from_pretrained(pruned_dir)
slow = BertTokenizer.from_pretrained(pruned_dir)


def embed(m, t, text):
    x = t(text, return_tensors="pt")
    with torch.no_grad():
        h = m(**x).last_hidden_state
    mask = x["attention_mask"].unsqueeze(-1).float()
    return (h * mask).sum(1) / mask.sum(1), x["input_ids"][0].tolist()


worst, same_tokens, slow_same = 0.0, True, True
for text in texts:
    eo, io = embed(mo, to, text)
    ep, ip = embed(mp, tp, text)
    same_tokens &= to.convert_ids_to_tokens(io) == tp.convert_ids_to_tokens(ip)
    slow_same &= slow(text)["input_ids"] == ip
    worst = max(worst, (eo - ep).abs().max().item())
print(json.dumps({
    "max_abs": worst,
    "same_tokens": same_tokens,
    "slow_tokenizer_agrees": slow_same,
    "vocab_original": len(to),
    "vocab_pruned": len(tp),
    "config_vocab_size": mp.config.vocab_size,
    "texts": len(texts),
}))
