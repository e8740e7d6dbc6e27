"""The ONNX rungs of `destila bench ladder`, run in onnxruntime (CPU); the binary carries
this file (include_str!) and runs it with --python.

  python ladder_onnx.py DIR --threads N --iters K
      one JSON line: the latency grid (random ids, no padding, batch 1/8/32 x length
      32/128: median and p95 milliseconds over K runs after one warm-up); the ladder calls
      it once a round, in turn with the other rungs
  python ladder_onnx.py DIR --threads N --embed SENTENCES.txt --max-len L
      one JSON line: the sentence embeddings (the graph's sentence_embedding output) of the
      lines of SENTENCES.txt, tokenized by the folder's tokenizer in padded batches of 32,
      cut at L tokens as destila cuts them, and onnxruntime's version
"""

import argparse
import json
import statistics
import time

import numpy as np
import onnxruntime as ort


def session(model, threads):
    """An onnxruntime CPU session of `model` on `threads` intra-op threads."""
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.log_severity_level = 3
    return ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])


def latency(s, batch, length, iters, warmup=1):
    """Median and p95 milliseconds of `iters` runs of `s` on random ids (no padding) at
    batch x length, after `warmup` runs."""
    ids = np.random.default_rng(0).integers(1000, 2000, size=(batch, length), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    for _ in range(warmup):
        s.run(["sentence_embedding"], feeds)
    t = []
    for _ in range(iters):
        st = time.perf_counter()
        s.run(["sentence_embedding"], feeds)
        t.append(time.perf_counter() - st)
    t.sort()
    return 1e3 * statistics.median(t), 1e3 * t[int(0.95 * (len(t) - 1))]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--embed")
    p.add_argument("--max-len", type=int, default=128)
    a = p.parse_args()
    s = session(f"{a.dir}/model.onnx", a.threads)
    if a.embed is None:
        grid = []
        for length in [32, 128]:
            for batch in [1, 8, 32]:
                grid.append([batch, length, *latency(s, batch, length, a.iters)])
        print(json.dumps({"latency": grid}))
        return
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(a.dir)
    texts = [l.rstrip("\n") for l in open(a.embed, encoding="utf-8")]
    emb = []
    for i in range(0, len(texts), 32):
        x = tok(texts[i : i + 32], padding=True, truncation=True, max_length=a.max_len, return_tensors="np")
        feeds = {k: x[k].astype("int64") for k in ["input_ids", "attention_mask", "token_type_ids"]}
        emb.extend(s.run(["sentence_embedding"], feeds)[0].tolist())
    print(json.dumps({"embeddings": emb, "onnxruntime": ort.__version__}))


if __name__ == "__main__":
    main()
