#!/usr/bin/env bash
# The default run: the real teacher on the walkthrough's example, then the default
# distillation (recipes/demo.yaml): heads fitted onto the headless teacher (cached in
# runs/demo/teacher-heads), then a 3-layer student distilled on Jane Austen.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
BIN=target/release/destila
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
echo
echo "== The student"
$BIN inspect runs/demo/final
$BIN contrast runs/demo/final
