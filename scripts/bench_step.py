"""The reference distillation step in PyTorch + transformers, for scripts/bench.sh.

  python scripts/bench_step.py TEACHER_DIR [--student-layers 3] [--batch 32] [--seq-len 128]
                               [--threads N] [--warmup W] [--iters I]

Teacher: BertForPreTraining (eval, no grad). Student: BertForPreTraining with the teacher's
layers 1, 3, 5 (uniform), as destila's `from-teacher` init. Losses as destila's demo step,
written the way a transformers user writes them: the models' own forward (MLM logits at
every position), then T²·KL on the masked positions (T = 2), MLM cross-entropy, NSP KD and
cross-entropy, 1 − cos on the last hidden states over non-padding tokens. AdamW (no decay
on biases and LayerNorm), clipping at 1.0. Prints JSON.
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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
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

    def step():
        with torch.no_grad():
            t = teacher(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        s = student(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
        sl = s.prediction_logits.view(-1, cfg["vocab_size"])[flat]
        tl = t.prediction_logits.view(-1, cfg["vocab_size"])[flat]
        kd_mlm = F.kl_div(F.log_softmax(sl / T, -1), F.log_softmax(tl / T, -1), log_target=True,
                          reduction="batchmean") * T * T
        kd_nsp = F.kl_div(F.log_softmax(s.seq_relationship_logits / T, -1),
                          F.log_softmax(t.seq_relationship_logits / T, -1), log_target=True,
                          reduction="batchmean") * T * T
        mlm = F.cross_entropy(sl, labels[flat])
        nsp_loss = F.cross_entropy(s.seq_relationship_logits, nsp)
        cos = F.cosine_similarity(s.hidden_states[-1], t.hidden_states[-1], dim=-1)
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
        "impl": "transformers", "batch": b, "seq_len": n, "student_layers": ls, "threads": torch.get_num_threads(),
        "seconds": times, "median_s": med, "samples_per_s": b / med,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }))


if __name__ == "__main__":
    main()
