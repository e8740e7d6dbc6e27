"""Loads an exported folder with transformers and runs it, for tests/export.rs.

  python scripts/check_export.py DIR CLASS INPUTS.safetensors OUT.safetensors

CLASS is AutoModel or BertForPreTraining. Prints the loading info as JSON (missing and
unexpected keys) and writes the model's outputs on INPUTS (input_ids, attention_mask,
token_type_ids) to OUT.
"""

import json
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoTokenizer, BertForPreTraining

d, cls, inputs, out = sys.argv[1:5]
model_class = {"AutoModel": AutoModel, "BertForPreTraining": BertForPreTraining}[cls]
model, info = model_class.from_pretrained(d, output_loading_info=True)
model.eval()
tok = AutoTokenizer.from_pretrained(d)
x = load_file(inputs)
with torch.no_grad():
    o = model(**x)
t = {}
for name in ["last_hidden_state", "pooler_output", "prediction_logits", "seq_relationship_logits"]:
    if getattr(o, name, None) is not None:
        t[name] = getattr(o, name).float().contiguous()
save_file(t, out)
print(json.dumps({
    "class": type(model).__name__,
    "missing": sorted(info["missing_keys"]),
    "unexpected": sorted(info["unexpected_keys"]),
    "mismatched": [str(m) for m in info["mismatched_keys"]],
    "tokenizer_ids": tok("Hello world, posto.")["input_ids"],
}))
