"""The pretraining A/B's table (scripts/pretraining_ab.sh): reads OUT/ARM/report/eval.json
of each arm and OUT/curves/curves.csv, prints markdown.

  python scripts/ab_table.py OUT
"""

import csv
import json
import math
import os
import sys

out = sys.argv[1]
arms = [
    ("labels", "(i) labels"),
    ("soft", "(ii) labels + soft targets"),
    ("layers", "(iii) (ii) + hidden/attention"),
    ("cache", "(iv) (ii) from the top-32 cache"),
    ("cache-s32", "(iv) (ii) from 32 draws"),
    ("cache-s128", "(iv) (ii) from 128 draws"),
    ("soft-t1", "(ii) at T = 1"),
    ("cache-t1", "(iv) at T = 1, top 1024"),
]
arms = [(a, n) for a, n in arms if os.path.exists(os.path.join(out, a, "report", "eval.json"))]
reports = {a: json.load(open(os.path.join(out, a, "report", "eval.json"))) for a, _ in arms}
curves = {}
with open(os.path.join(out, "curves", "curves.csv")) as f:
    for row in csv.DictReader(f):
        curves.setdefault(row["run"], []).append((float(row["step"]), float(row["value"])))


def gain(r, key):
    for g in r.get("baseline", {}).get("metrics", []):
        if g["metric"] == key:
            return g
    return None


first = reports["labels"]
h0 = first["heads"]
print(f"Held-out heads: {h0['masked_positions']} masked positions, {h0['sequences']} sentence pairs "
      "(Persuasion and the State of the Union addresses of 2015-2021); embeddings: "
      f"{first['sentences']} sentences of unseen news, human judgements {first['judgements']['pairs']} pairs.")
print()
print("| arm | held-out MLM loss (validation, last step) | MLM perplexity | MLM accuracy | NSP accuracy "
      "| structure Spearman vs teacher (init) | CKA (init) | human judgements Spearman (init) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
t = reports["soft"]["heads"]
print(f"| adapted teacher | | {t['teacher_mlm_perplexity']:.2f} | {t['teacher_mlm_accuracy']:.4f} "
      f"| {t['teacher_nsp_accuracy']:.4f} | 1 | 1 | {reports['soft']['judgements']['teacher_spearman']:.4f} |")
init = gain(first, "heads.student_mlm_perplexity")
acc0 = gain(first, "heads.student_mlm_accuracy")
nsp0 = gain(first, "heads.student_nsp_accuracy")
if init and acc0 and nsp0:
    print(f"| student init (layers 1, 3, 5) | | {init['init']:.2f} | {acc0['init']:.4f} | {nsp0['init']:.4f} | | | |")
ppl = {}
for a, name in arms:
    r = reports[a]
    h = r["heads"]
    s = r["similarity"]["mean"]
    sp, ck, jd = (gain(r, k) for k in ("similarity.mean.spearman", "similarity.mean.cka", "judgements.student_spearman"))
    last = curves[name][-1]
    ppl[a] = h["student_mlm_perplexity"]
    print(f"| {name} | {last[1]:.4f} (step {last[0]:.0f}, ppl {math.exp(last[1]):.2f}) | {h['student_mlm_perplexity']:.2f} "
          f"| {h['student_mlm_accuracy']:.4f} | {h['student_nsp_accuracy']:.4f} "
          f"| {s['spearman']:.4f} ({sp['init']:.4f}) | {s['cka']:.4f} ({ck['init']:.4f}) "
          f"| {r['judgements']['student_spearman']:.4f} ({jd['init']:.4f}) |")
print()
print(f"(ii) against (i): held-out MLM perplexity {ppl['soft']:.2f} vs {ppl['labels']:.2f}, "
      f"{100 * (1 - ppl['soft'] / ppl['labels']):+.1f}% (goal: at least 10% lower)")
if "cache" in ppl:
    print(f"(iv) against (ii): {ppl['cache']:.2f} vs {ppl['soft']:.2f}, "
          f"{100 * (ppl['cache'] / ppl['soft'] - 1):+.2f}% (goal: within 1%)")
for a, n in (("cache-s32", 32), ("cache-s128", 128)):
    if a in ppl:
        print(f"(iv) from {n} draws against (ii): {ppl[a]:.2f} vs {ppl['soft']:.2f}, "
              f"{100 * (ppl[a] / ppl['soft'] - 1):+.2f}% (goal: within 1%)")
if "cache-t1" in ppl and "soft-t1" in ppl:
    print(f"at T = 1: (ii) {ppl['soft-t1']:.2f} ({100 * (1 - ppl['soft-t1'] / ppl['labels']):+.1f}% below (i)), "
          f"(iv) from the top-1024 cache {ppl['cache-t1']:.2f} ({100 * (ppl['cache-t1'] / ppl['soft-t1'] - 1):+.2f}% against (ii) at T = 1)")
times = dict(l.split() for l in open(os.path.join(out, "times.txt")) if l.strip())
print("seconds: " + ", ".join(f"{k} {v}" for k, v in times.items()))
