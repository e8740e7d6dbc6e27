#!/usr/bin/env bash
# Structured pruning without training: which options keep most of the model. Each variant
# prunes all-MiniLM-L6-v2 (its own reference) on 256 sentences of the training text and is
# evaluated against it on held-out news (LEE: structure of 300 sentences, human judgements).
#   OUT (default /tmp/prune-options), VARIANTS (default: all, in order)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-target/release/destila}
T=.cache/teachers/all-MiniLM-L6-v2
OUT=${OUT:-/tmp/prune-options}
mkdir -p "$OUT"
CORPUS=(--corpus data/austen/train --corpus .cache/corpora/sotu/train)
declare -A FLAGS=(
  [global]="--heads 6 --ffn 768"
  [even]="--heads 6 --ffn 768 --even"
  [global-r3]="--heads 6 --ffn 768 --rounds 3"
  [even-r3]="--heads 6 --ffn 768 --even --rounds 3"
  [hidden256]="--hidden 256 --heads 6 --ffn 768"
  [hidden256-r3]="--hidden 256 --heads 6 --ffn 768 --rounds 3"
)
VARIANTS=${VARIANTS:-global even global-r3 even-r3 hidden256 hidden256-r3}
for v in $VARIANTS; do
  echo "== $v" >&2
  # shellcheck disable=SC2086
  $BIN --threads 2 prune $T "${CORPUS[@]}" --out "$OUT/$v" ${FLAGS[$v]} --force | tee "$OUT/$v.prune.txt"
  $BIN --threads 2 eval --teacher $T --student "$OUT/$v" --no-init --device cpu \
    --corpus .cache/eval/lee-background.txt --pairs .cache/eval/lee-pairs.csv \
    --head-batches 1 --out "$OUT/$v-eval" > "$OUT/$v.eval.txt"
done
.venv/bin/python - "$OUT" $VARIANTS <<'PY'
import json, sys
out, variants = sys.argv[1], sys.argv[2:]
print("| variant | heads per layer | FFN per layer | hidden | loss after | structure vs teacher (Spearman / CKA) | humans (student / teacher) |")
print("|---|---|---|---:|---:|---:|---:|")
for v in variants:
    p = json.load(open(f"{out}/{v}/prune.json"))["summary"]
    e = json.load(open(f"{out}/{v}-eval/eval.json"))
    s = e["similarity"]["mean"]
    j = e.get("judgements") or {}
    print(f"| {v} | {' '.join(map(str, p['heads_after']))} | {' '.join(map(str, p['ffn_after']))} | {p['hidden_after']} "
          f"| {p['loss_after']:.5f} | {s['spearman']:.3f} / {s['cka']:.3f} "
          f"| {j.get('student_spearman', float('nan')):.3f} / {j.get('teacher_spearman', float('nan')):.3f} |")
PY
