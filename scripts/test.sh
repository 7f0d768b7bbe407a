#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs Chromium and ffmpeg (Debian),
# the Python packages (pinned, into .venv), then lint, types and every test,
# end-to-end browser tests included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-browser
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
