#!/usr/bin/env bash
# Create .venv and install the project with its dev tools. Idempotent: reinstalls only when
# pyproject.toml changed. pip's download cache stays in ~/.cache/pip, outside the clone.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'

extras=${FIN_EXTRAS:-dev}
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)-${extras//,/_}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[${extras}]"
    .venv/bin/python -m pip check
    rm -f .venv/.installed-*
    touch "$stamp"
fi
