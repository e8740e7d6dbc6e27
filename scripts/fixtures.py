"""Reference outputs from Hugging Face `transformers` for destila's tests.

Usage: python scripts/fixtures.py TEACHER_DIR OUT_DIR

Writes token ids (BertTokenizerFast), the real teacher's outputs on padded batches, and
small random BertForPreTraining checkpoints saved in each layout destila must load, with
their outputs. Deterministic (seeded); needs no network.
"""

import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertForMaskedLM, BertForPreTraining,
                          BertModel, BertTokenizerFast)

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Ele ocupa um alto posto na empresa",
    "Abasteci meu carro no posto do alto do morro",
    "Ação, coração e informação: São Paulo é ótimo!",
    "Crème brûlée, naïve café, jalapeño; Zürich & Köln.",
    "",
    "   ",
    "Numbers: 3.14159, 1,000,000 and 42nd; 2026-11-26 at 13:45.",
    "Pneumonoultramicroscopicsilicovolcanoconiosis is a very long word.",
    "xqzjvkw blorptastic frumious bandersnatch",
    "Hello!!! What?! ... (parentheses) [brackets] {braces} \"quotes\" 'single'",
    "E-mail me at someone@example.com or visit https://example.org/path?q=1",
    "中文字符和日本語のテキスト",
    "Emoji 😀 and symbols © ® ™ € £ ¥",
    "UPPER CASE and MiXeD cAsE words",
    "It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife.",
    "Tab\tseparated\nand newline\r\nseparated text",
    "A [MASK] token inside the text, and [CLS] and [SEP] too.",
    "don't won't can't it's o'clock",
    "Mr. Knightley and Dr. Perry walked to Hartfield at 3 p.m.",
    "The word posto appears once; posto appears twice.",
    " ".join(["repetition"] * 200),
    "\u00e9t\u00e9 vs e\u0301te\u0301 (composed and decomposed accents)",
]

PAIRS = [
    ("Where is the station?", "It is down the road."),
    ("Ele ocupa um alto posto na empresa", "Abasteci meu carro no posto do alto do morro"),
    ("Short.", "A much longer second segment that will certainly need to be truncated somewhere along the way."),
    ("A much longer first segment that will certainly need to be truncated somewhere along the way.", "Short."),
    ("Both segments here are fairly long and will be cut down", "to fit the maximum length that the test asks for today"),
    ("", "empty first segment"),
    ("empty second segment", ""),
    ("Emma Woodhouse, handsome, clever, and rich", "had lived nearly twenty-one years in the world"),
]

MAX_SINGLE = 128
MAX_PAIR = 24


def encode_all(tok, max_single=MAX_SINGLE, max_pair=MAX_PAIR):
    single = []
    for t in TEXTS:
        e = tok(t, truncation=True, max_length=max_single)
        single.append({"text": t, "ids": e["input_ids"], "type_ids": e["token_type_ids"]})
    pairs = []
    for a, b in PAIRS:
        e = tok(a, b, truncation="longest_first", max_length=max_pair)
        pairs.append({"a": a, "b": b, "ids": e["input_ids"], "type_ids": e["token_type_ids"]})
    return {"max_single": max_single, "max_pair": max_pair, "single": single, "pairs": pairs}


def tokens(teacher, out):
    result = {"tokenizer_json": encode_all(BertTokenizerFast.from_pretrained(teacher))}
    vocab = os.path.join(teacher, "vocab.txt")
    result["vocab_uncased"] = encode_all(BertTokenizerFast(vocab=vocab, do_lower_case=True))
    # A folder holding only vocab.txt and a cased tokenizer_config.json.
    cased = os.path.join(out, "vocab-cased")
    os.makedirs(cased, exist_ok=True)
    shutil.copy(vocab, cased)
    with open(os.path.join(cased, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False, "tokenizer_class": "BertTokenizer"}, f)
    result["vocab_cased"] = encode_all(BertTokenizerFast.from_pretrained(cased))
    with open(os.path.join(out, "tokens.json"), "w") as f:
        json.dump(result, f, ensure_ascii=False)


def batch_outputs(model, enc):
    with torch.no_grad():
        o = model(**enc, output_hidden_states=True, output_attentions=True)
    t = {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "token_type_ids": enc["token_type_ids"],
        "hidden_states": torch.stack(o.hidden_states),
        "attentions": torch.stack(o.attentions),
    }
    for name in ["last_hidden_state", "pooler_output", "prediction_logits", "seq_relationship_logits", "logits"]:
        if getattr(o, name, None) is not None:
            t[name] = getattr(o, name)
    return {k: v.contiguous() for k, v in t.items()}


def teacher_outputs(teacher, out):
    tok = BertTokenizerFast.from_pretrained(teacher)
    model = BertModel.from_pretrained(teacher, attn_implementation="eager").eval()
    singles = [TEXTS[i] for i in (0, 1, 2, 3, 8, 15, 19, 12)]
    enc = tok(singles, padding=True, truncation=True, max_length=64, return_tensors="pt")
    save_file(batch_outputs(model, enc), os.path.join(out, "teacher_single.safetensors"))
    a, b = zip(*PAIRS)
    enc = tok(list(a), list(b), padding=True, truncation=True, max_length=40, return_tensors="pt")
    save_file(batch_outputs(model, enc), os.path.join(out, "teacher_pair.safetensors"))


def perturb(model, seed):
    """Moves every parameter off its initial value (LayerNorm 1/0, zero biases) so that a
    wrong mapping cannot hide behind a constant."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def tiny_inputs(vocab):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(5, vocab, (3, 12), generator=g)
    ids[:, 0] = 2  # [CLS]-like
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = 0
    types = torch.zeros_like(ids)
    types[0, 6:] = 1
    types[1, 4:9] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def tiny_models(out):
    for act in ["gelu", "gelu_new", "relu"]:
        torch.manual_seed(0)
        cfg = BertConfig(vocab_size=1000, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                         intermediate_size=48, max_position_embeddings=64, hidden_act=act,
                         attn_implementation="eager")
        model = BertForPreTraining(cfg).eval()
        perturb(model, 1)
        name = f"tiny-{act.replace('_', '-')}"
        d = os.path.join(out, name)
        model.save_pretrained(d)
        save_file(batch_outputs(model, tiny_inputs(cfg.vocab_size)), os.path.join(out, f"{name}.safetensors"))
        if act != "gelu":
            continue
        inputs = tiny_inputs(cfg.vocab_size)
        # BertModel layout: no `bert.` prefix, pooler, no heads.
        model.bert.save_pretrained(os.path.join(out, "layout-bertmodel"))
        # BertForMaskedLM: no pooler, MLM head only.
        mlm = BertForMaskedLM(cfg).eval()
        mlm.bert.load_state_dict(model.bert.state_dict(), strict=False)
        mlm.cls.predictions.load_state_dict(model.cls.predictions.state_dict())
        mlm.save_pretrained(os.path.join(out, "layout-maskedlm"))
        save_file(batch_outputs(mlm, inputs), os.path.join(out, "layout-maskedlm.safetensors"))
        # Legacy names: LayerNorm gamma/beta, the position_ids buffer, an explicit decoder weight.
        sd = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
        sd["cls.predictions.decoder.weight"] = sd["bert.embeddings.word_embeddings.weight"].clone()
        sd["bert.embeddings.position_ids"] = torch.arange(cfg.max_position_embeddings).unsqueeze(0)
        legacy = {}
        for k, v in sd.items():
            k = k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
            legacy[k] = v
        d = os.path.join(out, "layout-legacy")
        os.makedirs(d, exist_ok=True)
        save_file(legacy, os.path.join(d, "model.safetensors"))
        shutil.copy(os.path.join(out, name, "config.json"), d)
        # pytorch_model.bin, as older checkpoints ship.
        d = os.path.join(out, "layout-torchbin")
        os.makedirs(d, exist_ok=True)
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
        shutil.copy(os.path.join(out, name, "config.json"), d)
        # Sharded safetensors with an index.
        model.save_pretrained(os.path.join(out, "layout-sharded"), max_shard_size="200KB")


def adamw(out):
    """torch.optim.AdamW over six steps with given gradients and learning rates: a weight
    (decayed) and a bias (not decayed), as destila groups them."""
    g = torch.Generator().manual_seed(11)
    w = torch.randn(3, 4, generator=g)
    b = torch.randn(4, generator=g)
    t = {"w0": w.clone(), "b0": b.clone()}
    pw, pb = torch.nn.Parameter(w.clone()), torch.nn.Parameter(b.clone())
    opt = torch.optim.AdamW([{"params": [pw], "weight_decay": 0.01}, {"params": [pb], "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.999), eps=1e-6, foreach=False)
    lrs = [1e-3, 2e-3, 3e-3, 2e-3, 1e-3, 5e-4]
    for k, lr in enumerate(lrs):
        for group in opt.param_groups:
            group["lr"] = lr
        gw, gb = torch.randn(3, 4, generator=g), torch.randn(4, generator=g)
        pw.grad, pb.grad = gw.clone(), gb.clone()
        opt.step()
        t[f"gw{k}"], t[f"gb{k}"] = gw, gb
        t[f"w{k + 1}"], t[f"b{k + 1}"] = pw.detach().clone(), pb.detach().clone()
    t["lrs"] = torch.tensor(lrs, dtype=torch.float64)
    save_file(t, os.path.join(out, "adamw.safetensors"))


def tiny_mpnet(out):
    """A small random MPNetModel (relative position buckets, RoBERTa-style positions), padded
    with its padding id 1, at a length long enough to reach the logarithmic buckets."""
    from transformers import MPNetConfig, MPNetModel
    torch.manual_seed(0)
    cfg = MPNetConfig(vocab_size=500, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=48, max_position_embeddings=160, hidden_act="gelu",
                      attn_implementation="eager")
    model = MPNetModel(cfg).eval()
    perturb(model, 2)
    with torch.no_grad():  # a strong bias, so a wrong bucket shows
        model.encoder.relative_attention_bias.weight.normal_(0.0, 1.0)
    model.save_pretrained(os.path.join(out, "tiny-mpnet"))
    g = torch.Generator().manual_seed(11)
    ids = torch.randint(5, cfg.vocab_size, (3, 150), generator=g)
    ids[:, 0] = 0  # <s>
    mask = torch.ones_like(ids)
    mask[1, 100:] = 0
    mask[2, 7:] = 0
    ids[mask == 0] = cfg.pad_token_id
    with torch.no_grad():
        o = model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)
    t = {"input_ids": ids, "attention_mask": mask, "hidden_states": torch.stack(o.hidden_states),
         "attentions": torch.stack(o.attentions), "pooler_output": o.pooler_output}
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(out, "tiny-mpnet.safetensors"))
    tiny_mpnet_tokenizer(os.path.join(out, "tiny-mpnet"))


def tiny_mpnet_b(out):
    """A second small random MPNet of another width (24), same tokenizer: the other teacher
    of the multi-teacher tests."""
    import shutil
    from transformers import MPNetConfig, MPNetModel
    torch.manual_seed(1)
    cfg = MPNetConfig(vocab_size=500, hidden_size=24, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=40, max_position_embeddings=160, hidden_act="gelu")
    model = MPNetModel(cfg).eval()
    perturb(model, 3)
    model.save_pretrained(os.path.join(out, "tiny-mpnet-b"))
    shutil.copy(os.path.join(out, "tiny-mpnet", "tokenizer.json"), os.path.join(out, "tiny-mpnet-b"))


def tiny_mpnet_tokenizer(folder):
    """A 500-piece WordPiece tokenizer for the tiny MPNet, shaped as all-mpnet-base-v2's
    (BERT normaliser and pre-tokeniser, <s> A </s>, padding id 1), trained on Austen: a
    teacher with its own vocabulary for the cross-vocabulary tests."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "austen", "train")
    files = sorted(os.path.join(root, f) for f in os.listdir(root))
    tok = Tokenizer(models.WordPiece(unk_token="<unk>"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train(files, trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials, show_progress=False))
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    assert tok.get_vocab_size() <= 500 and tok.token_to_id("<pad>") == 1
    tok.save(os.path.join(folder, "tokenizer.json"))


def main():
    teacher, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)
    tokens(teacher, out)
    teacher_outputs(teacher, out)
    tiny_models(out)
    tiny_mpnet(out)
    tiny_mpnet_b(out)
    adamw(out)
    with open(os.path.join(out, "DONE"), "w") as f:
        f.write("ok\n")


if __name__ == "__main__":
    main()
