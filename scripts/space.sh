#!/usr/bin/env bash
# Make the folder to push to a Hugging Face Space: the checkout's files that git does not ignore, with requirements-space.txt as its
# requirements.txt (a torch that ZeroGPU supports; the CPU path keeps torch 2.13.0). Usage:
#   bash scripts/space.sh DIR && hf upload USER/SPACE DIR --repo-type space
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: scripts/space.sh DIR}
mkdir -p "$out"
git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -c | tar -x -C "$out"
cp requirements-space.txt "$out/requirements.txt"
echo "Space files in $out (requirements.txt = requirements-space.txt)"
