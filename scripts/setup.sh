#!/usr/bin/env bash
# Creates .venv with PyTorch installed first, then thermal-action held to that torch.
# Usage: bash scripts/setup.sh                       (CPU machine: the CPU build, torch==2.13.0)
#        TORCH_SPEC="torch" bash scripts/setup.sh    (GPU machine: let pip pick a CUDA build)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
# constraints.txt pins the CPU build; with another torch, pin whatever was just installed,
# so no dependency can replace it.
CONSTRAINTS=constraints.txt
TORCH_VERSION=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
if ! grep -qx "torch==$TORCH_VERSION" constraints.txt; then
    CONSTRAINTS=$(mktemp)
    echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"
fi
.venv/bin/python -m pip install -q -c "$CONSTRAINTS" -e ".[dev]"
.venv/bin/python -c "import torch, thermal_action; print('thermal-action', thermal_action.__version__, 'torch', torch.__version__)"
