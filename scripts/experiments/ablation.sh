#!/usr/bin/env bash
# The loss/view ablation in BENCHMARKS.md ("Distillation that makes a better student"): each
# row trains scripts/experiments/ablation.yaml with its overrides, evaluates the student and its init
# on the unseen-domain material of .cache/eval, and prints one summary line.
# Usage: scripts/ablation.sh [ROW ...]   (default: every row; about 4 minutes a row here)
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
BIN=target/release/destila
declare -A ROWS=(
  [pcos-1e4]="--set losses.pooled_cos.view=clean"
  [sim-1e4]="--set losses.pooled_cos.view=clean --set losses.similarity.weight=1 --set losses.similarity.view=clean"
  [sim-3e4]="--set optimizer.learning_rate=0.0003 --set losses.pooled_cos.view=clean --set losses.similarity.weight=1 --set losses.similarity.view=clean"
  [sim-3e4-masked]="--set optimizer.learning_rate=0.0003 --set losses.pooled_cos.view=masked --set losses.similarity.weight=1 --set losses.similarity.view=masked"
  [sim-hcos]="--set optimizer.learning_rate=0.0003 --set losses.pooled_cos.view=clean --set losses.similarity.weight=1 --set losses.similarity.view=clean --set losses.hidden_cos.weight=1 --set losses.hidden_cos.view=clean"
  [sim-kd]="--set optimizer.learning_rate=0.0003 --set losses.pooled_cos.view=clean --set losses.similarity.weight=1 --set losses.similarity.view=clean --set losses.kd_mlm.weight=0.1 --set losses.mlm.weight=0.1 --set teacher.heads=fit --set teacher.fit.steps=120 --set teacher.fit.learning_rate=0.002 --set losses.temperature=2.0"
  [sim-kl]="--set optimizer.learning_rate=0.0003 --set losses.pooled_cos.view=clean --set losses.similarity.weight=1 --set losses.similarity.view=clean --set losses.similarity.form=kl --set losses.similarity.temperature=0.05"
  [sentences]="--set optimizer.learning_rate=0.0003 --set data.examples=sentences --set training.batch_size=64 --set losses.pooled_cos.view=clean --set losses.similarity.weight=1 --set losses.similarity.view=clean"
)
rows=("$@")
[ ${#rows[@]} = 0 ] && rows=(pcos-1e4 sim-1e4 sim-3e4 sim-3e4-masked sim-hcos sim-kd sim-kl sentences)
mkdir -p runs/ablation
for row in "${rows[@]}"; do
  [ -n "${ROWS[$row]:-}" ] || { echo "ablation: no row $row (rows: ${!ROWS[*]})" >&2; exit 2; }
  out=runs/ablation/$row
  start=$(date +%s)
  # shellcheck disable=SC2086
  $BIN distill scripts/experiments/ablation.yaml --force --quiet --set output=$out ${ROWS[$row]} > $out.log 2>&1
  secs=$(( $(date +%s) - start ))
  $BIN eval --teacher .cache/teachers/all-MiniLM-L6-v2 --student $out/final --init $out/init \
    --corpus .cache/eval/lee-background.txt --pairs .cache/eval/lee-pairs.csv --out $out/report > $out/eval.txt
  python3 - "$row" "$secs" "$out/report/eval.json" <<'PY'
import json, sys
row, secs, path = sys.argv[1:]
e = json.load(open(path))
b = {g["metric"]: g for g in e["baseline"]["metrics"]}
j = e["judgements"]
s = lambda k: b[k]["student"]
print(f"{row:<16} {secs:>5}s  structure {s('similarity.mean.spearman'):.4f} (init {b['similarity.mean.spearman']['init']:.4f})"
      f"  CKA {s('similarity.mean.cka'):.4f}  kNN@10 {s('similarity.mean.knn10'):.4f}"
      f"  human {100 * j['student_spearman'] / j['teacher_spearman']:.1f}% (init {100 * b['judgements.student_spearman']['init'] / j['teacher_spearman']:.1f}%)"
      f"  posto {s('posto.student.word_contextual'):.3f}")
PY
done
