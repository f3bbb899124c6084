"""Drawing poses the way ControlNet OpenPose models were trained to read them.

Every mode is one row of `MODES`: which layers it draws and how opaque it is over a photo. Drawing always
happens at the requested size from keypoints, never small then upscaled, so line widths stay crisp.
"""

from __future__ import annotations

import bisect
import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from pipelines.errors import ValidationError, shown
from pipelines.pose.keypoints import Person, PoseResult, is_visible


class DrawMode(str, Enum):
    FULL_POSE = "full-pose"
    BODY_POSE = "body-pose"
    FACE_POSE = "face-pose"
    HAND_POSE = "hand-pose"
    FACE_HAND_MASK = "face-hand-mask"
    FACE_MASK = "face-mask"
    HAND_MASK = "hand-mask"


class Layer(str, Enum):
    BODY = "body"
    HANDS = "hands"
    FACE = "face"
    FACE_MASK = "face-mask"
    HAND_MASK = "hand-mask"


@dataclass(frozen=True)
class ModeSpec:
    layers: tuple[Layer, ...]  # drawn in this order, each for every person
    overlay_opacity: float  # masks are blended so the photo stays visible under them
    conditioning: bool  # an OpenPose picture a ControlNet reads; masks are exports for inpainting


MODES: dict[DrawMode, ModeSpec] = {
    DrawMode.FULL_POSE: ModeSpec((Layer.BODY, Layer.HANDS, Layer.FACE), 1.0, True),
    DrawMode.BODY_POSE: ModeSpec((Layer.BODY,), 1.0, True),
    DrawMode.FACE_POSE: ModeSpec((Layer.FACE,), 1.0, True),
    DrawMode.HAND_POSE: ModeSpec((Layer.HANDS,), 1.0, True),
    DrawMode.FACE_HAND_MASK: ModeSpec((Layer.FACE_MASK, Layer.HAND_MASK), 0.5, False),
    DrawMode.FACE_MASK: ModeSpec((Layer.FACE_MASK,), 0.5, False),
    DrawMode.HAND_MASK: ModeSpec((Layer.HAND_MASK,), 0.5, False),
}
# The modes a generation can be conditioned on, in MODES order.
CONDITIONING_MODES: tuple[DrawMode, ...] = tuple(mode for mode, spec in MODES.items() if spec.conditioning)

# OpenPose-18 limbs as (from, to) body indices; the first 17 of OpenPose's 19 are drawn (ControlNet's rule).
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# The OpenPose palette, RGB: colour i is limb i and joint i.
BODY_COLORS = np.array(
    [
        [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
        [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
        [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
    ],
    np.uint8,
)  # fmt: skip
LIMB_COLORS = (BODY_COLORS[: len(LIMBS)] * 0.6).astype(np.uint8)  # limbs are dimmed, joints are not
HAND_BONES = tuple((0 if i % 4 == 0 else i, i + 1) for i in range(20))  # 5 fingers x 4 bones from the wrist
HAND_BONE_COLORS = tuple(
    tuple(int(c) for c in np.rint(np.array(colorsys.hsv_to_rgb(i / len(HAND_BONES), 1.0, 1.0)) * 255))
    for i in range(len(HAND_BONES))
)
HAND_JOINT_COLOR = (0, 0, 255)
FACE_COLOR = (255, 255, 255)
MASK_COLOR = (255, 255, 255)

# xinsir's SDXL OpenPose model was trained with widths multiplied by 1 below 500 px (longest side),
# 2 below 1000, 3 below 2000, ... 7 from 5000 up.
WIDTH_STEPS_PX = (500, 1000, 2000, 3000, 4000, 5000)


@dataclass(frozen=True)
class Widths:
    """Stroke sizes in pixels; the defaults are the ControlNet OpenPose annotator's."""

    limb_half_width: int = 4
    joint_radius: int = 4
    hand_bone_thickness: int = 2
    hand_joint_radius: int = 4
    face_dot_radius: int = 3

    def scaled(self, factor: int) -> Widths:
        return Widths(*(value * factor for value in vars(self).values()))


def width_factor(width: int, height: int) -> int:
    """xinsir's stroke multiplier for a canvas of this size."""
    return 1 + bisect.bisect_right(WIDTH_STEPS_PX, max(width, height))


# Coordinates are clipped to +-this before drawing: OpenCV takes int32 pixels, and a point this far off any
# canvas (a keypoint far outside its image, or a tiny canvas scaled up) is off-canvas either way.
PIXEL_LIMIT = float(1 << 24)


def _visible(points: np.ndarray, part: str) -> list[bool]:
    return is_visible(points[:, 2], part).tolist()


def _xy(points: np.ndarray) -> np.ndarray:
    return np.clip(points[:, :2], -PIXEL_LIMIT, PIXEL_LIMIT)


def _pixels(points: np.ndarray) -> list[list[int]]:
    return _xy(points).astype(np.int32).tolist()  # truncation, as the reference annotator does


def _draw_body(canvas: np.ndarray, people: list[Person], widths: Widths) -> None:
    """Limb by limb, then joint by joint, across all people: the reference's overlap order."""
    bodies = [(_xy(person.body).tolist(), _visible(person.body, "body")) for person in people]
    for (start, end), color in zip(LIMBS, LIMB_COLORS.tolist(), strict=True):
        for points, visible in bodies:
            if not (visible[start] and visible[end]):
                continue
            (x0, y0), (x1, y1) = points[start], points[end]
            angle = int(math.degrees(math.atan2(y0 - y1, x0 - x1)))
            axes = (int(math.hypot(x1 - x0, y1 - y0) / 2), widths.limb_half_width)
            center = (int((x0 + x1) / 2), int((y0 + y1) / 2))
            cv2.fillConvexPoly(canvas, cv2.ellipse2Poly(center, axes, angle, 0, 360, 1), color)
    pixels = [_pixels(person.body) for person in people]
    for joint, color in enumerate(BODY_COLORS.tolist()):
        for person_pixels, (_, visible) in zip(pixels, bodies, strict=True):
            if visible[joint]:
                cv2.circle(canvas, person_pixels[joint], widths.joint_radius, color, thickness=-1)


def _drawable(points: np.ndarray, part: str) -> list[bool]:
    """Hand and face points the reference draws: visible, and not on or past the top or left edge (its
    `x > eps and y > eps` test on truncated pixels), so a bone to an off-canvas point is skipped, not clipped.
    """
    return (is_visible(points[:, 2], part) & (_xy(points).astype(np.int32) > 0).all(axis=1)).tolist()


def _draw_hands(canvas: np.ndarray, people: list[Person], widths: Widths) -> None:
    """Every left hand, then every right hand, as the reference stacks them."""
    hands = [(person.left_hand, "left_hand") for person in people]
    hands += [(person.right_hand, "right_hand") for person in people]
    for hand, part in hands:
        pixels, visible = _pixels(hand), _drawable(hand, part)
        for (start, end), color in zip(HAND_BONES, HAND_BONE_COLORS, strict=True):
            if visible[start] and visible[end]:
                cv2.line(canvas, pixels[start], pixels[end], color, thickness=widths.hand_bone_thickness)
        for point, point_visible in zip(pixels, visible, strict=True):
            if point_visible:
                cv2.circle(canvas, point, widths.hand_joint_radius, HAND_JOINT_COLOR, thickness=-1)


def _draw_faces(canvas: np.ndarray, people: list[Person], widths: Widths) -> None:
    for person in people:
        for point, visible in zip(_pixels(person.face), _drawable(person.face, "face"), strict=True):
            if visible:
                cv2.circle(canvas, point, widths.face_dot_radius, FACE_COLOR, thickness=-1)


def _fill_hull(canvas: np.ndarray, points: np.ndarray, part: str) -> None:
    pixels = _xy(points[is_visible(points[:, 2], part)]).astype(np.int32)
    if len(pixels) >= 3:
        cv2.fillConvexPoly(canvas, cv2.convexHull(pixels), MASK_COLOR)


def _draw_face_masks(canvas: np.ndarray, people: list[Person], widths: Widths) -> None:
    for person in people:
        _fill_hull(canvas, person.face, "face")


def _draw_hand_masks(canvas: np.ndarray, people: list[Person], widths: Widths) -> None:
    for person in people:
        _fill_hull(canvas, person.left_hand, "left_hand")
        _fill_hull(canvas, person.right_hand, "right_hand")


# Each drawer paints one layer for everyone, in the reference's order across people.
LAYER_DRAWERS: dict[Layer, Callable[[np.ndarray, list[Person], Widths], None]] = {
    Layer.BODY: _draw_body,
    Layer.HANDS: _draw_hands,
    Layer.FACE: _draw_faces,
    Layer.FACE_MASK: _draw_face_masks,
    Layer.HAND_MASK: _draw_hand_masks,
}


def parse_mode(mode: DrawMode | str) -> DrawMode:
    try:
        return DrawMode(mode)
    except ValueError:
        names = ", ".join(m.value for m in DrawMode)
        raise ValidationError(f"Unknown draw mode {mode!r}; choose one of: {names}.") from None


def parse_conditioning_mode(mode: object, name: str = "draw_mode") -> DrawMode:
    """A mode a generation can be conditioned on; a mask mode is refused saying what it is for."""
    allowed = ", ".join(m.value for m in CONDITIONING_MODES)
    try:
        parsed = DrawMode(mode)
    except ValueError:
        raise ValidationError(f"{name} must be one of: {allowed} (got {shown(mode)})") from None
    if not MODES[parsed].conditioning:
        raise ValidationError(
            f"{name} {parsed.value!r} is a mask for inpainting, not OpenPose conditioning; "
            f"use one of: {allowed}"
        )
    return parsed


def _render(result: PoseResult, layers: tuple[Layer, ...], widths: Widths) -> np.ndarray:
    canvas = np.zeros((result.height, result.width, 3), np.uint8)
    for layer in layers:
        LAYER_DRAWERS[layer](canvas, result.people, widths)
    return canvas


def _at_size(result: PoseResult, size: tuple[int, int] | None) -> PoseResult:
    if size is None or tuple(size) == (result.width, result.height):
        return result
    return result.fit_to(*size)


def draw_pose(
    result: PoseResult, mode: DrawMode | str = DrawMode.BODY_POSE, size: tuple[int, int] | None = None
) -> np.ndarray:
    """The pose on black, HxWx3 uint8 RGB, at `size` (w, h) or the result's own size."""
    return _render(_at_size(result, size), MODES[parse_mode(mode)].layers, Widths())


def draw_overlay(
    image: np.ndarray, result: PoseResult, mode: DrawMode | str = DrawMode.FULL_POSE, numbered: bool = False
) -> np.ndarray:
    """The pose drawn over the photo (for display); keypoints are fitted to the photo's size. `numbered`:
    with 2 or more people, each one's 1-based number on a label by their head (never in the conditioning).

    Costs two copies of the image (the drawing and the output); only the drawn pixels are blended.
    """
    spec = MODES[parse_mode(mode)]
    height, width = image.shape[:2]
    fitted = _at_size(result, (width, height))
    drawing = _render(fitted, spec.layers, Widths())
    drawn = cv2.transform(drawing, np.ones((1, 3))) > 0  # any channel set; uint8 sums saturate, never wrap
    if spec.overlay_opacity < 1.0:
        blended = image[drawn] * (1.0 - spec.overlay_opacity) + drawing[drawn] * spec.overlay_opacity
        drawing[drawn] = blended.astype(np.uint8)
    np.copyto(drawing, image, where=~drawn[..., None])
    if numbered and len(fitted.people) >= 2:
        return _draw_numbers(drawing, fitted.people)
    return drawing


def draw_conditioning(
    result: PoseResult, size: tuple[int, int], mode: DrawMode | str = DrawMode.BODY_POSE, thick: bool = True
) -> np.ndarray:
    """ControlNet input at `size` (w, h): exactly the layers of `mode` (a pose mode; a mask mode is a
    ValidationError), strokes scaled as xinsir trained when `thick`."""
    layers = MODES[parse_conditioning_mode(mode)].layers
    factor = width_factor(*size) if thick else 1
    return _render(_at_size(result, size), layers, Widths().scaled(factor))


# ---------------------------------------------------------------------------------------------------------
# Person numbers on the overlay

HEAD_JOINTS = [0, 1, 14, 15, 16, 17]  # nose, neck, eyes, ears
# Where a person's label goes, first that has a visible point: the head, any body joint, the face, a hand.
LABEL_ANCHORS: tuple[tuple[str, list[int] | None], ...] = (
    ("body", HEAD_JOINTS),
    ("body", None),
    ("face", None),
    ("left_hand", None),
    ("right_hand", None),
)
LABEL_TEXT_FRACTION = 0.04  # text height / the image's shorter side: readable when shown smaller
LABEL_MIN_TEXT_PX = 12
LABEL_BOX = (24, 24, 24)
LABEL_TEXT = (255, 255, 255)


def _label_font(width: int, height: int) -> ImageFont.FreeTypeFont:
    size = max(LABEL_MIN_TEXT_PX, round(min(width, height) * LABEL_TEXT_FRACTION))
    return ImageFont.load_default(size=size)


def label_anchor(person: Person) -> tuple[float, float] | None:
    """The top centre of the person's head (else of their highest visible points), or None if none is."""
    for part, indices in LABEL_ANCHORS:
        points = getattr(person, part) if indices is None else getattr(person, part)[indices]
        visible = points[is_visible(points[:, 2], part)]
        if len(visible):
            return float(visible[:, 0].mean()), float(visible[:, 1].min())
    return None


def label_boxes(people: list[Person], width: int, height: int) -> list[tuple[int, int, int, int] | None]:
    """Each person's label box (left, top, right, bottom) inside the image, just above their head (below
    it when there is no room above); None for a person with no visible point."""
    font = _label_font(width, height)
    boxes: list[tuple[int, int, int, int] | None] = []
    for number, person in enumerate(people, 1):
        anchor = label_anchor(person)
        if anchor is None:
            boxes.append(None)
            continue
        left, top, right, bottom = font.getbbox(str(number), anchor="mm")
        pad = font.size // 3
        box_width, box_height = right - left + 2 * pad, bottom - top + 2 * pad
        x, y = anchor
        box_top = y - pad - box_height if y - pad - box_height >= 0 else y + pad
        box_left = min(max(0, round(x - box_width / 2)), max(0, width - box_width))
        box_top = min(max(0, round(box_top)), max(0, height - box_height))
        boxes.append((box_left, box_top, box_left + box_width, box_top + box_height))
    return boxes


def _draw_numbers(image: np.ndarray, people: list[Person]) -> np.ndarray:
    """White 1-based numbers on dark rounded boxes, one per person, by their head."""
    height, width = image.shape[:2]
    font = _label_font(width, height)
    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    for number, box in enumerate(label_boxes(people, width, height), 1):
        if box is None:
            continue
        left, top, right, bottom = box
        draw.rounded_rectangle((left, top, right - 1, bottom - 1), radius=font.size // 3, fill=LABEL_BOX)
        centre = ((left + right) / 2, (top + bottom) / 2)
        draw.text(centre, str(number), fill=LABEL_TEXT, font=font, anchor="mm")
    return np.array(canvas)  # writable, as the plain overlay is
