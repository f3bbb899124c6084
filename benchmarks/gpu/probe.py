"""What the benchmark machine has: versions, the accelerator, onnxruntime's providers, and DWPose's GPU
latency when onnxruntime has CUDA and the real DWPose files are there (otherwise why it was skipped).

    python3 -m benchmarks.gpu.probe --out DIR      # writes DIR/probe.json
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import platform
from pathlib import Path

import onnxruntime as ort
import torch

PACKAGES = ("torch", "diffusers", "transformers", "huggingface_hub", "safetensors", "peft", "accelerate")
PACKAGES += ("onnxruntime", "onnxruntime-gpu", "onnx", "opencv-python-headless", "numpy")
DWPOSE_REPEATS = 20


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def accelerator() -> dict[str, object]:
    if not torch.cuda.is_available():
        return {"cuda": False}
    properties = torch.cuda.get_device_properties(0)
    return {
        "cuda": True,
        "name": properties.name,
        "memory_gb": round(properties.total_memory / 2**30, 1),
        "capability": f"{properties.major}.{properties.minor}",
        "torch_cuda": torch.version.cuda,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from benchmarks.bench_pose import _real_models_on_gpu

    report = {
        "python": platform.python_version(),
        "versions": versions(),
        "accelerator": accelerator(),
        "onnxruntime_providers": ort.get_available_providers(),
        "dwpose_gpu": _real_models_on_gpu(DWPOSE_REPEATS),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "probe.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
