"""Reference for a teacher that reads text (tests/text_teacher.rs): transformers' MPNetModel
(eager attention) on the folder's own tokenizer.json, mean-pooled as sentence-transformers
pools, over the texts of TEXTS (one a line), and the top K principal directions of those
embeddings (numpy's SVD of the centred matrix).

    python scripts/check_text_teacher.py MODEL_DIR TEXTS K OUT.safetensors
"""

import sys

import numpy as np
import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import MPNetModel


def main():
    folder, texts_path, k, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    texts = [t for t in open(texts_path, encoding="utf-8").read().split("\n") if t]
    model = MPNetModel.from_pretrained(folder, attn_implementation="eager").eval()
    tok = Tokenizer.from_file(folder + "/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(model.config.max_position_embeddings - model.config.pad_token_id - 1)
    rows = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok.encode(t).ids])
            h = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
            rows.append(h.mean(1)[0])
    e = torch.stack(rows)
    x = e.double().numpy()
    x = x - x.mean(0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    save_file({"pooled": e.contiguous(), "pca": torch.from_numpy(vt[:k].T.copy()).float()}, out)


if __name__ == "__main__":
    main()
