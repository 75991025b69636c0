#!/usr/bin/env bash
# Set up, then run the whole test suite (it includes a rebuild of three rows of the tiny Table 3, about 11 minutes on 2 cores).
# Arguments go to pytest: `bash scripts/test.sh -m "not slow"` is the quick loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# tests/test_explore_browser.py drives Debian's Chromium through chromedriver: installed once, quietly, when
# missing. If that fails (no root, no package mirror), the suite still runs and that test fails, naming them.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    echo "installing chromium and chromium-driver (apt-get) for tests/test_explore_browser.py"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
        >/tmp/segsort-chromium-install.log 2>&1 \
        || echo "warning: could not install chromium (see /tmp/segsort-chromium-install.log)" >&2
fi
python -m pytest -q "$@"
