#!/usr/bin/env bash
# The wheel as a user gets it: built from this checkout, installed (core only, torch first,
# held by constraints.txt) into a fresh venv, run from outside the checkout. Checks that the
# shipped configs load by name and that a job whose extra is missing names it.
# Usage: bash scripts/check-wheel.sh   (after scripts/setup.sh: it builds with .venv's pip)
set -euo pipefail
# REPO, WORK (removed on exit), the wheel in $WORK/dist and an empty venv ($PY).
source "$(dirname "$0")/wheel-venv.sh"
# The torch of .venv (the CPU build on CI: a local file), so nothing is downloaded twice.
TORCH_VERSION=$(.venv/bin/python -c "import torch; print(torch.__version__.split('+')[0])")
"$PY" -m pip install -q "torch==$TORCH_VERSION"
CONSTRAINTS="$WORK/constraints.txt"
{ grep -v '^torch==' constraints.txt; echo "torch==$TORCH_VERSION"; } > "$CONSTRAINTS"
"$PY" -m pip install -q -c "$CONSTRAINTS" "$WORK"/dist/thermal_action-*.whl
cd "$WORK"  # no checkout here: configs must come from the package
TA="$WORK/venv/bin/thermal-action"
"$TA" train --help | grep -q "cpu_default, cpu_fast"
"$TA" config train --config cpu_default > config.txt
grep -q '^model.variant  *"crop_cnn"' config.txt
"$PY" -c "import thermal_action, sys; sys.exit('$REPO' in thermal_action.__file__)"
# The core install has no Lightning: train says which extra brings it (exit code 2).
set +e
"$TA" train --config cpu_default --out run data.root=. 2> train.err
code=$?
set -e
[ "$code" = 2 ] && grep -q "pip install 'thermal-action\[train\]'" train.err || {
    echo "train without the train extra: exit $code, $(cat train.err)"; exit 1; }
echo "wheel check: $(basename "$WORK"/dist/*.whl) installs, finds its configs and names missing extras"
