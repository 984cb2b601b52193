#!/usr/bin/env bash
# The gateway install (README, "Install"): the wheel without its dependencies, then every core
# dependency except torch, the serve extra and ONNX Runtime, into a fresh venv. No torch: an
# exported tiny model runs there through `predict` and `serve` (scripts/check_gateway.py), and
# the install's size is printed (`du -sm` of site-packages, as the README's table).
# Usage: bash scripts/check-gateway.sh   (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Built from a copy: an in-tree build leaves build/ behind, whose stale files later wheels pick up.
mkdir "$WORK/tree" && cp -r pyproject.toml README.md src "$WORK/tree/"
find "$WORK/tree" \( -name __pycache__ -o -name "*.egg-info" \) -prune -exec rm -rf {} +
.venv/bin/python -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/tree"
python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
# The requirement set (from pyproject.toml; the README's gateway command is checked against it).
mapfile -t REQS < <(.venv/bin/python scripts/check_gateway.py --requirements)
[ "${#REQS[@]}" -gt 0 ] || { echo "no gateway requirements"; exit 1; }
"$PY" -m pip install -q -c constraints.txt "${REQS[@]}"
"$PY" -m pip install -q --no-deps "$WORK"/dist/thermal_action-*.whl  # its torch requirement stays unmet
SIZE=$(du -sm "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" | cut -f1)
mkdir "$WORK/run"
PYTHONPATH="$REPO/src:$REPO/tests" .venv/bin/python scripts/check_gateway.py --python "$PY" --work "$WORK/run"
echo "gateway install: ${SIZE} MB of site-packages (${REQS[*]}, thermal-action --no-deps)"
