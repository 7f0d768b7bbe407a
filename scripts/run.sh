#!/usr/bin/env bash
# Start videogate on the embedded default (SQLite in ./data, models from pip packages).
# Any argument is passed on: scripts/run.sh --port 9000 --loopback
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m server serve "$@"
