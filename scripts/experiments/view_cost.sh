#!/usr/bin/env bash
# The cost of a second view (BENCHMARKS.md): median seconds per step of recipes/demo.yaml
# with its embedding losses on the masked view, on the clean view, and with MLM on the
# masked view and the embedding losses on the clean one (two forwards of each model).
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/env.sh
common="--force --quiet --set output=runs/view-cost --set losses.kd_mlm.weight=0 --set teacher.heads=fail --set training.steps=12 --set training.eval_every=0 --set training.eval_batches=1 --set training.log_every=1 --set training.checkpoint_every=0 --set optimizer.warmup_steps=1"
mkdir -p runs
for round in 1 2; do
for cfg in masked clean both; do
  case $cfg in
    masked) extra="--set losses.mlm.weight=0.1 --set losses.pooled_cos.view=masked --set losses.similarity.view=masked";;
    clean) extra="--set losses.mlm.weight=0";;
    both) extra="--set losses.mlm.weight=0.1";;
  esac
  target/release/destila distill recipes/demo.yaml $common $extra > runs/view-cost.log 2>&1 || { tail -3 runs/view-cost.log; exit 1; }
  python3 -c "
import csv,statistics
r=[x for x in csv.DictReader(open('runs/view-cost/metrics.csv')) if x['split']=='train'][2:]
print('$round $cfg step_s median %.3f' % statistics.median(float(x['step_s']) for x in r))"
done; done
