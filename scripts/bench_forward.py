"""The Python side of the forward benchmark (scripts/bench.sh).

  prepare TEACHER OUT   BertForPreTraining with the teacher's encoder weights and seeded
                        random MLM/NSP heads, saved so that both sides load the same weights.
  run DIR [--batch B] [--seq-len L] [--threads N] [--warmup W] [--iters I]
                        times `transformers`' BertForPreTraining forward (MLM logits at every
                        position, NSP logits) on random full-length batches; prints JSON.
"""

import argparse
import json
import statistics
import time

import torch
from transformers import BertConfig, BertForPreTraining, BertModel


def prepare(teacher, out):
    torch.manual_seed(0)
    config = BertConfig.from_pretrained(teacher)
    model = BertForPreTraining(config)
    encoder = BertModel.from_pretrained(teacher)
    missing, unexpected = model.bert.load_state_dict(encoder.state_dict(), strict=False)
    assert not unexpected, unexpected
    model.save_pretrained(out)


def run(args):
    torch.set_num_threads(args.threads)
    model = BertForPreTraining.from_pretrained(args.dir).eval()
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(1000, vocab, (args.batch, args.seq_len), generator=g)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    times = []
    with torch.inference_mode():
        for i in range(args.warmup + args.iters):
            start = time.perf_counter()
            out = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
            out.prediction_logits.sum().item()
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "transformers", "batch": args.batch, "seq_len": args.seq_len, "mlm": "all",
        "nsp": True, "threads": torch.get_num_threads(), "seconds": times, "median_s": med,
        "tokens_per_s": args.batch * args.seq_len / med,
        "attn_implementation": model.config._attn_implementation,
    }))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("teacher")
    pp.add_argument("out")
    pr = sub.add_parser("run")
    pr.add_argument("dir")
    pr.add_argument("--batch", type=int, default=32)
    pr.add_argument("--seq-len", type=int, default=128)
    pr.add_argument("--threads", type=int, default=2)
    pr.add_argument("--warmup", type=int, default=1)
    pr.add_argument("--iters", type=int, default=5)
    args = p.parse_args()
    if args.cmd == "prepare":
        prepare(args.teacher, args.out)
    else:
        run(args)


if __name__ == "__main__":
    main()
