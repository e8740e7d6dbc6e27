"""An ONNX export of a sentence-transformers BERT (as torch.onnx writes it: MatMul weights
as initialisers named onnx::MatMul_N, read by nodes named after the module) back into an
HF folder: BertModel weights, the tokenizer of TOKENIZER_DIR, sentence-transformers modules
(mean pooling, 128 tokens). Checks, before writing, that transformers' BertModel on the
folder, mean-pooled, gives onnxruntime's sentence embedding of 64 sentences of TEXT to 1e-4.

  python onnx_to_bert.py MODEL.onnx TOKENIZER_DIR TEXT OUT
"""

import json
import os
import re
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper
from safetensors.torch import save_file
from transformers import AutoTokenizer, BertConfig, BertModel

MAX_LEN = 128


def weights(m):
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    out = {}
    for name, a in init.items():
        if name.startswith("model.0.auto_model."):
            out[name[len("model.0.auto_model."):]] = a
    for n in m.graph.node:
        if n.op_type != "MatMul":
            continue
        w = [i for i in n.input if i in init and i.startswith("onnx::MatMul_")]
        if not w:
            continue
        g = re.fullmatch(r"/model/model\.0/auto_model/(.*)/MatMul", n.name)
        assert g, f"unexpected MatMul node {n.name}"
        out[g.group(1).replace("/", ".") + ".weight"] = init[w[0]].T  # x @ W: W is [in, out]
    return {k: torch.from_numpy(np.array(v, copy=True)) for k, v in out.items()}


def main():
    src, tok_dir, text, out = sys.argv[1:5]
    m = onnx.load(src)
    w = weights(m)
    layers = 1 + max(int(k.split(".")[2]) for k in w if k.startswith("encoder.layer."))
    hidden = w["embeddings.word_embeddings.weight"].shape[1]
    cfg = BertConfig(
        vocab_size=w["embeddings.word_embeddings.weight"].shape[0],
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=12,
        intermediate_size=w["encoder.layer.0.intermediate.dense.weight"].shape[0],
        max_position_embeddings=w["embeddings.position_embeddings.weight"].shape[0],
    )
    model = BertModel(cfg, add_pooling_layer=False).eval()
    missing, unexpected = model.load_state_dict(w, strict=False)
    missing = [k for k in missing if k != "embeddings.position_ids"]
    assert not missing and not unexpected, (missing, unexpected)

    tok = AutoTokenizer.from_pretrained(tok_dir)
    raw = open(text, encoding="utf-8").read().replace("\n", " ").split(". ")
    sents = [s.strip() for s in raw if 5 <= len(s.split()) <= 60][:64]
    x = tok(sents, padding=True, truncation=True, max_length=MAX_LEN, return_tensors="np")
    s = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    names = [o.name for o in s.get_outputs()]
    feeds = {i.name: x[i.name].astype("int64") for i in s.get_inputs()}
    outs = dict(zip(names, s.run(None, feeds)))
    with torch.no_grad():
        h = model(**{k: torch.from_numpy(v) for k, v in x.items()}).last_hidden_state
        mask = torch.from_numpy(x["attention_mask"]).unsqueeze(-1).float()
        mean = ((h * mask).sum(1) / mask.sum(1)).numpy()
    # The graph's sentence embedding: the float output of shape [batch, hidden].
    sent = [v for v in outs.values() if v.dtype == np.float32 and v.shape == mean.shape]
    assert sent, f"no [batch, {hidden}] float output among {names}"
    diff = min(float(np.abs(v - mean).max()) for v in sent)
    assert diff < 1e-4, f"BertModel differs from onnxruntime by {diff}"
    print(f"onnx_to_bert: {layers} layers x {hidden}; transformers vs onnxruntime on {len(sents)} sentences: max |diff| {diff:.2e}")

    os.makedirs(out)
    model.save_pretrained(out)
    for f in ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"]:
        if os.path.isfile(os.path.join(tok_dir, f)):
            shutil.copy(os.path.join(tok_dir, f), out)
    json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
              open(os.path.join(out, "modules.json"), "w"), indent=2)
    json.dump({"max_seq_length": MAX_LEN, "do_lower_case": False},
              open(os.path.join(out, "sentence_bert_config.json"), "w"), indent=2)
    os.makedirs(os.path.join(out, "1_Pooling"))
    json.dump({"word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
               "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
               "pooling_mode_mean_sqrt_len_tokens": False},
              open(os.path.join(out, "1_Pooling", "config.json"), "w"), indent=2)


if __name__ == "__main__":
    main()
