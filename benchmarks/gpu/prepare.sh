#!/usr/bin/env bash
# Dev machine (reaches PyPI): download the wheels of benchmarks/gpu/wheels.txt for the GPU machine's Python
# 3.12 into .whl/gpu (ignored by git), then check that they fit one device call's carry limit.
#
#     bash benchmarks/gpu/prepare.sh          # then: run(carry=[".whl/gpu"], command="bash benchmarks/gpu/run.sh")
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-.venv/bin/python}
DEST=.whl/gpu
LIMIT_MB=48  # the carry limit is 64 MiB for everything together; keep room for the working tree
mkdir -p "$DEST"
grep -v '^#' benchmarks/gpu/wheels.txt | grep -v '^$' > "$DEST/requirements.txt"
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform any -d "$DEST" -r "$DEST/requirements.txt"
rm "$DEST/requirements.txt"
size_mb=$(du -sm "$DEST" | cut -f1)
ls -1 "$DEST"
echo "$DEST: ${size_mb} MB"
if [ "$size_mb" -gt "$LIMIT_MB" ]; then
    echo "error: $DEST is ${size_mb} MB, over ${LIMIT_MB} MB" >&2
    exit 1
fi
