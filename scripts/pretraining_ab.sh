#!/usr/bin/env bash
# The pretraining A/B (make bench-ab; recipes/pretraining-ab.yaml says what each arm is):
# four students at equal steps, same data, same init, same seed; each evaluated against the
# adapted teacher and its own init (held-out MLM accuracy and perplexity and NSP accuracy on
# Persuasion and the State of the Union addresses of 2015-2021; the embedding measures on
# unseen news); one chart of held-out MLM loss against step for the four runs.
#   OUT (runs/ab), STEPS (the recipe's training.steps), HEAD_BATCHES (16)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN=${BIN:-target/release/destila}
PY=${PY:-.venv/bin/python}
R=recipes/pretraining-ab.yaml
OUT=${OUT:-runs/ab}
HEAD_BATCHES=${HEAD_BATCHES:-16}
SET=()
[ -n "${STEPS:-}" ] && SET+=(--set "training.steps=$STEPS" --set "training.eval_every=$(( STEPS / 10 > 0 ? STEPS / 10 : 1 ))")
# ARMS (default: all, in this order) picks what runs, e.g. ARMS="cache-s32 eval table";
# a cache arm builds its cache first.
ALL="labels soft layers cache soft-t1 cache-t1 cache-s32 cache-s128 eval table"
ARMS=${ARMS:-$ALL}
want() { [[ " $ARMS " == *" $1 "* ]]; }
mkdir -p "$OUT"
start=$(date +%s)
arm() {
  local name=$1; shift
  want "$name" || return 0
  echo "== arm $name" >&2
  local t0=$(date +%s)
  $BIN distill $R --quiet --force --set "output=$OUT/$name" "${SET[@]}" "$@"
  echo "$name $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
}
# Only the batches the arms draw (steps x gradient_accumulation), not the whole epoch.
STEPS_R=${STEPS:-$(awk '/^training:/{t=1} t && $1=="steps:"{print $2; exit}' $R)}
cache() {
  local name=$1; shift
  want "$name" || return 0
  echo "== the targets cache of $name" >&2
  local t0=$(date +%s)
  $BIN targets $R --quiet --force --out "$OUT/targets-$name" --set "output=$OUT/targets-run" \
    "${SET[@]}" "$@" --set "teacher.targets.dir=$OUT/targets-$name" --train-batches "$STEPS_R"
  echo "targets-$name $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
  arm "$name" "$@" --set "teacher.targets.dir=$OUT/targets-$name"
}
touch "$OUT/times.txt"
arm labels --set losses.kd_mlm.weight=0 --set losses.kd_nsp.weight=0
arm soft
arm layers --set losses.hidden_cos.weight=1 --set losses.attention_kl.weight=1
# (iv): the top 32 logits (the default), at T = 2.
cache cache
# The same pair at T = 1 with the top 1024 logits: at T = 2 this teacher's top 32 hold 9% of
# its mass and the cached loss carries little of the soft targets (BENCHMARKS.md); at T = 1
# its top 1024 hold 92%.
T1=(--set losses.temperature=1.0)
arm soft-t1 "${T1[@]}"
cache cache-t1 "${T1[@]}" --set teacher.targets.top_k=1024
# (iv) from draws instead of the top k, at T = 2: 32 draws per masked token (the bytes of
# the top 32), and 128.
cache cache-s32 --set teacher.targets.sample=32
cache cache-s128 --set teacher.targets.sample=128
TEACHER=$OUT/soft/teacher-adapted
if want eval; then
  for a in labels soft layers cache soft-t1 cache-t1 cache-s32 cache-s128; do
    [ -d "$OUT/$a/final" ] || continue
    echo "== eval $a" >&2
    $BIN eval --teacher $TEACHER --student "$OUT/$a/final" --init "$OUT/$a/init" \
      --corpus .cache/eval/lee-background.txt --pairs .cache/eval/lee-pairs.csv \
      --heads-corpus data/austen/validation --heads-corpus .cache/corpora/sotu/validation \
      --head-batches "$HEAD_BATCHES" --out "$OUT/$a/report" > "$OUT/$a/report.txt"
  done
fi
if want table; then
  runs=() names=()
  add() { [ -f "$OUT/$1/metrics.csv" ] && runs+=("$OUT/$1") && names+=(--name "$2"); true; }
  add labels "(i) labels"
  add soft "(ii) labels + soft targets"
  add layers "(iii) (ii) + hidden/attention"
  add cache "(iv) (ii) from the top-32 cache"
  add cache-s32 "(iv) (ii) from 32 draws"
  add cache-s128 "(iv) (ii) from 128 draws"
  add soft-t1 "(ii) at T = 1"
  add cache-t1 "(iv) at T = 1, top 1024"
  $BIN curves "${runs[@]}" --column mlm "${names[@]}" --out "$OUT/curves"
  $PY scripts/ab_table.py "$OUT" | tee "$OUT/ab.md"
fi
echo "total $(( $(date +%s) - start )) s" | tee -a "$OUT/ab.md"
