"""Latency of exported ONNX models in onnxruntime (CPU), for BENCHMARKS.md.

  python scripts/experiments/bench_onnx.py --threads 2 --iters 20 DIR...

Random ids (no padding) at batch x 128 for batch 1 and 8; prints one JSON line per
model and batch: median and p95 milliseconds.
"""

import argparse
import json
import os
import sys

# The session and timing loop are the ladder's (scripts/ladder_onnx.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ladder_onnx import latency, session  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("dirs", nargs="+")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--iters", type=int, default=20)
p.add_argument("--seq-len", type=int, default=128)
p.add_argument("--table", action="store_true", help="a line of text per measurement instead of JSON")
a = p.parse_args()
for d in a.dirs:
    s = session(f"{d}/model.onnx", a.threads)
    for b in [1, 8]:
        median, p95 = latency(s, b, a.seq_len, a.iters, warmup=3)
        r = {"model": d, "batch": b, "seq_len": a.seq_len, "median_ms": median, "p95_ms": p95}
        if a.table:
            print(f"  {d.rstrip('/').split('/')[-1]:<20} batch {b} x {a.seq_len}: {r['median_ms']:.1f} ms (p95 {r['p95_ms']:.1f})")
        else:
            print(json.dumps(r))
