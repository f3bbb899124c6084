"""DWPose whole-body pose estimation on onnxruntime, OpenPose JSON, and ControlNet-style drawing.

The names below load on first use (PEP 562): drawing and the OpenPose JSON need only numpy and OpenCV, while
`PoseEstimator` brings in onnxruntime, so the page can start serving before that is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule that defines it
EXPORTS = {
    "CONDITIONING_MODES": "draw",
    "MODES": "draw",
    "DrawMode": "draw",
    "draw_conditioning": "draw",
    "draw_overlay": "draw",
    "draw_pose": "draw",
    "label_boxes": "draw",
    "parse_conditioning_mode": "draw",
    "parse_mode": "draw",
    "PoseEstimator": "estimator",
    "VISIBILITY_THRESHOLD": "keypoints",
    "Person": "keypoints",
    "PoseResult": "keypoints",
    "from_openpose_json": "keypoints",
    "to_openpose_json": "keypoints",
}
__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{EXPORTS[name]}"), name)
