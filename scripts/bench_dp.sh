#!/usr/bin/env bash
# Data-parallel throughput on this machine, interleaved in ROUNDS: one process (THREADS
# threads, batch 2B); two processes under torchrun (THREADS/2 threads each, batch B each),
# the same global batch; and one process with THREADS/2 threads and batch B, the work of
# one rank alone, against which the two ranks' scaling efficiency is measured. Teacher: all-MiniLM-L6-v2 + heads (6x384); student 3x384
# from the teacher; the demo's five losses; sequences of 128. Report: target/bench/dp.md.
#   B (16), STEPS (8), ROUNDS (2), THREADS (nproc)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN=${BIN:-target/release/destila}
PY=${PY:-.venv/bin/python}
MODEL=.cache/bench/minilm-pretraining
B=${B:-16}
STEPS=${STEPS:-8}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-$(nproc)}
OUT=target/bench
RUN=$OUT/dp
mkdir -p $OUT $RUN
[ -f $MODEL/model.safetensors ] || $PY scripts/bench_forward.py prepare .cache/teachers/all-MiniLM-L6-v2 $MODEL
cat > $RUN/recipe.yaml <<YAML
seed: 7
output: $RUN/out
device: cpu
teacher: {checkpoint: $MODEL}
student: {layers: 3, init: from-teacher}
data: {train: [data/austen/train], max_seq_len: 128, tokenizer: .cache/teachers/all-MiniLM-L6-v2}
losses: {temperature: 2.0, kd_mlm: {weight: 1}, kd_nsp: {weight: 1}, mlm: {weight: 1}, nsp: {weight: 1}, hidden_cos: {weight: 1}}
optimizer: {learning_rate: 0.0001, warmup_steps: 0}
training: {steps: $STEPS, batch_size: $B, eval_every: 0, checkpoint_every: 0, log_every: 1}
YAML
log=$OUT/dp.jsonl
: > $log
half=$(( THREADS > 1 ? THREADS / 2 : 1 ))
for r in $(seq "$ROUNDS"); do
  echo "dp round $r/$ROUNDS: 1 process" >&2
  $BIN --threads "$THREADS" distill $RUN/recipe.yaml --quiet --force --set output=$RUN/one \
    --set training.batch_size=$((2 * B)) > /dev/null
  $PY - $RUN/one/metrics.csv one "$THREADS" >> $log <<'PYEOF'
import csv, json, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train"][2:]
print(json.dumps({"impl": sys.argv[2], "threads": int(sys.argv[3]),
                  "samples_per_s": statistics.median(float(r["samples_per_s"]) for r in rows)}))
PYEOF
  echo "dp round $r/$ROUNDS: 1 rank's work alone" >&2
  $BIN --threads "$half" distill $RUN/recipe.yaml --quiet --force --set output=$RUN/alone > /dev/null
  $PY - $RUN/alone/metrics.csv alone "$half" >> $log <<'PYEOF'
import csv, json, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train"][2:]
med = lambda k: statistics.median(float(r[k]) for r in rows)
print(json.dumps({"impl": sys.argv[2], "threads": int(sys.argv[3]), "samples_per_s": med("samples_per_s"),
                  "step_s": med("step_s")}))
PYEOF
  echo "dp round $r/$ROUNDS: 2 processes" >&2
  OMP_NUM_THREADS=$half torchrun --standalone --nproc-per-node 2 --no-python \
    $BIN --threads "$half" distill $RUN/recipe.yaml --quiet --force --set output=$RUN/two > /dev/null
  $PY - $RUN/two/metrics.csv two "$half" >> $log <<'PYEOF'
import csv, json, statistics, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["split"] == "train"][2:]
med = lambda k: statistics.median(float(r[k]) for r in rows)
print(json.dumps({"impl": sys.argv[2], "threads": int(sys.argv[3]), "samples_per_s": med("samples_per_s"),
                  "step_s": med("step_s"), "sync_s": med("sync_s")}))
PYEOF
done
$PY - "$log" "$RUN/two/final/model.safetensors" "$B" <<'PYEOF' | tee $OUT/dp.md
import json, statistics, sys
from safetensors import safe_open
rows = [json.loads(l) for l in open(sys.argv[1])]
med = lambda impl, k: statistics.median(r[k] for r in rows if r["impl"] == impl)
one, two, alone = med("one", "samples_per_s"), med("two", "samples_per_s"), med("alone", "samples_per_s")
step, sync, step_alone = med("two", "step_s"), med("two", "sync_s"), med("alone", "step_s")
with safe_open(sys.argv[2], "np") as f:
    params = sum(f.get_slice(k).get_shape() and __import__("math").prod(f.get_slice(k).get_shape()) for k in f.keys())
b = int(sys.argv[3])
t1 = next(r["threads"] for r in rows if r["impl"] == "one"); t2 = next(r["threads"] for r in rows if r["impl"] == "two")
print(f"Data parallel on this machine: teacher 6x384 + heads, student 3x384, five losses, sequences of 128, global batch {2*b}, {len(rows)} runs")
print()
print("| run | threads per process | samples/s (median) | ratio |")
print("|---|---:|---:|---:|")
print(f"| 1 process, batch {2*b} | {t1} | {one:.2f} | 1.00x |")
print(f"| 2 processes (torchrun, Gloo), batch {b} each | {t2} | {two:.2f} | {two/one:.2f}x |")
print(f"| 1 process, batch {b} (one rank's work alone) | {t2} | {alone:.2f} | {alone/one:.2f}x |")
print()
print(f"Scaling efficiency of the 2 ranks against one rank's work alone: {two/(2*alone):.2f} "
      f"(step {step*1e3:.0f} ms against {step_alone*1e3:.0f} ms; collectives outside the backward pass {sync*1e3:.1f} ms). "
      f"{params/1e6:.2f} M student parameters: {4*params/1e6:.0f} MB of fp32 gradients averaged per step, during the backward pass.")
PYEOF
