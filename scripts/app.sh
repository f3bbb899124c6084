#!/usr/bin/env bash
# Set up .venv (first run only takes long) and start the app; arguments go to app.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh app
exec .venv/bin/python app.py "$@"
