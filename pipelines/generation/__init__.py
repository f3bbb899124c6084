"""SDXL + ControlNet OpenPose generation, in-process: presets, schedulers, seeds, progress, cancel.

The names below load on first use (PEP 562): the request types, schedulers and metadata are plain Python,
while `GenerationEngine`, `PRESETS` and `download_models` bring in torch and diffusers. So the page can build
its controls, and serve its first response, before any model library is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule that defines it
EXPORTS = {
    "DEFAULT_SCHEDULER": "schedulers",
    "SCHEDULERS": "schedulers",
    "MAX_SEED": "request",
    "GenerationRequest": "request",
    "GenerationResult": "request",
    "Photo": "request",
    "PoseInput": "request",
    "PreviewCallback": "request",
    "ProgressCallback": "request",
    "resolve_seed": "request",
    "PNG_TEXT_KEY": "metadata",
    "infotext": "metadata",
    "Infotext": "metadata",
    "parse_infotext": "metadata",
    "read_png_infotext": "metadata",
    "Conditioning": "inputs",
    "conditioning_for": "inputs",
    "output_size": "inputs",
    "GenerationEngine": "engine",
    "PRESETS": "presets",
    "download_models": "presets",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
