"""Writes the evaluation files `destila eval` reads from gensim's wheel (its test data):

  lee-pairs.csv        text_a,text_b,score: the 1,225 pairs of Lee's 50 news documents with
                       their averaged human similarity judgements (0..1)
  lee-background.txt   300 other news documents of the same source, one paragraph each
                       (blank-line separated), for the similarity structure
  PROVENANCE           where each came from

Usage: eval_data.py GENSIM_WHEEL OUT_DIR
"""
import csv
import os
import sys
import zipfile

whl, out = sys.argv[1], sys.argv[2]
base = "gensim/test/test_data/"
with zipfile.ZipFile(whl) as z:
    docs = z.read(base + "lee.cor").decode("latin-1").splitlines()
    matrix = z.read(base + "similarities0-1.txt").decode("latin-1").splitlines()
    background = z.read(base + "lee_background.cor").decode("latin-1").splitlines()
docs = [d.strip() for d in docs if d.strip()]
rows = [[float(x) for x in line.split()] for line in matrix if line.strip()]
assert len(docs) == 50 and len(rows) == 50 and all(len(r) == 50 for r in rows), (len(docs), len(rows))

tmp = os.path.join(out, ".lee-pairs.csv.tmp")
with open(tmp, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    w.writerow(["text_a", "text_b", "score"])
    for i in range(50):
        for j in range(i + 1, 50):
            w.writerow([docs[i], docs[j], rows[i][j]])
os.replace(tmp, os.path.join(out, "lee-pairs.csv"))

background = [d.strip() for d in background if d.strip()]
tmp = os.path.join(out, ".lee-background.txt.tmp")
with open(tmp, "w", encoding="utf-8") as f:
    f.write("\n\n".join(background) + "\n")
os.replace(tmp, os.path.join(out, "lee-background.txt"))

with open(os.path.join(out, "PROVENANCE"), "w", encoding="utf-8") as f:
    f.write(
        "From the test data of the PyPI wheel gensim 4.4.0 (LGPL-2.1-only), not redistributed:\n"
        "lee.cor + similarities0-1.txt -> lee-pairs.csv (M. D. Lee, B. Pincombe, M. Welsh,\n"
        "'An empirical evaluation of models of text document similarity', CogSci 2005: 50\n"
        "Australian Broadcasting Corporation news documents, pairwise similarity rated by\n"
        "people, averaged); lee_background.cor -> lee-background.txt (300 documents).\n"
    )
print(f"eval data: {out}/lee-pairs.csv (1225 pairs), {out}/lee-background.txt ({len(background)} documents)")
