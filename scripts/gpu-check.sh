#!/usr/bin/env bash
# GPU readiness in one call on a CUDA machine, with the stripped release binary built here:
#   CUDA visible, GPU-versus-CPU parity of the teacher's outputs, and the forward benchmark
#   on the GPU (f32 and bf16), CPU for reference. Prints a markdown block for BENCHMARKS.md.
# On the device:  bash scripts/gpu-check.sh   (carry target/release/destila and the teacher's
# config.json; when the teacher's weights are not there, a random model of its shape is used,
# which costs the same and checks the same arithmetic).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/destila}
TEACHER=${TEACHER:-.cache/teachers/all-MiniLM-L6-v2}
OUT=${OUT:-target/gpu-check}
mkdir -p "$OUT"
if [ -z "${LD_LIBRARY_PATH:-}" ] || ! ldd "$BIN" | grep -q 'libtorch_cpu.so => /'; then
  TORCH_LIB=$(python3 -c 'import torch,os;print(os.path.dirname(torch.__file__))')/lib
  export LD_LIBRARY_PATH=$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi

echo "== card"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"
echo "== libtorch"
ldd "$BIN" | grep -E 'libtorch_(cpu|cuda)\.so' || true

MODEL=$TEACHER
if [ ! -f "$TEACHER/model.safetensors" ]; then
  MODEL=$OUT/random-minilm-shape
  rm -rf "$MODEL"
  "$BIN" init "$MODEL" --config "$TEACHER/config.json" --heads all
fi
BENCH_MODEL=$OUT/pretraining-shape
rm -rf "$BENCH_MODEL"
"$BIN" init "$BENCH_MODEL" --config "$MODEL/config.json" --heads all

echo "== CUDA and parity (f32, CPU vs cuda:0)"
"$BIN" doctor --model "$MODEL" --device cuda --tolerance 1e-3 | tee "$OUT/doctor.jsonl"

echo "== forward benchmark, batch 32 x 128"
run() { "$BIN" bench forward "$BENCH_MODEL" --nsp --iters 20 --warmup 3 "$@" | tee -a "$OUT/bench.jsonl"; }
: > "$OUT/bench.jsonl"
run --device cuda --dtype f32 --mlm all
run --device cuda --dtype f32 --mlm masked
run --device cuda --dtype bf16 --mlm all
run --device cuda --dtype bf16 --mlm masked
run --device cpu --dtype f32 --mlm masked --iters 3 --warmup 1

python3 - "$OUT/bench.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| device | dtype | MLM logits at | tokens/s |")
print("|---|---|---|---:|")
for r, dtype in zip(rows, ["f32", "f32", "bf16", "bf16", "f32"]):
    print(f"| {r['device']} | {dtype} | {r['mlm']} | {r['tokens_per_s']:,.0f} |")
PYEOF
echo "gpu-check: ok"
