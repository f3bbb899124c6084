"""Known people for drawing and JSON tests: the stand-in template placed at an exact position and scale."""

from __future__ import annotations

import numpy as np

from pipelines.pose.keypoints import Person, PoseResult, people_from_wholebody
from pipelines.pose.tiny import TEMPLATE_SCORE, standing_template


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
