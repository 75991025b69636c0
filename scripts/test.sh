#!/usr/bin/env bash
# Set up, then run the whole test suite (it includes a full tiny-dataset pipeline run, about 10 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
python -m pytest -q "$@"
