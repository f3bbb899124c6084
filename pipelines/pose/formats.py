"""OpenPose JSON as other tools write and read it, turned into (and out of) our schema.

Our reader (`keypoints.from_openpose_json`) takes one frame with `canvas_width`/`canvas_height` and pixel
coordinates. Others write:

- CMU OpenPose: `{"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": [75 numbers], ...}]}`,
  BODY_25 and a 70-point face, and no canvas at all;
- sd-webui-controlnet (A1111) and huchenlei's pose editor (A1111 and ComfyUI): our fields plus
  `"animals"`, coordinates either in pixels or normalised to 0-1 (what the preprocessor's JSON holds);
- ComfyUI's `POSE_KEYPOINT` (controlnet_aux): a list of such frames, one per image of a batch.

`normalise_openpose` makes any of them ours and says what it did (`notes`), so the caller can tell the user
that a canvas was inferred or coordinates were scaled. `for_editors` goes the other way: sd-webui-controlnet's
decoder keeps only points whose confidence is at least 1.0, so editor exports write 1.0 for each visible one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pipelines.errors import ValidationError
from pipelines.settings import MAX_KEYPOINT_VALUE, Settings

if TYPE_CHECKING:
    from pipelines.pose.keypoints import PoseResult

OPENPOSE_VERSION = 1.3  # the format version CMU OpenPose writes; we write it too
EDITOR_CONFIDENCE = 1.0  # sd-webui-controlnet's decode_json_as_poses drops points with confidence below this
# Every keypoint list a person may carry (ours, CMU's, the editors').
KEYPOINT_FIELDS = (
    "pose_keypoints_2d",
    "foot_keypoints_2d",
    "face_keypoints_2d",
    "hand_left_keypoints_2d",
    "hand_right_keypoints_2d",
)
CANVAS_FIELDS = ("canvas_width", "canvas_height")
# Fields of other tools that carry nothing we draw: dropped, named in the notes when not empty.
FOREIGN_FIELDS = ("animals",)


@dataclass
class NormalisedPose:
    """One frame in our schema (pixels, with a canvas) and what was done to get it."""

    data: dict[str, Any]
    canvas_source: str  # "file", "caller" (the size the caller gave) or "inferred" (smallest that fits)
    notes: list[str] = field(default_factory=list)


def _frame(data: Any, notes: list[str]) -> Any:
    """The one frame to read: a list (ComfyUI batch, or an editor's one-frame wrapper) gives its first."""
    if isinstance(data, list) and data:
        if len(data) > 1:
            notes.append(f"The file holds {len(data)} poses (frames); the first one is used.")
        return data[0]
    return data


def _finite(value: Any) -> bool:
    """A number within the reader's keypoint cap (so not NaN, infinite or a huge int, which `float` cannot
    hold); the reader refuses the others with its own message."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number and abs(value) <= MAX_KEYPOINT_VALUE


def _points(person: dict) -> list[tuple[float, float]]:
    """Every (x, y) a person marks as seen (score above 0), over all keypoint lists."""
    seen = []
    for name in KEYPOINT_FIELDS:
        values = person.get(name)
        if not isinstance(values, list) or len(values) % 3:
            continue  # the reader names a malformed list with its own message
        for index in range(0, len(values), 3):
            x, y, score = values[index : index + 3]
            numbers = all(_finite(value) for value in (x, y, score))
            if numbers and score > 0:
                seen.append((float(x), float(y)))
    return seen


def _scale(person: dict, width: int, height: int) -> dict:
    scaled = dict(person)
    for name in KEYPOINT_FIELDS:
        values = person.get(name)
        if isinstance(values, list) and len(values) % 3 == 0:
            scaled[name] = [
                value * (width if index % 3 == 0 else height) if index % 3 < 2 else value
                for index, value in enumerate(values)
            ]
    return scaled


def normalise_openpose(data: Any, canvas: tuple[int, int] | None = None) -> NormalisedPose:
    """Any tool's OpenPose JSON (already decoded) as one frame of ours: pixel coordinates and a canvas.

    The canvas is the file's, else `canvas` (width, height) from the caller, else the smallest one that holds
    every point (said in `notes`). All coordinates in [0, 1] with a canvas known: normalised, so scaled."""
    notes: list[str] = []
    data = _frame(data, notes)
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        return NormalisedPose(data, "file", notes)  # the reader refuses it with its own message
    people = [person for person in data["people"] if isinstance(person, dict)]
    points = [point for person in people for point in _points(person)]
    frame = {key: value for key, value in data.items() if key not in FOREIGN_FIELDS}
    for key in FOREIGN_FIELDS:
        if isinstance(data.get(key), list) and data[key]:
            notes.append(f'The file\'s "{key}" ({len(data[key])}) are not used: only people are drawn.')
    if all(key in data for key in CANVAS_FIELDS):
        source = "file"
    elif canvas is not None:
        frame["canvas_width"], frame["canvas_height"] = canvas
        source = "caller"
    else:
        source = "inferred"
    normalised = bool(points) and all(0 <= x <= 1 and 0 <= y <= 1 for x, y in points)
    if normalised and source == "inferred":
        raise ValidationError(
            "The pose's coordinates are normalised (all between 0 and 1) but the file has no canvas size: "
            "give the width and height of the image it belongs to."
        )
    if source == "inferred":
        if not points:
            raise ValidationError(
                "The pose JSON has no 'canvas_width' and 'canvas_height' and no visible point to infer them "
                "from: give the canvas size."
            )
        frame["canvas_width"] = math.floor(max(x for x, _ in points)) + 1
        frame["canvas_height"] = math.floor(max(y for _, y in points)) + 1
        notes.append(
            f"The file has no canvas size; using {frame['canvas_width']}x{frame['canvas_height']}, the "
            "smallest that holds every point. Give the size of the image it belongs to if that is wrong."
        )
    if normalised:
        width, height = _canvas_ints(frame)
        frame["people"] = [
            _scale(person, width, height) if isinstance(person, dict) else person for person in data["people"]
        ]
        notes.append(f"The coordinates are normalised (0-1); scaled to the {width}x{height} canvas.")
    return NormalisedPose(frame, source, notes)


def _canvas_ints(frame: dict) -> tuple[int, int]:
    try:
        return int(frame["canvas_width"]), int(frame["canvas_height"])
    except (TypeError, ValueError):
        raise ValidationError(
            "The pose JSON needs integer 'canvas_width' and 'canvas_height' (or give the canvas size)."
        ) from None


def for_editors(data: dict[str, Any]) -> dict[str, Any]:
    """Our export made loadable, every visible point kept, by sd-webui-controlnet and the pose editors: their
    decoder drops points with confidence below 1.0, so visible points get exactly 1.0 (hidden ones stay
    0, 0, 0), and the `animals` list they expect is added."""

    def certain(values: list[float]) -> list[float]:
        return [
            EDITOR_CONFIDENCE if index % 3 == 2 and values[index] > 0 else value
            for index, value in enumerate(values)
        ]

    people = [
        {name: certain(values) if name in KEYPOINT_FIELDS else values for name, values in person.items()}
        for person in data["people"]
    ]
    return {**data, "people": people, "animals": []}


def read_openpose(
    data: Any, canvas: tuple[int, int] | None = None, settings: Settings | None = None
) -> tuple[PoseResult, list[str]]:
    """Any tool's OpenPose JSON (text or decoded) as a PoseResult, with the notes to show the user (canvas
    inferred, coordinates scaled, frames or animals left out). Text is read within the caps of `load_json`."""
    from pipelines.pose.keypoints import from_openpose_json, load_json  # keypoints imports this module

    settings = settings or Settings.from_env()
    if isinstance(data, (str, bytes)):
        data = load_json(data, settings.max_pose_json_mb * 1_000_000)
    normalised = normalise_openpose(data, canvas)
    return from_openpose_json(normalised.data, settings=settings), normalised.notes
