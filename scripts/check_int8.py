"""The reference for destila's int8 kernels (tests/int8.rs): PyTorch's own dynamically
quantised Linear (torch.ao.nn.quantized.dynamic.Linear, the module
`torch.ao.quantization.quantize_dynamic` puts in) in a transformers BertModel.

  python scripts/check_int8.py DIR INPUTS.safetensors OUT.safetensors

DIR is a `destila export --quantize int8` folder (NAME.qweight int8 [out, in] and NAME.qscale
f32 [out], symmetric per output row). The encoder's dense layers get exactly those int8
weights; everything else its f32 tensors. Writes `dynamic` (the quantised model's
last_hidden_state) and `dequantised` (the same model with f32 weights q * scale) to OUT and
prints how many layers were quantised.
"""

import json
import sys

import torch
from safetensors.torch import load_file, save_file
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from transformers import BertConfig, BertModel

d, inputs, out = sys.argv[1:4]
raw = load_file(f"{d}/model.int8.safetensors")  # destila int8 export (not for transformers)
state, qweights = {}, {}
for name, t in raw.items():
    if name.endswith(".qscale"):
        continue
    if name.endswith(".qweight"):
        base = name[: -len(".qweight")]
        scale = raw[base + ".qscale"].float()
        state[base] = t.float() * scale[:, None]
        qweights[base] = (t, scale)
    else:
        state[name] = t.float()
state = {k.removeprefix("bert."): v for k, v in state.items()}
qweights = {k.removeprefix("bert."): v for k, v in qweights.items()}
config = BertConfig.from_pretrained(d)
model = BertModel(config, add_pooling_layer=False).eval()
missing, unexpected = model.load_state_dict(state, strict=False)
assert not [m for m in missing if "position_ids" not in m], missing
x = load_file(inputs)
with torch.no_grad():
    dequantised = model(**x).last_hidden_state

quantised = 0
for name, module in list(model.named_modules()):
    if not name.startswith("encoder.") or not isinstance(module, torch.nn.Linear):
        continue
    q, scale = qweights[name + ".weight"]
    w = torch._make_per_channel_quantized_tensor(
        q, scale.double(), torch.zeros(q.shape[0], dtype=torch.long), 0
    )
    dyn = DynamicLinear(module.in_features, module.out_features, dtype=torch.qint8)
    dyn.set_weight_bias(w, module.bias.detach().float())
    parent = model.get_submodule(name.rsplit(".", 1)[0])
    setattr(parent, name.rsplit(".", 1)[1], dyn)
    quantised += 1
with torch.no_grad():
    dynamic = model(**x).last_hidden_state
save_file({"dynamic": dynamic.contiguous(), "dequantised": dequantised.contiguous()}, out)
print(json.dumps({"quantised": quantised, "engine": torch.backends.quantized.engine}))
