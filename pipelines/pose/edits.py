"""Pure edits of a pose, for the page's pose editor and its people picker.

Every function takes a `PoseResult` and returns a new one; the input is never changed. People are 0-based
indices into `pose.people`; parts and point indices follow `keypoints.PART_SIZES` (OpenPose order).
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.errors import ValidationError
from pipelines.pose.keypoints import Person, PoseResult


def _copy(person: Person) -> Person:
    return Person(**{part: points.copy() for part, points in person.parts().items()})


def _check_person(pose: PoseResult, index: int) -> None:
    if not 0 <= index < len(pose.people):
        count = len(pose.people)
        raise ValidationError(
            f"There is no person {index + 1}: the pose has {count} {'person' if count == 1 else 'people'}."
        )


def select_people(pose: PoseResult, indices: Sequence[int]) -> PoseResult:
    """The pose with only the people at `indices` (0-based), in the order given."""
    for index in indices:
        _check_person(pose, index)
    return PoseResult(pose.width, pose.height, [_copy(pose.people[index]) for index in indices])
