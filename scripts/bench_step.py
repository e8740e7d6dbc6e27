"""The reference distillation step in PyTorch + transformers, for scripts/bench.sh.

  python scripts/bench_step.py TEACHER_DIR [--student-layers 3] [--batch 32] [--seq-len 128]
                               [--threads N] [--warmup W] [--iters I]

Teacher: BertForPreTraining (eval, no grad). Student: BertForPreTraining with the teacher's
layers 1, 3, 5 (uniform), as destila's `from-teacher` init. Losses as destila's demo step,
written the way a transformers user writes them: the models' own forward (MLM logits at
every position), then T²·KL on the masked positions (T = 2), MLM cross-entropy, NSP KD and
cross-entropy, 1 − cos on the last hidden states over non-padding tokens. AdamW (no decay
on biases and LayerNorm), clipping at 1.0. Prints JSON.

--masked-heads: the same step written as well as PyTorch allows, doing destila's work: the
encoders' outputs, then the MLM head applied to the masked positions only (and the NSP head
to the pooled output), same losses.
--gemm: instead of a step, the machine's fp32 GEMM rate at the step's shapes (the encoder's
four matmuls and the masked-position decoder), the yardstick for GFLOP/s.
"""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F
from transformers import BertForPreTraining


def main():
    p = argparse.ArgumentParser()
    p.add_argument("teacher")
    p.add_argument("--student-layers", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--masked-heads", action="store_true")
    p.add_argument("--gemm", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.gemm:
        return gemm(a)
    torch.manual_seed(0)
    teacher = BertForPreTraining.from_pretrained(a.teacher).eval()
    cfg = teacher.config.to_dict()
    lt, ls = cfg["num_hidden_layers"], a.student_layers
    cfg["num_hidden_layers"] = ls
    student = BertForPreTraining(type(teacher.config).from_dict(cfg)).train()
    layers = [round((i + 1) * lt / ls) - 1 for i in range(ls)]
    sd = teacher.state_dict()
    new = {}
    for k in student.state_dict():
        src = k
        if k.startswith("bert.encoder.layer."):
            i, rest = k[len("bert.encoder.layer."):].split(".", 1)
            src = f"bert.encoder.layer.{layers[int(i)]}.{rest}"
        new[k] = sd[src]
    student.load_state_dict(new)
    decay = [p for n, p in student.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in student.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, eps=1e-6)

    g = torch.Generator().manual_seed(0)
    b, n = a.batch, a.seq_len
    ids = torch.randint(1000, cfg["vocab_size"], (b, n), generator=g)
    mask = torch.ones_like(ids)
    types = torch.zeros_like(ids)
    flat = torch.randperm(b * n, generator=g)[: round(0.15 * b * n)].sort().values
    labels = torch.full((b * n,), -100)
    labels[flat] = ids.view(-1)[flat]
    nsp = torch.randint(0, 2, (b,), generator=g)
    T = 2.0

    h = cfg["hidden_size"]

    def outputs(model, **kw):
        """(MLM logits at the masked positions, NSP logits, last hidden state)."""
        if a.masked_heads:
            o = model.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
            seq = o.last_hidden_state
            return (model.cls.predictions(seq.reshape(-1, h)[flat]),
                    model.cls.seq_relationship(o.pooler_output), seq)
        o = model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        return o.prediction_logits.view(-1, cfg["vocab_size"])[flat], o.seq_relationship_logits, o.hidden_states[-1]

    def step():
        with torch.no_grad():
            tl, tn, th = outputs(teacher)
        sl, sn, sh = outputs(student)
        kd_mlm = F.kl_div(F.log_softmax(sl / T, -1), F.log_softmax(tl / T, -1), log_target=True,
                          reduction="batchmean") * T * T
        kd_nsp = F.kl_div(F.log_softmax(sn / T, -1), F.log_softmax(tn / T, -1), log_target=True,
                          reduction="batchmean") * T * T
        mlm = F.cross_entropy(sl, labels[flat])
        nsp_loss = F.cross_entropy(sn, nsp)
        cos = F.cosine_similarity(sh, th, dim=-1)
        m = mask.float()
        hidden_cos = ((1 - cos) * m).sum() / m.sum()
        loss = kd_mlm + kd_nsp + mlm + nsp_loss + hidden_cos
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        return loss.item()

    times = []
    for i in range(a.warmup + a.iters):
        start = time.perf_counter()
        step()
        if i >= a.warmup:
            times.append(time.perf_counter() - start)
    med = statistics.median(times)
    print(json.dumps({
        "impl": "transformers-masked" if a.masked_heads else "transformers", "batch": b, "seq_len": n, "student_layers": ls, "threads": torch.get_num_threads(),
        "seconds": times, "median_s": med, "samples_per_s": b / med,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


def gemm(a):
    """fp32 GEMM GFLOP/s at the step's shapes: (tokens x 384) @ (384 x 384 | 384 x 1536) and
    (tokens x 1536) @ (1536 x 384), and the decoder (masked x 384) @ (384 x 30522); the
    FLOP-weighted rate of a forward pass's mix is the yardstick ("peak at the model's shapes")."""
    cfg = BertForPreTraining.config_class.from_pretrained(a.teacher)
    tokens, h, i, v = a.batch * a.seq_len, cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size
    masked = round(0.15 * tokens)
    # (m, k, n, count per layer or per model)
    shapes = [(tokens, h, h, 4), (tokens, h, i, 1), (tokens, i, h, 1), (masked, h, v, 0)]
    rates, flops, secs = {}, 0.0, 0.0
    for m, k, n, c in shapes:
        x, w = torch.randn(m, k), torch.randn(k, n)
        for _ in range(a.warmup):
            x @ w
        t = []
        for _ in range(a.iters):
            s = time.perf_counter()
            x @ w
            t.append(time.perf_counter() - s)
        sec = statistics.median(t)
        f = 2.0 * m * k * n
        rates[f"{m}x{k}x{n}"] = f / sec / 1e9
        weight = c if c else 1
        flops += f * weight
        secs += sec * weight
    print(json.dumps({"impl": "gemm", "threads": torch.get_num_threads(), "gflops_per_s": rates,
                      "mix_gflops_per_s": flops / secs / 1e9}))


if __name__ == "__main__":
    main()
