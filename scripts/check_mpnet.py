"""The reference for the real MPNet teacher (tests/mpnet.rs): python check_mpnet.py DIR OUT.
Tokenizes a few sentences with transformers' tokenizer (padded), runs MPNetModel (eager
attention) and sentence-transformers' own pipeline on the folder, and writes the ids,
mask, last hidden state and sentence embeddings to OUT (safetensors); prints the texts
as one JSON line."""
import json
import sys

import torch
from safetensors.torch import save_file
from sentence_transformers import SentenceTransformer
from transformers import AutoTokenizer, MPNetModel

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A man is playing a guitar on the stage.",
    "Ele ocupa um alto posto na empresa",
    "Numbers: 3.14159, 1,000,000 and 42nd; 2026-11-26 at 13:45.",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife; "
    "however little known the feelings or views of such a man may be on his first entering a neighbourhood, this truth is "
    "so well fixed in the minds of the surrounding families, that he is considered the rightful property of some one or "
    "other of their daughters.",
    "",
]


def main():
    d, out = sys.argv[1], sys.argv[2]
    torch.set_num_threads(2)
    tok = AutoTokenizer.from_pretrained(d)
    enc = tok(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="pt")
    model = MPNetModel.from_pretrained(d, attn_implementation="eager").eval()
    with torch.no_grad():
        last = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    st = SentenceTransformer(d, device="cpu")
    emb = st.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=False)
    save_file({"input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
               "last_hidden_state": last.contiguous(), "sentence_embedding": emb.contiguous()}, out)
    print(json.dumps(TEXTS))


if __name__ == "__main__":
    main()
