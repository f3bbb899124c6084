"""Pure edits of a pose, for the page's pose editor and its people picker.

Every function takes a `PoseResult` and returns a new one; the input is never changed. People are 0-based
indices into `pose.people`; parts and point indices follow `keypoints.PART_SIZES` (OpenPose order).

Edited poses live on a power-of-two pixel grid fine enough that every coordinate on the canvas is exact in
float32 (1/4096 px on a 1152 px canvas). On that grid a mirror is exact arithmetic, so mirroring twice gives
the original back bit for bit; every edit here returns points on the grid.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from pipelines.errors import ValidationError
from pipelines.pose.draw import HAND_BONES, LIMBS
from pipelines.pose.formats import EDITOR_CONFIDENCE
from pipelines.pose.keypoints import PART_SIZES, Person, PoseResult, from_openpose_json, is_visible
from pipelines.settings import ENV_PREFIX, Settings

FLOAT32_SIGNIFICAND_BITS = 24


def _pairs_permutation(size: int, pairs: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Index i of the mirrored part takes point order[i] of the original."""
    order = list(range(size))
    for left, right in pairs:
        order[left], order[right] = right, left
    return tuple(order)


# Left/right pairs within a part, in OpenPose order (body: shoulders, elbows, wrists, hips, knees, ankles,
# eyes, ears) and the iBUG 68 face layout (jaw, brows, nose wings, eyes, outer and inner lips).
MIRROR_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {
    "body": ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
    "feet": ((0, 3), (1, 4), (2, 5)),
    "face": (
        *((i, 16 - i) for i in range(8)),
        *((17, 26), (18, 25), (19, 24), (20, 23), (21, 22)),
        *((31, 35), (32, 34)),
        *((36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)),
        *((48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)),
    ),
    "left_hand": (),
    "right_hand": (),
}
MIRROR_ORDER = {part: _pairs_permutation(PART_SIZES[part], pairs) for part, pairs in MIRROR_PAIRS.items()}
# Which part a mirrored part's points come from: the hands trade places, every other part stays.
MIRROR_SOURCE = {
    "body": "body",
    "feet": "feet",
    "face": "face",
    "left_hand": "right_hand",
    "right_hand": "left_hand",
}

# The joints a hidden joint is shown next to: the drawing's bones for body and hands, the outline order
# for face and feet.
NEIGHBOURS: dict[str, tuple[tuple[int, int], ...]] = {
    "body": LIMBS,
    "feet": ((0, 1), (1, 2), (3, 4), (4, 5)),
    "face": tuple((i, i + 1) for i in range(PART_SIZES["face"] - 1)),
    "left_hand": HAND_BONES,
    "right_hand": HAND_BONES,
}
SHOWN_OFFSET = 0.02  # a shown joint lands this fraction of the canvas's shorter side right of its neighbour

TURNABLE_PARTS = ("left_hand", "right_hand", "face", "feet")
TURN_ABOUT_ROOT = ("left_hand", "right_hand")  # point 0 of a hand is its wrist end

ADD_SCALES = (1.0, 0.75, 0.5)  # an added person shrinks to these sizes, in turn, to find free space
ADD_POSITIONS = 17  # candidate positions across (and down) the canvas for an added person


def grid_step(width: int, height: int) -> float:
    """The editor's pixel grid: the finest power of two at which every coordinate up to twice the canvas
    (mirror sums reach that far) is exact in float32."""
    return 2.0 ** (math.ceil(math.log2(2 * max(width, height))) - FLOAT32_SIGNIFICAND_BITS)


def _snapped(points: np.ndarray, step: float) -> np.ndarray:
    snapped = points.astype(np.float64)
    snapped[:, :2] = np.round(snapped[:, :2] / step) * step
    return snapped.astype(np.float32)


def _map_visible(
    person: Person, step: float, move: Callable[[np.ndarray], np.ndarray] = lambda xy: xy
) -> Person:
    """`move` applied (in float64) to the visible points' x, y; hidden points become 0, 0, 0; all snapped."""
    parts = {}
    for part, points in person.parts().items():
        visible = is_visible(points[:, 2], part)
        mapped = np.zeros_like(points, dtype=np.float64)
        mapped[visible] = points[visible]
        mapped[visible, :2] = move(_snapped(points[visible], step)[:, :2].astype(np.float64))
        parts[part] = _snapped(mapped, step)
    return Person(**parts)


def _visible_xy(person: Person) -> np.ndarray:
    return np.concatenate(
        [points[is_visible(points[:, 2], part), :2] for part, points in person.parts().items()]
    ).astype(np.float64)


def person_box(person: Person) -> tuple[float, float, float, float] | None:
    """(left, top, right, bottom) around the person's visible points, or None when none is visible."""
    xy = _visible_xy(person)
    if not len(xy):
        return None
    (left, top), (right, bottom) = xy.min(axis=0), xy.max(axis=0)
    return float(left), float(top), float(right), float(bottom)


def _check_person(pose: PoseResult, index: int) -> None:
    if not 0 <= index < len(pose.people):
        count = len(pose.people)
        people = "person" if count == 1 else "people"
        raise ValidationError(
            f"There is no person {index} (people are counted from 0): the pose has {count} {people}."
        )


def _check_joint(part: str, index: int) -> None:
    if part not in PART_SIZES:
        raise ValidationError(f"Unknown part {part!r}; parts are {', '.join(PART_SIZES)}.")
    if not 0 <= index < PART_SIZES[part]:
        raise ValidationError(f"The {part} has points 0 to {PART_SIZES[part] - 1}, not {index}.")


def _with_person(pose: PoseResult, index: int, person: Person) -> PoseResult:
    people = [_map_visible(other, grid_step(pose.width, pose.height)) for other in pose.people]
    people[index] = person
    return PoseResult(pose.width, pose.height, people)


def select_people(pose: PoseResult, indices: Sequence[int]) -> PoseResult:
    """The pose with only the people at `indices` (0-based), in the order given; each an exact copy."""
    for index in indices:
        _check_person(pose, index)
    people = [
        Person(**{part: points.copy() for part, points in pose.people[index].parts().items()})
        for index in indices
    ]
    return PoseResult(pose.width, pose.height, people)


def on_grid(pose: PoseResult) -> PoseResult:
    """The pose as every edit returns it: points on the editor's grid, hidden points 0, 0, 0."""
    step = grid_step(pose.width, pose.height)
    return PoseResult(pose.width, pose.height, [_map_visible(person, step) for person in pose.people])


def move_person(pose: PoseResult, person: int, dx: float, dy: float) -> PoseResult:
    """Person `person` shifted by (dx, dy) canvas pixels."""
    _check_person(pose, person)
    step = grid_step(pose.width, pose.height)
    shift = np.round(np.array([dx, dy], np.float64) / step) * step
    return _with_person(pose, person, _map_visible(pose.people[person], step, lambda xy: xy + shift))


def scale_person(pose: PoseResult, person: int, factor: float) -> PoseResult:
    """Person `person` scaled by `factor` about the centre of its box."""
    _check_person(pose, person)
    if not (math.isfinite(factor) and factor > 0):
        raise ValidationError(f"A person can only be scaled by a positive number, not {factor}.")
    box = person_box(pose.people[person])
    if box is None:
        return _with_person(pose, person, pose.people[person])
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
    step = grid_step(pose.width, pose.height)
    scaled = _map_visible(pose.people[person], step, lambda xy: centre + (xy - centre) * factor)
    return _with_person(pose, person, scaled)


def mirror_person(pose: PoseResult, person: int) -> PoseResult:
    """Person `person` mirrored about the vertical centre line of its box, left and right swapped: the left
    wrist becomes the right one, the hands trade places, the face's landmarks follow the iBUG mirror map.
    Exact on the editor's grid: mirroring twice gives the original back."""
    _check_person(pose, person)
    step = grid_step(pose.width, pose.height)
    original = _map_visible(pose.people[person], step)
    box = person_box(original)
    edge_sum = 0.0 if box is None else box[0] + box[2]  # left + right: on the grid, so x' = sum - x is exact
    flipped = _map_visible(original, step, lambda xy: np.column_stack([edge_sum - xy[:, 0], xy[:, 1]]))
    parts = flipped.parts()
    mirrored = Person(**{part: parts[MIRROR_SOURCE[part]][list(MIRROR_ORDER[part])] for part in PART_SIZES})
    return _with_person(pose, person, mirrored)


def _part_pivot(points: np.ndarray, part: str) -> np.ndarray | None:
    """What a part turns about: a hand about its root (the wrist end, point 0) when visible, else the centre
    of its visible points' box; None when none is visible."""
    visible = is_visible(points[:, 2], part)
    if not visible.any():
        return None
    if part in TURN_ABOUT_ROOT and visible[0]:
        return points[0, :2].astype(np.float64)
    xy = points[visible, :2].astype(np.float64)
    return (xy.min(axis=0) + xy.max(axis=0)) / 2


def turn_part(pose: PoseResult, person: int, part: str, degrees: float) -> PoseResult:
    """A hand, the face or the feet of person `person` turned by `degrees`, clockwise on screen (y points
    down), about `_part_pivot`; the body turns only with its person, so it is refused here."""
    _check_person(pose, person)
    if part not in TURNABLE_PARTS:
        raise ValidationError(f"Only {', '.join(TURNABLE_PARTS)} can be turned, not {part!r}.")
    if not math.isfinite(degrees):
        raise ValidationError(f"A part can only be turned by a finite angle, not {degrees}.")
    step = grid_step(pose.width, pose.height)
    edited = _map_visible(pose.people[person], step)
    points = getattr(edited, part)
    pivot = _part_pivot(points, part)
    if pivot is None:
        return _with_person(pose, person, edited)
    angle = math.radians(degrees)
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    visible = is_visible(points[:, 2], part)
    turned = points.astype(np.float64)
    turned[visible, :2] = (turned[visible, :2] - pivot) @ rotation.T + pivot
    return _with_person(pose, person, Person(**{**edited.parts(), part: _snapped(turned, step)}))


def delete_person(pose: PoseResult, person: int) -> PoseResult:
    """The pose without person `person`."""
    _check_person(pose, person)
    return on_grid(select_people(pose, [index for index in range(len(pose.people)) if index != person]))


def _overlap(
    box: tuple[float, float, float, float], others: list[tuple[float, float, float, float]]
) -> float:
    left, top, right, bottom = box
    return sum(
        max(0.0, min(right, o_right) - max(left, o_left)) * max(0.0, min(bottom, o_bottom) - max(top, o_top))
        for o_left, o_top, o_right, o_bottom in others
    )


def _free_spot(
    size: tuple[float, float],
    bottom: float,
    canvas_width: int,
    others: list[tuple[float, float, float, float]],
) -> tuple[float, float]:
    """(overlap with `others`, left) of the least covered place along the floor line `bottom` for a box of
    `size`; among equally free places, the one nearest the canvas's centre line."""
    width, height = size
    lefts = np.linspace(0, max(canvas_width - width, 0), ADD_POSITIONS)
    candidates = [
        (
            _overlap((left, bottom - height, left + width, bottom), others),
            abs(left + width / 2 - canvas_width / 2),
            left,
        )
        for left in lefts
    ]
    overlap, _, left = min(candidates)
    return overlap, float(left)


def add_person(pose: PoseResult, template: PoseResult, max_people: int | None = None) -> PoseResult:
    """The pose with the template's first person added last: fitted to this canvas as a photo would be, feet
    where the template has them, and placed sideways where it covers no one else's box. When no such place
    exists at full size, it shrinks to 3/4 and then 1/2; failing that, it goes where it covers the least."""
    cap = Settings.from_env().max_pose_people if max_people is None else max_people
    if len(pose.people) >= cap:
        raise ValidationError(
            f"The pose already has {len(pose.people)} people, the most allowed ({ENV_PREFIX}MAX_POSE_PEOPLE)."
        )
    if not template.people:
        raise ValidationError("The template pose has no person to add.")
    step = grid_step(pose.width, pose.height)
    fitted = template.fit_to(pose.width, pose.height).people[0]
    box = person_box(fitted)
    if box is None:
        raise ValidationError("The template person has no visible point to place.")
    others = [other for other in map(person_box, pose.people) if other is not None]
    size = (box[2] - box[0], box[3] - box[1])
    placements = []
    for scale in ADD_SCALES:
        overlap, left = _free_spot((size[0] * scale, size[1] * scale), box[3], pose.width, others)
        placements.append((overlap, -scale, left))
        if overlap == 0:
            break
    _, scale, left = min(placements)
    scale = -scale
    origin = np.array([box[0], box[3]])
    placed = _map_visible(fitted, step, lambda xy: (xy - origin) * scale + np.array([left, box[3]]))
    return PoseResult(pose.width, pose.height, [*on_grid(pose).people, placed])


def _clipped_xy(pose: PoseResult, x: float, y: float) -> tuple[float, float]:
    return min(max(x, 0.0), float(pose.width)), min(max(y, 0.0), float(pose.height))


def move_joint(pose: PoseResult, person: int, part: str, index: int, x: float, y: float) -> PoseResult:
    """Point `index` of `part` of person `person` put at (x, y), clipped onto the canvas; a hidden point
    becomes visible there."""
    _check_person(pose, person)
    _check_joint(part, index)
    step = grid_step(pose.width, pose.height)
    edited = _map_visible(pose.people[person], step)
    points = getattr(edited, part)
    points[index] = (*_clipped_xy(pose, x, y), max(float(points[index, 2]), EDITOR_CONFIDENCE))
    return _with_person(pose, person, Person(**{**edited.parts(), part: _snapped(points, step)}))


def shown_position(pose: PoseResult, person: int, part: str, index: int) -> tuple[tuple[float, float], str]:
    """Where a hidden joint appears when it is shown, and why there: next to its first visible neighbour
    (a bone in the drawing, or the next point along the face or foot outline), else at the person's centre,
    else at the canvas centre."""
    subject = pose.people[person]
    points = getattr(subject, part)
    visible = is_visible(points[:, 2], part)
    offset = SHOWN_OFFSET * min(pose.width, pose.height)
    for start, end in NEIGHBOURS[part]:
        if index in (start, end):
            neighbour = end if index == start else start
            if visible[neighbour]:
                x, y = points[neighbour, :2]
                return _clipped_xy(pose, float(x) + offset, float(y)), f"next to {part} point {neighbour}"
    box = person_box(subject)
    if box is not None:
        return ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), f"at the centre of person {person}"
    return (pose.width / 2, pose.height / 2), "at the centre of the canvas"


def set_joint_visible(pose: PoseResult, person: int, part: str, index: int, visible: bool) -> PoseResult:
    """Hide a joint (written as 0, 0, 0) or show it. A visible joint shown stays where it is; a hidden one has
    no position, so it appears where `shown_position` puts it."""
    _check_person(pose, person)
    _check_joint(part, index)
    step = grid_step(pose.width, pose.height)
    edited = _map_visible(pose.people[person], step)
    points = getattr(edited, part)
    if not visible:
        points[index] = 0.0
    elif not is_visible(points[index : index + 1, 2], part)[0]:
        (x, y), _ = shown_position(pose, person, part, index)
        points[index] = (x, y, EDITOR_CONFIDENCE)
    return _with_person(pose, person, Person(**{**edited.parts(), part: _snapped(points, step)}))


@dataclass(frozen=True)
class EditedPose:
    """A pose from the editor after checking, and what checking changed (empty when nothing)."""

    pose: PoseResult
    note: str


def clean_edited_pose(data: dict | str | bytes, settings: Settings) -> EditedPose:
    """Check an edited pose (OpenPose JSON with its canvas) like any uploaded pose JSON: sizes, numbers and
    the cap on people (so on points: 134 a person) are refused with a message; visible points outside the
    canvas are moved onto its edge, and the note says how many. Points are snapped to the editor's grid."""
    pose = from_openpose_json(data, settings=settings)
    step = grid_step(pose.width, pose.height)
    outside = sum(
        int(((xy[:, 0] < 0) | (xy[:, 0] > pose.width) | (xy[:, 1] < 0) | (xy[:, 1] > pose.height)).sum())
        for xy in map(_visible_xy, pose.people)
    )
    limits = np.array([pose.width, pose.height], np.float64)
    people = [_map_visible(person, step, lambda xy: np.clip(xy, 0, limits)) for person in pose.people]
    note = ""
    if outside:
        points = "point was" if outside == 1 else "points were"
        note = f"{outside} {points} outside the {pose.width}x{pose.height} canvas and moved onto its edge."
    return EditedPose(PoseResult(pose.width, pose.height, people), note)
