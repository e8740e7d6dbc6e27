#!/usr/bin/env bash
# Side-by-side benchmarks against `transformers` on this machine, interleaved in rounds so
# that drift in the machine's speed hits both sides alike. Figures are medians over rounds;
# the report goes to target/bench/forward.md (copy it into BENCHMARKS.md).
#   THREADS (default: nproc), ROUNDS (3), ITERS (5), DEVICE (cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN=${BIN:-target/release/destila}
PY=${PY:-.venv/bin/python}
TEACHER=.cache/teachers/all-MiniLM-L6-v2
MODEL=.cache/bench/minilm-pretraining
THREADS=${THREADS:-$(nproc)}
ROUNDS=${ROUNDS:-3}
ITERS=${ITERS:-5}
DEVICE=${DEVICE:-cpu}
OUT=target/bench
mkdir -p $OUT
[ -f $MODEL/model.safetensors ] || $PY scripts/bench_forward.py prepare $TEACHER $MODEL

log=$OUT/forward.jsonl
: > $log
for r in $(seq "$ROUNDS"); do
  echo "round $r/$ROUNDS" >&2
  $BIN --threads "$THREADS" bench forward $MODEL --mlm all --nsp --iters "$ITERS" --warmup 1 --device "$DEVICE" \
    | sed 's/^{/{"impl":"destila",/' >> $log
  if [ "$DEVICE" = cpu ]; then
    $PY scripts/bench_forward.py run $MODEL --threads "$THREADS" --iters "$ITERS" --warmup 1 >> $log
  fi
  $BIN --threads "$THREADS" bench forward $MODEL --mlm masked --nsp --iters "$ITERS" --warmup 1 --device "$DEVICE" \
    | sed 's/^{/{"impl":"destila",/' >> $log
done

$PY - "$log" "$THREADS" <<'PYEOF' | tee $OUT/forward.md
import json, statistics, sys, platform
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(impl, mlm):
    v = [r["tokens_per_s"] for r in rows if r["impl"] == impl and r["mlm"] == mlm]
    return statistics.median(v) if v else None
d_all, d_masked, hf = med("destila", "all"), med("destila", "masked"), med("transformers", "all")
dev = next(r.get("device", "cpu") for r in rows if r["impl"] == "destila")
print(f"Teacher forward, all-MiniLM-L6-v2 shape (6x384) + MLM/NSP heads, batch 32 x 128, {dev}, threads {sys.argv[2]}, {len(rows)} runs")
print()
print("| implementation | MLM logits at | tokens/s (median) | ratio to transformers |")
print("|---|---|---:|---:|")
if hf:
    print(f"| transformers BertForPreTraining | every position | {hf:,.0f} | 1.00x |")
for name, v in [("every position", d_all), ("15% masked positions", d_masked)]:
    ratio = f"{v / hf:.2f}x" if hf else "n/a"
    print(f"| destila | {name} | {v:,.0f} | {ratio} |")
PYEOF
