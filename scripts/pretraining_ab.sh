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
mkdir -p "$OUT"
start=$(date +%s)
arm() {
  local name=$1; shift
  echo "== arm $name" >&2
  local t0=$(date +%s)
  $BIN distill $R --quiet --force --set "output=$OUT/$name" "${SET[@]}" "$@"
  echo "$name $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
}
: > "$OUT/times.txt"
arm labels --set losses.kd_mlm.weight=0 --set losses.kd_nsp.weight=0
arm soft
arm layers --set losses.hidden_cos.weight=1 --set losses.attention_kl.weight=1
echo "== the top-k targets cache" >&2
t0=$(date +%s)
# Only the batches the arms draw (steps x gradient_accumulation), not the whole epoch.
STEPS_R=${STEPS:-$(awk '/^training:/{t=1} t && $1=="steps:"{print $2; exit}' $R)}
$BIN targets $R --quiet --force --out "$OUT/targets" --set "output=$OUT/targets-run" "${SET[@]}" \
  --train-batches "$STEPS_R"
echo "targets $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
arm cache --set "teacher.targets.dir=$OUT/targets"
# The same pair at T = 1 with the top 1024 logits: at T = 2 this teacher's top 32 hold 9% of
# its mass and the cached loss carries little of the soft targets (BENCHMARKS.md); at T = 1
# its top 1024 hold 92%.
T1=(--set losses.temperature=1.0)
arm soft-t1 "${T1[@]}"
t0=$(date +%s)
$BIN targets $R --quiet --force --out "$OUT/targets-t1" --set "output=$OUT/targets-run" "${SET[@]}" \
  "${T1[@]}" --set "teacher.targets.dir=$OUT/targets-t1" --set teacher.targets.top_k=1024 \
  --train-batches "$STEPS_R"
echo "targets-t1 $(( $(date +%s) - t0 ))" >> "$OUT/times.txt"
arm cache-t1 "${T1[@]}" --set "teacher.targets.dir=$OUT/targets-t1" --set teacher.targets.top_k=1024
TEACHER=$OUT/soft/teacher-adapted
for a in labels soft layers cache soft-t1 cache-t1; do
  echo "== eval $a" >&2
  $BIN eval --teacher $TEACHER --student "$OUT/$a/final" --init "$OUT/$a/init" \
    --corpus .cache/eval/lee-background.txt --pairs .cache/eval/lee-pairs.csv \
    --heads-corpus data/austen/validation --heads-corpus .cache/corpora/sotu/validation \
    --head-batches "$HEAD_BATCHES" --out "$OUT/$a/report" > "$OUT/$a/report.txt"
done
$BIN curves "$OUT"/labels "$OUT"/soft "$OUT"/layers "$OUT"/cache "$OUT"/soft-t1 "$OUT"/cache-t1 \
  --column mlm --name "(i) labels" --name "(ii) labels + soft targets" \
  --name "(iii) (ii) + hidden/attention" --name "(iv) (ii) from the top-32 cache" \
  --name "(ii) at T = 1" --name "(iv) at T = 1, top 1024" --out "$OUT/curves"
$PY scripts/ab_table.py "$OUT" | tee "$OUT/ab.md"
echo "total $(( $(date +%s) - start )) s" | tee -a "$OUT/ab.md"
