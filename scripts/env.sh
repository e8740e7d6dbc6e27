# Source this for the environment the Makefile gives cargo: the venv's PyTorch as libtorch
# (unless LIBTORCH points elsewhere).   . scripts/env.sh && cargo test --release
_destila_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export VIRTUAL_ENV=$_destila_root/.venv
export PATH=$_destila_root/.venv/bin:$PATH
if [ -z "${LIBTORCH:-}" ]; then export LIBTORCH_USE_PYTORCH=1; fi
unset _destila_root
