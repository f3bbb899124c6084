"""The ControlNet's input: the pose drawn in the request's draw mode at the output size, or a skeleton image
letterboxed to it. No torch here: the page draws the same image as its preview before the models load, so the
preview and a run's conditioning are the same pixels."""

from __future__ import annotations

import numpy as np

from pipelines.errors import NoPersonError
from pipelines.images import letterbox, sdxl_bucket
from pipelines.pose import PoseResult, draw_conditioning, from_openpose_json

NO_PERSON = "There is no person in the pose, so there is nothing for the image to follow."
BLACK_SKELETON = "The skeleton image is all black: there is no pose to follow."


def output_size(
    width: int | None, height: int | None, source_width: int, source_height: int
) -> tuple[int, int]:
    """The requested size, or (both None) the SDXL bucket nearest the source's aspect ratio."""
    if width is not None and height is not None:
        return width, height
    return sdxl_bucket(source_width, source_height)


def conditioning_for(
    pose: PoseResult | dict | np.ndarray,
    draw_mode: str,
    size: tuple[int | None, int | None] = (None, None),
    thick_lines: bool = True,
) -> tuple[np.ndarray, PoseResult | None]:
    """The ControlNet input (HxWx3 uint8 RGB) for `pose` (a pose, its OpenPose JSON, or a skeleton image used
    as it is) at `size` (w, h; None for the nearest bucket), and the pose it was drawn from, mapped onto that
    size (None for a skeleton image). NoPersonError when there is nothing to follow."""
    if isinstance(pose, np.ndarray):
        width, height = output_size(*size, pose.shape[1], pose.shape[0])
        skeleton = letterbox(pose, width, height)
        if not skeleton.any():
            raise NoPersonError(BLACK_SKELETON)
        return skeleton, None
    if not isinstance(pose, PoseResult):
        pose = from_openpose_json(pose)
    if not pose.people:
        raise NoPersonError(NO_PERSON)
    fitted = pose.fit_to(*output_size(*size, pose.width, pose.height))
    return draw_conditioning(fitted, (fitted.width, fitted.height), draw_mode, thick=thick_lines), fitted


def conditioning_image(
    pose: PoseResult | dict | np.ndarray,
    draw_mode: str,
    size: tuple[int | None, int | None] = (None, None),
    thick_lines: bool = True,
) -> np.ndarray:
    """Just the image of `conditioning_for`: what the page previews."""
    return conditioning_for(pose, draw_mode, size, thick_lines)[0]
