"""The pose data model: people as OpenPose-ordered keypoint arrays, and OpenPose JSON in and out.

DWPose predicts the 133 COCO-WholeBody points; ControlNet OpenPose was trained on the OpenPose-18 body
order, so the conversion (neck insertion + re-order) happens once, here, and everything downstream sees
OpenPose order only.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from pipelines.errors import ValidationError, shown
from pipelines.pose.formats import OPENPOSE_VERSION, normalise_openpose
from pipelines.settings import ENV_PREFIX, MAX_JSON_DEPTH, MAX_JSON_INT_DIGITS, MAX_KEYPOINT_VALUE, Settings

VISIBILITY_THRESHOLD = 0.3  # a point below this score is not drawn or exported

# Part name -> number of points, in the order DWPose's 134-point (neck inserted) array lays them out.
PART_SIZES = {"body": 18, "feet": 6, "face": 68, "left_hand": 21, "right_hand": 21}

# Whether a point scored exactly VISIBILITY_THRESHOLD is visible, per part, as the reference decides it: body
# points need `score > 0.3`; feet, face and hands are hidden by `subset < 0.3`, so 0.3 itself stays.
VISIBLE_AT_THRESHOLD = {"body": False, "feet": True, "face": True, "left_hand": True, "right_hand": True}

# Neck is inserted at this index of the 133 COCO-WholeBody points, after the 17 COCO body points.
NECK_INDEX = 17
COCO_LEFT_SHOULDER, COCO_RIGHT_SHOULDER = 5, 6
# After neck insertion, position OPENPOSE_SLOTS[i] takes the point at MMPOSE_SOURCES[i] (DWPose's table).
MMPOSE_SOURCES = (17, 6, 8, 10, 7, 9, 12, 14, 16, 13, 15, 2, 1, 4, 3)
OPENPOSE_SLOTS = (1, 2, 3, 4, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17)

# OpenPose JSON field per part; feet have no field in OpenPose-18 files, so they get an extra one.
JSON_FIELDS = {
    "body": "pose_keypoints_2d",
    "feet": "foot_keypoints_2d",
    "face": "face_keypoints_2d",
    "left_hand": "hand_left_keypoints_2d",
    "right_hand": "hand_right_keypoints_2d",
}
# Point counts other tools write that we accept.
ACCEPTED_COUNTS = {"body": (18, 25), "feet": (6,), "face": (68, 70), "left_hand": (21,), "right_hand": (21,)}
# OpenPose's default BODY_25 -> our 18 body points (drop mid-hip 8) and 6 feet (its 19-24 are already in
# COCO-WholeBody's feet order: left big toe, small toe, heel, then the right ones).
BODY_25_TO_18 = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)
BODY_25_FEET = slice(19, 25)


def is_visible(scores: np.ndarray, part: str) -> np.ndarray:
    """The one visibility rule, for JSON export and every drawing (`part`: a PART_SIZES name)."""
    if VISIBLE_AT_THRESHOLD[part]:
        return scores >= VISIBILITY_THRESHOLD
    return scores > VISIBILITY_THRESHOLD


def _empty(count: int) -> np.ndarray:
    return np.zeros((count, 3), np.float32)


@dataclass
class Person:
    """One person's keypoints; each array is (points, 3) float32 with columns x, y (pixels), score."""

    body: np.ndarray
    feet: np.ndarray
    face: np.ndarray
    left_hand: np.ndarray
    right_hand: np.ndarray

    def parts(self) -> dict[str, np.ndarray]:
        return {field.name: getattr(self, field.name) for field in fields(self)}

    def map_xy(self, scale: float, offset_x: float, offset_y: float) -> Person:
        """The same person with every x, y scaled then shifted (scores unchanged)."""
        factors = np.array([scale, scale, 1.0], np.float32)
        shift = np.array([offset_x, offset_y, 0.0], np.float32)
        return Person(**{part: points * factors + shift for part, points in self.parts().items()})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Person):
            return NotImplemented
        return all(
            np.array_equal(a, b) for a, b in zip(self.parts().values(), other.parts().values(), strict=True)
        )


@dataclass
class PoseResult:
    """Everyone found in one image, in that image's pixel coordinates."""

    width: int
    height: int
    people: list[Person]

    def fit_to(self, width: int, height: int) -> PoseResult:
        """Map onto a width x height canvas as `images.letterbox` maps the photo: uniform scale, centred."""
        scale = min(width / self.width, height / self.height)
        offset_x = (width - self.width * scale) / 2
        offset_y = (height - self.height * scale) / 2
        people = [person.map_xy(scale, offset_x, offset_y) for person in self.people]
        return PoseResult(width=width, height=height, people=people)

    def select(self, numbers: Iterable[int]) -> PoseResult:
        """Only the people numbered `numbers` (1-based, as the overlay labels them), kept in the pose's own
        order: what goes into the conditioning and its pose.json. ValidationError for an empty choice or a
        number the pose lacks."""
        chosen = list(numbers)
        if not chosen:
            raise ValidationError("Choose at least one person for the conditioning.")
        count = len(self.people)
        for number in chosen:
            if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
                raise ValidationError(
                    f"There is no person {shown(number)} in the pose: it has {count} "
                    f"{'person' if count == 1 else 'people'}, numbered 1 to {count}."
                )
        people = [person for number, person in enumerate(self.people, 1) if number in chosen]
        return PoseResult(width=self.width, height=self.height, people=people)


def people_from_wholebody(keypoints: np.ndarray, scores: np.ndarray) -> list[Person]:
    """COCO-WholeBody (N, 133, 2) + (N, 133) in image pixels -> OpenPose-ordered people, as DWPose does it."""
    points = np.concatenate([keypoints, scores[..., None]], axis=-1).astype(np.float32)
    shoulders = points[:, [COCO_LEFT_SHOULDER, COCO_RIGHT_SHOULDER]]
    neck = shoulders.mean(axis=1)
    # The reference scores the neck 1 if both shoulders are above 0.3, else 0: a flag for its drawing, not
    # a confidence. We keep the same visibility (min > 0.3 exactly when both are > 0.3, so drawings match)
    # but store the weaker shoulder's score, so exported JSON never claims a certainty nobody measured.
    neck[:, 2] = np.where(
        is_visible(shoulders[:, :, 2], "body").all(axis=1), shoulders[:, :, 2].min(axis=1), 0.0
    )
    points = np.insert(points, NECK_INDEX, neck, axis=1)
    points[:, OPENPOSE_SLOTS] = points[:, MMPOSE_SOURCES]
    bounds = np.cumsum([0, *PART_SIZES.values()])
    return [
        Person(
            **{
                part: person[start:end].copy()
                for part, start, end in zip(PART_SIZES, bounds[:-1], bounds[1:], strict=True)
            }
        )
        for person in points
    ]


def _visible_only(points: np.ndarray, part: str) -> np.ndarray:
    """Invisible points become 0, 0, 0, as OpenPose writes them."""
    return np.where(is_visible(points[:, 2:], part), points, 0.0).astype(np.float32)


def to_openpose_json(result: PoseResult) -> dict:
    """OpenPose JSON (pixel coordinates); invisible points are written as 0, 0, 0."""
    return {
        "version": OPENPOSE_VERSION,
        "canvas_width": int(result.width),
        "canvas_height": int(result.height),
        "people": [
            {
                JSON_FIELDS[part]: _visible_only(points, part).ravel().tolist()
                for part, points in person.parts().items()
            }
            for person in result.people
        ],
    }


def _refuse_constant(name: str) -> float:
    raise ValidationError(f"The pose JSON contains {name}; every number must be finite.")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValidationError(f"The pose JSON contains {text[:40]}, which overflows; numbers must be finite.")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise ValidationError(
            f"The pose JSON contains a {digits}-digit integer; numbers may have at most "
            f"{MAX_JSON_INT_DIGITS} digits."
        )
    return int(text)


QUOTE, BACKSLASH = ord('"'), ord("\\")
OPENERS, CLOSERS = (ord("["), ord("{")), (ord("]"), ord("}"))


def nesting_depth(text: bytes) -> int:
    """How deeply arrays and objects nest, brackets inside strings not counted. One vectorised pass over the
    quotes, backslashes and brackets (linear: a regex over strings backtracks quadratically on hostile text).

    Exact for JSON that `json.loads` accepts; for other text it may be off, and the parser refuses it anyway.
    """
    codes = np.frombuffer(text, np.uint8)
    positions = np.flatnonzero(np.isin(codes, (QUOTE, BACKSLASH, *OPENERS, *CLOSERS)))
    kinds = codes[positions]
    index = np.arange(len(kinds))
    backslash = kinds == BACKSLASH
    follows = np.zeros(len(kinds), bool)  # the character just before this one is a backslash
    follows[1:] = backslash[:-1] & (np.diff(positions) == 1)
    run_start = np.maximum.accumulate(np.where(backslash & ~follows, index, 0))
    run_length = index - run_start + 1  # for backslashes: how many in a row end here
    escaped = np.zeros(len(kinds), bool)
    escaped[1:] = follows[1:] & (run_length[:-1] % 2 == 1)
    quotes = (kinds == QUOTE) & ~escaped
    outside = np.cumsum(quotes) % 2 == 0  # after an even number of quotes: not in a string
    steps = np.isin(kinds, OPENERS).astype(np.int64) - np.isin(kinds, CLOSERS)
    return int(np.cumsum(steps * outside).max(initial=0))


def load_json(data: str | bytes, max_bytes: int, what: str = "pose JSON") -> object:
    """`json.loads` within the format's caps: size, nesting depth, finite numbers, integer digits. Any
    problem raises ValidationError (never RecursionError, OverflowError or Python's digit limit)."""
    # A str may hold lone surrogates (from a lax client): kept as bytes here, refused as bad UTF-8 below.
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise ValidationError(
            f"The {what} file is {len(raw) / 1e6:.1f} MB; at most {max_bytes / 1e6:g} MB are allowed "
            f"({ENV_PREFIX}MAX_POSE_JSON_MB)."
        )
    depth = nesting_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise ValidationError(
            f"The {what} nests {depth} levels deep; OpenPose JSON needs 4 and at most {MAX_JSON_DEPTH} "
            "are allowed."
        )
    try:
        return json.loads(
            raw, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
        )
    except RecursionError:  # the scan above counts brackets; this only guards against its blind spots
        raise ValidationError(f"The {what} nests too deeply to read.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValidationError(f"The {what} file is not valid JSON: {error}") from None


def read_pose_file(path: Path, settings: Settings) -> bytes:
    """A pose JSON file's bytes, its size checked before it is read."""
    limit = settings.max_pose_json_mb * 1_000_000
    try:
        size = path.stat().st_size
        if size > limit:
            raise ValidationError(
                f"'{path.name}' is {size / 1e6:.1f} MB; a pose JSON may have at most {limit / 1e6:g} MB "
                f"({ENV_PREFIX}MAX_POSE_JSON_MB)."
            )
        return path.read_bytes()
    except OSError as error:
        raise ValidationError(f"'{path}' could not be read: {error.strerror or error}.") from None


def _whole_number(value: object, name: str) -> int:
    """A size or count: an integer (a float only when it is exactly one, as JSON has one number type)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValidationError(f"{name} must be a whole number, got {shown(value)}.")


def _keypoint_values(values: object, where: str, part: str) -> np.ndarray:
    """(points, 3) float32 from a flat list of x, y, score numbers, each finite and within the cap."""
    if values is None:
        values = []
    if not isinstance(values, list):
        raise ValidationError(f"{where} must be a list of numbers, got {shown(values)}.")
    counts = ACCEPTED_COUNTS[part]
    if values and (len(values) % 3 or len(values) // 3 not in counts):
        expected = " or ".join(str(count * 3) for count in counts)
        raise ValidationError(f"{where} has {len(values)} numbers; expected {expected} (x, y, score).")
    for position, value in enumerate(values):
        number = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if not (number and abs(value) <= MAX_KEYPOINT_VALUE):  # also false for NaN
            raise ValidationError(
                f"{where}[{position}] is {shown(value)}; keypoint values must be finite numbers between "
                f"-{MAX_KEYPOINT_VALUE:,.0f} and {MAX_KEYPOINT_VALUE:,.0f}."
            )
    return np.asarray(values, dtype=np.float64).astype(np.float32).reshape(-1, 3)


def _parse_part(person: dict, part: str, index: int) -> np.ndarray:
    points = _keypoint_values(person.get(JSON_FIELDS[part]), f"people[{index}].{JSON_FIELDS[part]}", part)
    if not len(points):
        return _empty(PART_SIZES[part])
    return _visible_only(points, part)


def _parse_person(person: dict, index: int) -> Person:
    parts = {part: _parse_part(person, part, index) for part in PART_SIZES}
    if len(parts["body"]) == 25:
        body_25 = parts["body"]
        parts["body"] = body_25[list(BODY_25_TO_18)]
        if not parts["feet"].any():
            parts["feet"] = body_25[BODY_25_FEET]
    parts["face"] = parts["face"][: PART_SIZES["face"]]  # a 70-point face ends with two pupils
    return Person(**parts)


def _canvas(data: dict, canvas: tuple[int, int] | None, max_pixels: int) -> tuple[int, int]:
    """The canvas size: whole, positive and within the image pixel cap (it is what gets drawn)."""
    if canvas and "canvas_width" not in data:
        width, height = canvas
    elif "canvas_width" in data and "canvas_height" in data:
        width = _whole_number(data["canvas_width"], "canvas_width")
        height = _whole_number(data["canvas_height"], "canvas_height")
    else:
        raise ValidationError(
            "The pose JSON needs integer 'canvas_width' and 'canvas_height' (or give the canvas size)."
        )
    if width <= 0 or height <= 0:
        raise ValidationError(f"The pose canvas must be positive, got {shown(width)}x{shown(height)}.")
    if width * height > max_pixels:
        raise ValidationError(
            f"The pose canvas is {shown(width)}x{shown(height)}, above the {max_pixels / 1e6:g} MP limit "
            f"for images and canvases ({ENV_PREFIX}MAX_PIXELS)."
        )
    return width, height


def from_openpose_json(
    data: dict | list | str | bytes, canvas: tuple[int, int] | None = None, settings: Settings | None = None
) -> PoseResult:
    """Parse OpenPose JSON from us or other tools (18- or 25-point body, 68- or 70-point face, parts missing).

    OpenPose itself writes no canvas size; `canvas` (w, h) is used when the file has none. Everything is
    checked against the caps in `pipelines.settings` (file size, nesting, finite numbers, whole canvas sizes
    within the pixel cap, people per pose); any problem raises ValidationError.
    """
    settings = settings or Settings.from_env()
    if isinstance(data, (str, bytes)):
        data = load_json(data, settings.max_pose_json_mb * 1_000_000)
    data = normalise_openpose(data, canvas).data  # other tools' layouts (formats.py) made ours
    if not isinstance(data, dict) or not isinstance(data.get("people"), list):
        raise ValidationError("The pose JSON must be an object with a 'people' list (OpenPose format).")
    width, height = _canvas(data, canvas, settings.max_pixels)
    if len(data["people"]) > settings.max_pose_people:
        raise ValidationError(
            f"The pose has {len(data['people'])} people; at most {settings.max_pose_people} are allowed "
            f"({ENV_PREFIX}MAX_POSE_PEOPLE)."
        )
    people = []
    for index, person in enumerate(data["people"]):
        if not isinstance(person, dict):
            raise ValidationError(f"people[{index}] must be an object")
        people.append(_parse_person(person, index))
    return PoseResult(width=width, height=height, people=people)
