"""The table of scripts/experiments/adapt_curve.sh: each adaptation run's held-out MLM/NSP (its
teacher-adapted/metrics.csv, validation rows) and its embeddings against the original
teacher on unseen news (its report/eval.json)."""
import csv
import json
import math
import sys
from pathlib import Path

out = Path(sys.argv[1])
runs = ["all-layers", "top-3", "top-1", "corpus-16th", "preserve-4"]
times = dict(
    line.split() for line in (out / "times.txt").read_text().splitlines() if line.strip()
)
print("| run | step | MLM accuracy | MLM loss (ppl) | NSP accuracy | pooled_cos (1 - cos) |"
      " structure Spearman vs original | human judgements | time (s) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for r in runs:
    m = out / r / "teacher-adapted" / "metrics.csv"
    if not m.exists():
        continue
    rows = [x for x in csv.DictReader(m.open()) if x["split"] == "validation"]
    ev = json.loads((out / r / "report" / "eval.json").read_text())
    for i, x in enumerate(rows):
        last = i == len(rows) - 1
        mlm = float(x["mlm"])
        tail = (
            f" {ev['similarity']['mean']['spearman']:.4f} |"
            f" {ev['judgements']['student_spearman']:.4f} | {times.get(r, '')} |"
            if last
            else " | | |"
        )
        print(
            f"| {r if i == 0 else ''} | {x['step']} | {float(x['mlm_accuracy']):.3f} |"
            f" {mlm:.2f} ({math.exp(mlm):.0f}) | {float(x['nsp_accuracy']):.3f} |"
            f" {float(x['pooled_cos']):.3f} |" + tail
        )
