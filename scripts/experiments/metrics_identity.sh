#!/usr/bin/env bash
# The short demo's metrics.csv without its timing columns, for checking that a refactoring
# changes no number: run it before and after and compare the two files byte for byte.
#   scripts/metrics_identity.sh OUT.csv
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
out=$1
work=$(mktemp -d)
target/release/destila distill recipes/demo.yaml --quiet \
  --set output="$work/demo" --set data.cache_dir="$work/cache" \
  --set teacher.fit.cache="$work/heads" --set teacher.fit.steps=4 \
  --set training.steps=8 --set training.batch_size=8 --set training.eval_every=4 \
  --set training.eval_batches=2 --set optimizer.warmup_steps=1 \
  --set data.max_seq_len=64 --set device=cpu --threads 2 >/dev/null 2>&1
python3 - "$work/demo/metrics.csv" "$out" <<'PY'
import csv, sys
timing = {"samples_per_s", "tokens_per_s", "elapsed_s", "step_s", "sync_s"}
rows = list(csv.reader(open(sys.argv[1])))
keep = [i for i, c in enumerate(rows[0]) if c not in timing]
with open(sys.argv[2], "w", newline="") as f:
    w = csv.writer(f)
    for r in rows:
        w.writerow([r[i] for i in keep])
PY
rm -rf "$work"
echo "wrote $out ($(wc -l < "$out") lines)"
