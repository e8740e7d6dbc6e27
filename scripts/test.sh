#!/usr/bin/env bash
# Runs the whole test suite and closes with one plain summary line over every test binary.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
log=$(mktemp)
cargo test --release --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
read -r passed failed < <(awk '/^test result:/ { for (i = 1; i < NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { print p + 0, f + 0 }' "$log")
rm -f "$log"
echo
echo "destila: ${passed:-0} passed, ${failed:-0} failed"
exit "$status"
