#!/usr/bin/env bash
# Creates .venv with the CPU build of PyTorch first, then thermal-action held to it.
# Usage: bash scripts/setup.sh            (CPU machine)
#        TORCH_SPEC="torch" bash scripts/setup.sh   (a GPU machine: let pip pick a CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
.venv/bin/python -c "import torch, thermal_action; print('thermal-action', thermal_action.__version__, 'torch', torch.__version__)"
