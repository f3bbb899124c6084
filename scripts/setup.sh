#!/usr/bin/env bash
# Create .venv and install Pose Studio into it. Usage: scripts/setup.sh [app|test]
# torch comes first and pinned, so nothing later pulls a CUDA build on a CPU machine.
# A GPU machine installs requirements-gpu.txt instead (README, Deploy); TORCH_SPEC overrides the torch pin.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-app}
requirements=requirements.txt
[ "$target" = test ] && requirements=requirements-test.txt

if [ "$target" = test ] && [ ! -x /usr/bin/chromium ]; then
  echo "Installing Debian's chromium for the browser tests…"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core fonts-noto-color-emoji >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -r "$requirements"
