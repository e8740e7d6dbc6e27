"""Writes a large synthetic corpus for the memory benchmark: the shipped Austen paragraphs,
shuffled anew in each pass, until SIZE_MB megabytes.  Usage: gen_corpus.py OUT_DIR SIZE_MB"""

import os
import random
import sys

out, size_mb = sys.argv[1], int(sys.argv[2])
root = os.path.join(os.path.dirname(__file__), "..", "data", "austen", "train")
paragraphs = []
for name in sorted(os.listdir(root)):
    with open(os.path.join(root, name), encoding="utf-8") as f:
        paragraphs += [p for p in f.read().split("\n\n") if p.strip()]
os.makedirs(out, exist_ok=True)
rng = random.Random(0)
target = size_mb * 1_000_000
written, part = 0, 0
while written < target:
    rng.shuffle(paragraphs)
    text = "\n\n".join(paragraphs) + "\n\n"
    with open(os.path.join(out, f"part-{part:04d}.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    written += len(text.encode("utf-8"))
    part += 1
print(f"{written / 1e6:.0f} MB in {part} files under {out}")
