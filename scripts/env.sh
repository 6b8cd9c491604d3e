#!/usr/bin/env bash
# Create (or reuse) the project virtual environment in $VENV (default .venv).
# Idempotent: rebuilds only when requirements.txt changes. Used by demo.sh, test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}; REQ=${REQ:-requirements.txt}; PY=${PY:-python3}
stamp="$VENV/.req-$(sha256sum "$REQ" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  echo "hsikit: building the virtual environment in $VENV (about 2 minutes, once)" >&2
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --no-input -q -r "$REQ" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  "$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.14.1'), torch.__version__"
  touch "$stamp"
fi
# the package itself, editable, without touching the pinned dependencies
"$VENV/bin/pip" install --no-input -q --no-deps --no-build-isolation -e . 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
