"""What an upload is: a photo to detect, a pose JSON file, or an OpenPose skeleton image to use as it is.

The upload panel takes all three in one field, so the kind is decided from the content, not the file name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipelines.generation.inputs import is_openpose_skeleton
from pipelines.generation.request import PoseInput
from pipelines.images import load_image
from pipelines.pose.keypoints import PoseResult, from_openpose_json

if TYPE_CHECKING:  # onnxruntime is imported with the estimator, on first use
    from pipelines.pose import PoseEstimator


class UploadKind(str, Enum):
    """The kinds of upload, valued by how the UI names them."""

    PHOTO = "Photo"
    POSE_JSON = "Pose JSON"
    SKELETON = "OpenPose skeleton"


@dataclass(frozen=True)
class PreparedPose:
    """An upload made ready for preview and generation; `pose` is None for a skeleton used as it is."""

    kind: UploadKind
    image: np.ndarray | None  # the photo or the skeleton, RGB uint8; None for JSON
    pose: PoseResult | None

    @property
    def generation_input(self) -> PoseInput:
        return self.pose if self.pose is not None else self.image


def content_key(data: bytes) -> str:
    """Cache key of an upload: the same bytes uploaded again (or sent again through the API) hit the cache."""
    return hashlib.sha256(data).hexdigest()


def looks_like_json(data: bytes) -> bool:
    return data.lstrip()[:1] in (b"{", b"[")


def prepare_upload(data: bytes, estimator: PoseEstimator, max_pixels: int) -> PreparedPose:
    """Parse or detect the upload's pose; raises the engines' UserErrors (bad JSON, not an image...)."""
    if looks_like_json(data):
        return PreparedPose(UploadKind.POSE_JSON, image=None, pose=from_openpose_json(data))
    image = load_image(data, max_pixels=max_pixels)
    if is_openpose_skeleton(image):
        return PreparedPose(UploadKind.SKELETON, image=image, pose=None)
    return PreparedPose(UploadKind.PHOTO, image=image, pose=estimator.detect(image))


def read_upload(path: str | Path) -> bytes:
    return Path(path).read_bytes()
