"""What a pose image is: a drawn OpenPose skeleton to use as it is, or a photo to run DWPose on. The CLI's
`--pose-kind auto` and the app's upload panel both decide it here, so they agree on every image.

And what the ControlNet receives for a pose: `conditioning_for` is the one drawing of it, which the engine
runs and a preview can run too (no torch here), so the two are the same pixels."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.errors import NoPersonError
from pipelines.generation.request import GenerationRequest
from pipelines.images import letterbox, sdxl_bucket
from pipelines.pose.draw import draw_conditioning
from pipelines.pose.keypoints import PoseResult, from_openpose_json

# A skeleton image is mostly black background with a few strokes in the OpenPose palette, whose colours are
# all fully saturated hues (faces are white dots, too few to matter). A photo with a black background fails
# the saturation test; a colourful photo fails the background test.
BLACK_LEVEL = 24  # max channel value still counted as background
MIN_BACKGROUND_FRACTION = 0.6
MIN_SATURATED_FRACTION = 0.6  # of the non-background pixels
SATURATION_LEVEL = 150  # OpenCV HSV saturation (0-255) counted as "palette colour"


def is_openpose_skeleton(image: np.ndarray) -> bool:
    """True for a drawn OpenPose skeleton (RGB uint8): mostly black, the rest in palette colours."""
    background = image.max(axis=2) <= BLACK_LEVEL
    foreground_count = int((~background).sum())
    if background.mean() < MIN_BACKGROUND_FRACTION or foreground_count == 0:
        return False
    saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1]
    saturated = int((saturation[~background] >= SATURATION_LEVEL).sum())
    return saturated / foreground_count >= MIN_SATURATED_FRACTION


@dataclass(frozen=True)
class Conditioning:
    image: np.ndarray  # HxWx3 uint8 RGB: the exact ControlNet input, at the output size
    pose: PoseResult | None  # the pose drawn, mapped onto that size; None for a skeleton image


def output_size(request: GenerationRequest, source_width: int, source_height: int) -> tuple[int, int]:
    """The request's width and height, or the SDXL bucket nearest the source's aspect ratio."""
    if request.width is not None and request.height is not None:
        return request.width, request.height
    return sdxl_bucket(source_width, source_height)


def conditioning_for(request: GenerationRequest, pose: PoseResult | dict | np.ndarray) -> Conditioning:
    """What the ControlNet gets for `pose` (a pose, its OpenPose JSON, or a skeleton image used as it is,
    letterboxed): `request.draw_mode` drawn at the output size, thick strokes when `request.thick_lines`.
    NoPersonError when there is nothing to follow."""
    if isinstance(pose, np.ndarray):
        width, height = output_size(request, pose.shape[1], pose.shape[0])
        skeleton = letterbox(pose, width, height)
        if not skeleton.any():
            raise NoPersonError("The skeleton image is all black: there is no pose to follow.")
        return Conditioning(skeleton, None)
    if not isinstance(pose, PoseResult):
        pose = from_openpose_json(pose)
    if not pose.people:
        raise NoPersonError("There is no person in the pose, so there is nothing for the image to follow.")
    fitted = pose.fit_to(*output_size(request, pose.width, pose.height))
    size = (fitted.width, fitted.height)
    return Conditioning(draw_conditioning(fitted, size, request.draw_mode, thick=request.thick_lines), fitted)
