#!/usr/bin/env bash
# Set up, then run the whole test suite (it includes a rebuild of three rows of the tiny Table 3, about 11 minutes on 2 cores).
# Arguments go to pytest: `bash scripts/test.sh -m "not slow"` is the quick loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
python -m pytest -q "$@"
