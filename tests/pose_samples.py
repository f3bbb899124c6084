"""Known people for drawing and JSON tests: the stand-in template placed at an exact position and scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipelines.pose.keypoints import Person, PoseResult, people_from_wholebody
from pipelines.pose.tiny import TEMPLATE_SCORE, standing_template

# The hosted DWPose endpoint's example photo, beside the checkout (tests that need it skip without it).
SAMPLE_PHOTO = Path(__file__).resolve().parents[2] / "shared/data/pose_sample.jpg"
needs_sample_photo = pytest.mark.skipif(
    not SAMPLE_PHOTO.is_file(), reason=f"{SAMPLE_PHOTO} (beside the checkout) is not available"
)


def standing_person(scale: float = 2.0, offset: tuple[float, float] = (0.0, 0.0)) -> Person:
    """The standing template at `scale` x crop pixels, shifted by `offset`; every point visible."""
    points = standing_template() * scale + np.asarray(offset)
    scores = np.full(len(points), TEMPLATE_SCORE)
    return people_from_wholebody(points[None], scores[None])[0]


def standing_result(width: int = 640, height: int = 800, people: int = 1) -> PoseResult:
    """`people` standing figures side by side on a width x height canvas (crop template scaled x2)."""
    return PoseResult(
        width=width,
        height=height,
        people=[standing_person(2.0, (index * 220.0 - 32.0, 16.0)) for index in range(people)],
    )


def standing_crop() -> PoseResult:
    """One standing person filling a 288x384 portrait canvas (the pose model's crop), for generation tests."""
    return PoseResult(width=288, height=384, people=[standing_person(scale=1.0)])
