"""What an upload is: a photo to detect, a pose JSON file, or an OpenPose skeleton image to use as it is.

The upload panel takes all three in one field, so the kind is decided from the content, not the file name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipelines.generation.inputs import is_openpose_skeleton
from pipelines.images import load_image
from pipelines.pose.formats import read_openpose
from pipelines.pose.keypoints import PoseResult

# The longest side of what the page shows and the cache keeps of a photo: the preview panel is about 700 px
# wide, and a 40 MP photo held (and drawn over in float) at full size costs gigabytes.
PREVIEW_MAX_SIDE = 1280
POSE_BYTES_PER_PERSON = 134 * 3 * 8  # 134 keypoints (x, y, score) as float64: the cache's estimate

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
    image: np.ndarray | None  # RGB uint8: the skeleton as uploaded, the photo at display size; None for JSON
    pose: PoseResult | None
    notes: tuple[str, ...] = ()  # what reading another tool's JSON did (canvas inferred, coordinates scaled)

    @property
    def nbytes(self) -> int:
        """About what it holds in memory (the pose cache's measure)."""
        people = len(self.pose.people) if self.pose is not None else 0
        return (0 if self.image is None else self.image.nbytes) + people * POSE_BYTES_PER_PERSON


def display_size(width: int, height: int) -> tuple[int, int]:
    """(w, h) scaled down, keeping the aspect, so the longer side is at most PREVIEW_MAX_SIDE."""
    scale = min(1.0, PREVIEW_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_copy(image: np.ndarray) -> np.ndarray:
    """`image` at `display_size` (itself when it is small enough)."""
    height, width = image.shape[:2]
    size = display_size(width, height)
    return image if size == (width, height) else cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def content_key(data: bytes) -> str:
    """Cache key of an upload: the same bytes uploaded again (or sent again through the API) hit the cache."""
    return hashlib.sha256(data).hexdigest()


def looks_like_json(data: bytes) -> bool:
    return data.lstrip()[:1] in (b"{", b"[")


def prepare_upload(data: bytes, estimator: PoseEstimator, max_pixels: int) -> PreparedPose:
    """Parse or detect the upload's pose; raises the engines' UserErrors (bad JSON, not an image...). A photo
    is kept only at display size once its pose is found: the full-size decode is dropped here."""
    if looks_like_json(data):
        pose, notes = read_openpose(data)
        return PreparedPose(UploadKind.POSE_JSON, image=None, pose=pose, notes=tuple(notes))
    image = load_image(data, max_pixels=max_pixels)
    if is_openpose_skeleton(image):
        return PreparedPose(UploadKind.SKELETON, image=image, pose=None)
    pose = estimator.detect(image)
    return PreparedPose(UploadKind.PHOTO, image=display_copy(image), pose=pose)


def read_upload(path: str | Path) -> bytes:
    return Path(path).read_bytes()
