#!/usr/bin/env bash
# GPU readiness in one call on a CUDA machine, with the stripped release binary built here:
#   CUDA visible, GPU-versus-CPU parity of the teacher's outputs, the forward benchmark on the
#   GPU (f32 and bf16), one distillation step in bf16 with its model FLOP utilisation, and
#   the demo recipe on CUDA in bf16. Prints markdown for BENCHMARKS.md.
# Here:       scripts/gpu-prepare.sh   (teacher in f16 under .gpu/, under the 64 MiB that travel)
# On device:  bash scripts/gpu-check.sh   carrying target/release/destila and .gpu
# PEAK_TFLOPS (default 989, H100/H200 dense bf16) turns achieved FLOP/s into utilisation.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/release/destila}
TEACHER=${TEACHER:-.cache/teachers/all-MiniLM-L6-v2}
[ -f "$TEACHER/model.safetensors" ] || [ ! -d .gpu/teacher ] || TEACHER=.gpu/teacher
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
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

echo "== distillation step (teacher 6x384, student 3x384, batch 32 x 128)"
: > "$OUT/step.jsonl"
for dt in bf16 f32; do
  "$BIN" bench step "$BENCH_MODEL" --device cuda --dtype $dt --iters 20 --warmup 3 | tee -a "$OUT/step.jsonl"
done
python3 - "$OUT/step.jsonl" "$PEAK_TFLOPS" <<'PYEOF'
import json, sys
peak = float(sys.argv[2])
print("| device | dtype | samples/s | TFLOP/s | MFU |")
print("|---|---|---:|---:|---:|")
for l in open(sys.argv[1]):
    r = json.loads(l)
    print(f"| {r['device']} | {r['dtype']} | {r['samples_per_s']:,.1f} | {r['tflops_per_s']:.1f} | {100 * r['tflops_per_s'] / peak:.1f}% of {peak:.0f} |")
PYEOF

echo "== the demo recipe on CUDA, bf16"
"$BIN" distill recipes/demo.yaml --quiet --force --set device=cuda --set precision=bf16 \
  --set "teacher.checkpoint=$MODEL" --set "output=$OUT/demo" | tee "$OUT/demo.txt"
grep -h samples_per_s "$OUT/demo/metrics.csv" >/dev/null && python3 - "$OUT/demo/metrics.csv" <<'PYEOF'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train" and r["samples_per_s"]]
print(f"demo on CUDA: median {statistics.median(float(r['samples_per_s']) for r in rows[1:]):,.1f} samples/s over {len(rows)} logged steps")
PYEOF
echo "== a structurally pruned student (issue 20): half the heads and FFN neurons, parity and latency"
"$BIN" prune "$MODEL" --corpus data/austen/validation --out "$OUT/pruned" --heads 6 --ffn 768 --sentences 64 --force
"$BIN" doctor --model "$OUT/pruned" --device cuda --tolerance 1e-3 | tee -a "$OUT/doctor.jsonl"
: > "$OUT/pruned.jsonl"
for m in "$MODEL" "$OUT/pruned"; do
  for shape in "1 128" "32 128"; do
    set -- $shape
    for dt in f32 bf16; do
      "$BIN" bench forward "$m" --device cuda --dtype $dt --mlm none --batch "$1" --seq-len "$2" --iters 50 --warmup 5 \
        | sed "s|^{|{\"model\":\"$(basename "$m")\",\"dtype\":\"$dt\",|" | tee -a "$OUT/pruned.jsonl"
    done
  done
done
python3 - "$OUT/pruned.jsonl" <<'PYEOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| model | dtype | batch x len | ms (median) |")
print("|---|---|---|---:|")
for r in rows:
    print(f"| {r['model']} | {r['dtype']} | {r['batch']} x {r['seq_len']} | {1e3 * r['median_s']:.2f} |")
PYEOF
echo "gpu-check: ok"

echo "== data parallel: a 1-GPU NCCL process group (torchrun, one process), demo recipe, 30 steps"
python3 -m torch.distributed.run --standalone --nproc-per-node 1 --no-python \
  "$BIN" distill recipes/demo.yaml --quiet --force --set device=cuda --set precision=bf16 \
  --set training.steps=30 --set training.eval_every=0 --set training.log_every=5 \
  --set "teacher.checkpoint=$MODEL" --set "output=$OUT/nccl" | tee "$OUT/nccl.txt"
python3 - "$OUT/nccl/metrics.csv" <<'PYEOF'
import csv, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train" and r.get("step_s")]
step = statistics.median(float(r["step_s"]) for r in rows[1:] or rows)
sync = statistics.median(float(r["sync_s"]) for r in rows[1:] or rows)
print(f"NCCL, 1 rank: step {step*1e3:.1f} ms, of which collectives outside the backward pass {sync*1e3:.2f} ms")
PYEOF
