#!/usr/bin/env bash
# The default run: the real teacher on the walkthrough's example, then the default
# distillation (recipes/demo.yaml): the headless teacher adapted to MLM and NSP (once:
# cached in .cache/adapted, copied to runs/demo/teacher-adapted), then a 3-layer student
# distilled on Jane Austen from its soft targets, the labels and its sentence embeddings,
# then measured against its own starting point on text from another domain.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN=target/release/destila
PY=.venv/bin/python
TEACHER=.cache/teachers/all-MiniLM-L6-v2

echo "== The teacher"
$BIN inspect $TEACHER
echo
echo "== Static versus contextual: one word, two senses"
$BIN contrast $TEACHER
echo
echo "== Sentence similarity (mean pooling)"
$BIN embed $TEACHER \
  "Ele ocupa um alto posto na empresa" \
  "Abasteci meu carro no posto do alto do morro" \
  "She holds a senior position in the company" \
  "I filled up my car at the petrol station on the hill"
echo
echo "== The data: examples as the model sees them"
$BIN data preview recipes/demo.yaml -n 3
echo
echo "== Distillation (recipes/demo.yaml)"
$BIN distill recipes/demo.yaml --force
RUN=runs/demo
echo
echo "== Teacher, the student's starting point, and the student, on text from a domain"
echo "   the run never saw (Australian news; human similarity judgements of Lee et al. 2005);"
echo "   MLM and NSP on held-out text (Persuasion, State of the Union addresses 2015-2021)"
# The adapted teacher (or the teacher with its fitted heads) when the recipe made one.
EVAL_TEACHER=$TEACHER
[ -f $RUN/teacher-heads/model.safetensors ] && EVAL_TEACHER=$RUN/teacher-heads
[ -f $RUN/teacher-adapted/model.safetensors ] && EVAL_TEACHER=$RUN/teacher-adapted
$BIN eval --teacher $EVAL_TEACHER --student $RUN/final --init $RUN/init \
  --corpus .cache/eval/lee-background.txt --pairs .cache/eval/lee-pairs.csv \
  --heads-corpus data/austen/validation --heads-corpus .cache/corpora/sotu/validation \
  --head-batches 16 --out $RUN/report
echo
echo "== The walkthrough's \"posto\" for each model: which keeps the two senses apart"
echo "   (a lower contextual cosine of the word in its two sentences)"
$BIN contrast $TEACHER $EVAL_TEACHER $RUN/init $RUN/final
echo
echo "== Export for transformers (f32 with heads), and an int8 copy"
$BIN export $RUN/final --out $RUN/export --eval $RUN/report/eval.json --force
$BIN export $RUN/final --out $RUN/export-int8 --quantize int8 --force
echo "int8 against the f32 student:"
$BIN eval --teacher $RUN/final --student $RUN/export-int8 --out $RUN/report-int8 --head-batches 4 --no-init | grep -A3 "similarity structure"
echo
echo "== Size and speed"
$BIN bench --teacher $EVAL_TEACHER --student $RUN/final --out $RUN/report
echo
echo "== The compression ladder: the student in f16, int8, with its vocabulary pruned to the"
echo "   training text, and as ONNX; structure on the unseen news (see BENCHMARKS.md)"
$BIN bench ladder --teacher $TEACHER --student $RUN/final --sentences .cache/eval/lee-background.txt \
  --prune-corpus data/austen/train --out $RUN/ladder --iters 3
echo
echo "== Where things are"
echo "teacher       $EVAL_TEACHER (adapted from $TEACHER; its curve: $EVAL_TEACHER/metrics.csv)"
echo "report        $RUN/report/eval.json, eval.csv, bench.md, bench.csv"
echo "plots         $RUN/loss.svg, $RUN/report/similarity.svg, $RUN/report/bench.svg (and .png)"
echo "student (HF)  $RUN/export   (transformers: AutoModel.from_pretrained(\"$RUN/export\"))"
echo "int8 copy     $RUN/export-int8 (destila), report $RUN/report-int8/eval.json"
echo "compressed    $RUN/ladder/variants (f16, int8, pruned, ONNX fp32/int8), $RUN/ladder/ladder.md"
echo "checkpoints   $RUN/checkpoints, metrics $RUN/metrics.csv"
