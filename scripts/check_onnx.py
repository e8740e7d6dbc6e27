"""An exported model.onnx in onnxruntime, for tests/onnx.rs.

  python scripts/check_onnx.py DIR TEXTS.txt

Tokenizes the lines of TEXTS.txt with the folder's tokenizer (one padded batch), runs
DIR/model.onnx with onnxruntime on the CPU and prints JSON: the sentence embeddings, the
shape of last_hidden_state, and the operator types in the graph.
"""

import json
import sys

import onnx
import onnxruntime as ort
from transformers import AutoTokenizer

d, texts_path = sys.argv[1:3]
texts = [l.strip() for l in open(texts_path, encoding="utf-8") if l.strip()]
tok = AutoTokenizer.from_pretrained(d)
x = tok(texts, padding=True, return_tensors="np")
feeds = {k: x[k].astype("int64") for k in ["input_ids", "attention_mask", "token_type_ids"]}
o = ort.SessionOptions()
o.log_severity_level = 3
s = ort.InferenceSession(f"{d}/model.onnx", o, providers=["CPUExecutionProvider"])
hidden, emb = s.run(["last_hidden_state", "sentence_embedding"], feeds)
ops = sorted({n.op_type for n in onnx.load(f"{d}/model.onnx").graph.node})
print(json.dumps({"embeddings": emb.tolist(), "hidden_shape": list(hidden.shape), "ops": ops}))
