#!/usr/bin/env bash
# The one GPU call: install the carried wheels into a temporary site folder, then run the benchmark suite
# (benchmarks/gpu/suite.py: headline, draft and previews, compile, levers, DWPose) within about 8 minutes.
# JSON goes to $OUT/results, the log and a short table to stdout.
#
#     run(carry=[".whl/gpu"], timeout_s=600, command="bash benchmarks/gpu/run.sh")
#     bash benchmarks/gpu/run.sh --dry-run    # CPU: the same steps on the tiny preset, in seconds (tests)
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d)}
WHEELS=${WHEELS:-.whl/gpu}
SITE=$(mktemp -d)
trap 'rm -rf "$SITE"' EXIT
mkdir -p "$OUT/results"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    "$PYTHON" benchmarks/install_wheels.py "$WHEELS" "$SITE" || { echo "error: installing the wheels failed" >&2; exit 1; }
else
    echo "no wheels in $WHEELS: using what this machine has"
fi
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1  # no network there: every model is built from its config
"$PYTHON" -m benchmarks.gpu.suite --out "$OUT/results" "$@"
