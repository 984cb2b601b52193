# Sourced by check-wheel.sh and check-gateway.sh (not run on its own): builds this checkout's
# wheel into $WORK/dist and makes an empty venv, $PY, beside it. Sets REPO (the checkout), WORK
# (a temporary folder, removed on exit) and PY; leaves the shell in the checkout.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
# Built from a copy: an in-tree build leaves build/ behind, whose stale files later wheels pick up.
mkdir "$WORK/tree" && cp -r pyproject.toml README.md src "$WORK/tree/"
find "$WORK/tree" \( -name __pycache__ -o -name "*.egg-info" \) -prune -exec rm -rf {} +
.venv/bin/python -m pip wheel -q --no-deps -w "$WORK/dist" "$WORK/tree"
python3 -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
