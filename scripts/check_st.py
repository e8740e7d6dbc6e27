"""sentence-transformers on a folder, for tests/sentence.rs.

  python scripts/check_st.py DIR TEXTS.txt

Loads SentenceTransformer(DIR) on the CPU and encodes each line of TEXTS.txt; prints JSON:
the modules (their classes), the embeddings.
"""

import json
import sys

from sentence_transformers import SentenceTransformer

d, texts_path = sys.argv[1:3]
texts = [l.strip() for l in open(texts_path, encoding="utf-8") if l.strip()]
m = SentenceTransformer(d, device="cpu")
e = m.encode(texts, convert_to_numpy=True)
print(json.dumps({
    "modules": [type(x).__name__ for x in m],
    "embeddings": e.tolist(),
}))
