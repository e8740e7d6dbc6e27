#!/usr/bin/env bash
# Teacher adaptation at equal steps, one setting changed at a time (BENCHMARKS.md, "Teacher
# adaptation"): every layer unfrozen on the whole general corpus (the demo's setting), the
# top layers only (teacher.adapt.train_layers), a sixteenth of the corpus, and a heavier
# embedding preservation. Each run adapts only (the student's run is one step) and keeps its
# adapted teacher under $OUT/cache, not in .cache; held-out MLM/NSP and pooled_cos come from
# each teacher-adapted/metrics.csv, the embedding structure from `destila eval` on unseen news.
#   OUT (runs/adapt-curve), STEPS (140)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
BIN=${BIN:-target/release/destila}
OUT=${OUT:-runs/adapt-curve}
STEPS=${STEPS:-140}
mkdir -p "$OUT/small"
# A sixteenth of each training corpus: every 16th paragraph of every file.
for src in data/austen/train .cache/corpora/sotu/train; do
  name=$(basename "$(dirname "$src")")
  awk 'BEGIN{RS=""; ORS="\n\n"} NR % 16 == 0' "$src"/* > "$OUT/small/$name.txt"
done
: > "$OUT/times.txt"
run() {
  local name=$1; shift
  echo "== $name" >&2
  local t0=$(date +%s)
  $BIN distill recipes/demo.yaml --quiet --force --set "output=$OUT/$name" \
    --set training.steps=1 --set optimizer.warmup_steps=0 \
    --set "teacher.adapt.steps=$STEPS" --set "teacher.adapt.cache=$OUT/cache" "$@"
  echo "$name $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
  $BIN eval --teacher .cache/teachers/all-MiniLM-L6-v2 --student "$OUT/$name/teacher-adapted" \
    --no-init --corpus .cache/eval/lee-background.txt --pairs .cache/eval/lee-pairs.csv \
    --out "$OUT/$name/report" > "$OUT/$name/report.txt"
}
run all-layers
run top-3 --set teacher.adapt.train_layers=3
run top-1 --set teacher.adapt.train_layers=1
run corpus-16th --set "teacher.adapt.data.train=[$OUT/small/austen.txt,$OUT/small/sotu.txt]"
run preserve-4 --set teacher.adapt.preserve=4
${PY:-.venv/bin/python} scripts/experiments/adapt_curve_table.py "$OUT" | tee "$OUT/table.md"
