"""DWPose whole-body pose estimation on onnxruntime, OpenPose JSON, and ControlNet-style drawing."""

from pipelines.pose.draw import MODES, DrawMode, draw_conditioning, draw_overlay, draw_pose, parse_mode
from pipelines.pose.estimator import PoseEstimator
from pipelines.pose.keypoints import (
    VISIBILITY_THRESHOLD,
    Person,
    PoseResult,
    from_openpose_json,
    to_openpose_json,
)

__all__ = [
    "MODES",
    "VISIBILITY_THRESHOLD",
    "DrawMode",
    "Person",
    "PoseEstimator",
    "PoseResult",
    "draw_conditioning",
    "draw_overlay",
    "draw_pose",
    "from_openpose_json",
    "parse_mode",
    "to_openpose_json",
]
