"""Install carried wheels on a machine without internet, skipping what it already has (stdlib only).

    python3 benchmarks/install_wheels.py .whl/core /tmp/site

A wheel is installed (pip --no-index --no-deps --target SITE) when its distribution is missing, or older
than the minimum the project needs (MINIMUMS, from diffusers 0.42.1's METADATA); otherwise the machine's own
copy is kept, so its torch/transformers stack is not disturbed. Prints what it did.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

# diffusers 0.42.1 requires huggingface-hub>=1.32.0,<3 and safetensors>=0.8.0; onnx 1.23 protobuf>=6.31.1
# and ml_dtypes>=0.5.4; the rest have no floor.
MINIMUMS = {"huggingface_hub": "1.32.0", "safetensors": "0.8.0", "protobuf": "6.31.1", "ml_dtypes": "0.5.4"}


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def needed(wheel: Path) -> tuple[bool, str]:
    name, version = wheel.name.split("-")[:2]
    try:
        installed = metadata.version(name)
    except metadata.PackageNotFoundError:
        return True, f"{name}: missing, installing {version}"
    floor = MINIMUMS.get(name.lower())
    if floor and version_key(installed) < version_key(floor):
        return True, f"{name}: {installed} < {floor}, installing {version}"
    if name.lower() == "diffusers" and installed != version:
        return True, f"{name}: {installed}, installing {version}"
    return False, f"{name}: {installed} already there"


def main(argv: list[str]) -> int:
    folder, target = Path(argv[0]), argv[1]
    chosen = []
    for wheel in sorted(folder.glob("*.whl")):
        install, why = needed(wheel)
        print(why)
        if install:
            chosen.append(str(wheel))
    if not chosen:
        return 0
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
    command += ["--no-cache-dir", "--upgrade", "--target", target, *chosen]
    return subprocess.call(command)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
