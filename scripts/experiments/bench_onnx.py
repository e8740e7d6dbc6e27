"""Latency of exported ONNX models in onnxruntime (CPU), for BENCHMARKS.md.

  python scripts/experiments/bench_onnx.py --threads 2 --iters 20 DIR...

Random ids (no padding) at batch x 128 for batch 1 and 8; prints one JSON line per
model and batch: median and p95 milliseconds.
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort

p = argparse.ArgumentParser()
p.add_argument("dirs", nargs="+")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--iters", type=int, default=20)
p.add_argument("--seq-len", type=int, default=128)
p.add_argument("--table", action="store_true", help="a line of text per measurement instead of JSON")
a = p.parse_args()
for d in a.dirs:
    o = ort.SessionOptions()
    o.intra_op_num_threads = a.threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    s = ort.InferenceSession(f"{d}/model.onnx", o, providers=["CPUExecutionProvider"])
    for b in [1, 8]:
        rng = np.random.default_rng(0)
        ids = rng.integers(1000, 2000, size=(b, a.seq_len), dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        for _ in range(3):
            s.run(["sentence_embedding"], feeds)
        t = []
        for _ in range(a.iters):
            st = time.perf_counter()
            s.run(["sentence_embedding"], feeds)
            t.append(time.perf_counter() - st)
        t.sort()
        r = {"model": d, "batch": b, "seq_len": a.seq_len, "median_ms": 1e3 * statistics.median(t),
             "p95_ms": 1e3 * t[int(0.95 * (len(t) - 1))]}
        if a.table:
            print(f"  {d.rstrip('/').split('/')[-1]:<20} batch {b} x {a.seq_len}: {r['median_ms']:.1f} ms (p95 {r['p95_ms']:.1f})")
        else:
            print(json.dumps(r))
