"""Short, varied general-domain English from two Debian packages, as destila corpora.

    python scripts/corpora_extra.py wordnet ROOT OUT
    python scripts/corpora_extra.py gcide ROOT OUT

ROOT is the unpacked package (`dpkg-deb -x`); OUT gets `train/NAME.txt` and
`validation/NAME.txt`, one document a paragraph (blank-line separated), as the recipes read
them (`documents: blank-line`, `sentences: split`).

- wordnet (wordnet-base, WordNet 3.0 licence): each synset of data.{noun,verb,adj,adv} is a
  document: its definition, then its quoted example sentences, each made a sentence
  (capitalised, closed with a full stop) so that the UAX #29 splitter separates them.
- gcide (dict-gcide, GPL-2+): each sense of each entry of gcide.dict.dz (found through
  gcide.index, one entry per offset) is a document: the definition text without the
  headword line, pronunciation, etymology and source tags ([...]), author citations
  (--Shak.), field labels ((Anat.)), sense numbers and synonym lists; senses GCIDE took
  from WordNet 1.5 are left out (the wordnet corpus has them).

The split is by a fixed hash of the document (1 in 50 to validation), so it is the same on
every machine. Deterministic: the same package gives byte-identical files.
"""

import base64
import gzip
import hashlib
import os
import re
import sys

HELD_OUT = 50


def held_out(key):
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % HELD_OUT == 0


def sentence(text):
    text = " ".join(text.split()).strip(" ;,")
    if not text:
        return ""
    text = text[0].upper() + text[1:]
    if text[-1] not in ".!?":
        text += "."
    return text


def wordnet(root):
    base = os.path.join(root, "usr/share/wordnet")
    for pos in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(base, "data." + pos), encoding="utf-8") as f:
            for line in f:
                if line.startswith(" ") or " | " not in line:
                    continue
                offset = line.split(" ", 1)[0]
                gloss = line.split(" | ", 1)[1].strip()
                examples = re.findall(r'"([^"]+)"', gloss)
                definition = gloss.split('"', 1)[0]
                parts = [sentence(definition)] + [sentence(e) for e in examples]
                parts = [p for p in parts if len(p.split()) >= 2]
                if parts:
                    yield pos + offset, " ".join(parts)


LABEL = re.compile(r"\((?:[A-Z][a-z]*\.\s*(?:&\s*)?)+\)")
CITE = re.compile(r"\s--\s?[A-Z][^.;]{0,60}\.")
BRACKET = re.compile(r"\[[^\]]*\]")
ACCENT = re.compile(r"\[[\"=^`'~.,]?([A-Za-z]{1,2})[\"=^`'~.,]?\]")
NUMBER = re.compile(r"^(?:\d+\.|\([a-z]\))\s+")


def gcide_clean(block):
    text = " ".join(block.split())
    # Accented letters are written [\"o], [=a], [ae]: keep the letters.
    text = ACCENT.sub(r"\1", text)
    # The end of an etymology begun on the headword line.
    close, open_ = text.find("]"), text.find("[")
    if close >= 0 and (open_ < 0 or close < open_):
        text = text[close + 1 :]
    text = BRACKET.sub(" ", text)
    text = CITE.sub(" ", text)
    text = LABEL.sub(" ", text)
    text = text.replace("{", "").replace("}", "").replace("\\", "")
    text = NUMBER.sub("", text.strip())
    text = " ".join(text.split())
    return text


def gcide(root):
    base = os.path.join(root, "usr/share/dictd")
    with gzip.open(os.path.join(base, "gcide.dict.dz"), "rb") as f:
        data = f.read()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def b64(s):
        n = 0
        for c in s:
            n = n * 64 + alphabet.index(c)
        return n

    spans = set()
    with open(os.path.join(base, "gcide.index"), encoding="utf-8") as f:
        for line in f:
            word, off, length = line.rstrip("\n").split("\t")
            if word.startswith("00"):  # the database's own notices
                continue
            spans.add((b64(off), b64(length)))
    for off, length in sorted(spans):
        entry = data[off : off + length].decode("utf-8", "replace")
        lines = entry.split("\n")
        # The headword line (column 0), with any etymology that runs onto the next lines.
        body = "\n".join(lines[1:])
        head = lines[0]
        if head.count("[") > head.count("]"):
            body = body.split("]", 1)[1] if "]" in body else ""
        for i, block in enumerate(re.split(r"\n\s*\n", body)):
            if "[WordNet" in block or "Syn:" in block or "\n     " in block.split("\n", 1)[0]:
                continue
            text = gcide_clean(block)
            words = text.split()
            if len(words) < 4 or not text[0].isalpha():
                continue
            yield "%d.%d" % (off, i), sentence(text)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("wordnet", "gcide"):
        sys.exit(__doc__)
    name, root, out = sys.argv[1:]
    docs = wordnet(root) if name == "wordnet" else gcide(root)
    files = {}
    for split in ("train", "validation"):
        os.makedirs(os.path.join(out, split), exist_ok=True)
        files[split] = open(os.path.join(out, split, name + ".txt"), "w", encoding="utf-8")
    counts = {"train": 0, "validation": 0}
    for key, text in docs:
        split = "validation" if held_out(name + key) else "train"
        files[split].write(text + "\n\n")
        counts[split] += 1
    for f in files.values():
        f.close()
    print("%s: %d documents to train, %d held out" % (name, counts["train"], counts["validation"]))


if __name__ == "__main__":
    main()
