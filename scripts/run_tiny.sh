#!/usr/bin/env bash
# Set up, then run the whole pipeline on the embedded tiny dataset up to reports/table3.csv.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
snakemake --cores 2 reports/table3.csv "$@"
