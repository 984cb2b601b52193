#!/usr/bin/env bash
# The gateway install (README, "Install"): the wheel without its dependencies, then every core
# dependency except torch, the serve extra and ONNX Runtime, into a fresh venv. No torch: an
# exported tiny model runs there through `predict` and `serve` (scripts/check_gateway.py), and
# the install's size is printed (`du -sm` of site-packages, as the README's table).
# Usage: bash scripts/check-gateway.sh   (after scripts/setup.sh)
set -euo pipefail
# REPO, WORK (removed on exit), the wheel in $WORK/dist and an empty venv ($PY).
source "$(dirname "$0")/wheel-venv.sh"
# The requirement set (from pyproject.toml; the README's gateway command is checked against it).
mapfile -t REQS < <(.venv/bin/python scripts/check_gateway.py --requirements)
[ "${#REQS[@]}" -gt 0 ] || { echo "no gateway requirements"; exit 1; }
"$PY" -m pip install -q -c constraints.txt "${REQS[@]}"
"$PY" -m pip install -q --no-deps "$WORK"/dist/thermal_action-*.whl  # its torch requirement stays unmet
SIZE=$(du -sm "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" | cut -f1)
mkdir "$WORK/run"
PYTHONPATH="$REPO/src:$REPO/tests" .venv/bin/python scripts/check_gateway.py --python "$PY" --work "$WORK/run"
echo "gateway install: ${SIZE} MB of site-packages (${REQS[*]}, thermal-action --no-deps)"
