#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh needs on the device machine, within the 64 MiB that
# travel: the stripped release binary (target/release/destila) and the teacher with its
# weights in f16 under .gpu/teacher (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release
mkdir -p .gpu/teacher
T=.cache/teachers/all-MiniLM-L6-v2
.venv/bin/python - "$T" .gpu/teacher <<'PYEOF'
import sys
from safetensors.torch import load_file, save_file
src, dst = sys.argv[1], sys.argv[2]
t = {k: (v.half() if v.is_floating_point() else v) for k, v in load_file(f"{src}/model.safetensors").items()}
save_file(t, f"{dst}/model.safetensors")
PYEOF
for f in config.json tokenizer.json vocab.txt tokenizer_config.json special_tokens_map.json; do cp "$T/$f" .gpu/teacher/; done
du -sh .gpu target/release/destila
echo "carry: target/release/destila .gpu"
