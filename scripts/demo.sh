#!/usr/bin/env bash
# The default run: the real teacher on the walkthrough's example.
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
