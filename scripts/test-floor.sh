#!/usr/bin/env bash
# The floor job: a second venv, .venv-floor, with the LOWEST version of each dependency that the requirements
# files allow (scripts/floor_requirements.py), then the smoke tests in it: app start, /dwpose, a tiny
# /generate, the pose and generation CLIs (pytest -m smoke). torch is the exception: 2.13.0 is the only CPU
# build that installs here, so the floor job uses it too. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv-floor/bin/python ] || python3 -m venv .venv-floor
.venv-floor/bin/python scripts/floor_requirements.py requirements.txt requirements-test.txt > .venv-floor/floors.txt
.venv-floor/bin/python -m pip install -q torch==2.13.0 -r .venv-floor/floors.txt
.venv-floor/bin/python -m pip check
exec .venv-floor/bin/python -m pytest -m smoke -p no:cacheprovider "$@"
