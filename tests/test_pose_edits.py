"""The pure pose edits in pipelines/pose/edits.py, with exact coordinates."""

import numpy as np
import pytest

from pipelines.errors import ValidationError
from pipelines.pose import edits
from pipelines.pose.keypoints import PART_SIZES, Person, PoseResult


def person_at(x: float, y: float) -> Person:
    """A person whose every point is visible at (x + index, y + part number)."""
    parts = {}
    for number, (part, size) in enumerate(PART_SIZES.items()):
        points = np.zeros((size, 3), np.float32)
        points[:, 0] = x + np.arange(size)
        points[:, 1] = y + number
        points[:, 2] = 1.0
        parts[part] = points
    return Person(**parts)


def three_people() -> PoseResult:
    return PoseResult(640, 480, [person_at(10, 10), person_at(200, 20), person_at(400, 30)])


def test_select_people_keeps_the_given_order_and_copies():
    pose = three_people()
    chosen = edits.select_people(pose, [2, 0])
    assert (chosen.width, chosen.height) == (640, 480)
    assert [person.body[0, :2].tolist() for person in chosen.people] == [[400, 30], [10, 10]]
    chosen.people[0].body[0, 0] = -1
    assert pose.people[2].body[0, 0] == 400


def test_select_people_refuses_an_index_out_of_range():
    with pytest.raises(ValidationError, match="There is no person 4: the pose has 3 people"):
        edits.select_people(three_people(), [0, 3])
    with pytest.raises(ValidationError, match="There is no person 0"):
        edits.select_people(three_people(), [-1])


def test_select_no_people_gives_an_empty_pose():
    assert edits.select_people(three_people(), []).people == []
