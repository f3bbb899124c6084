"""Pixel properties of every draw mode, the overlay and the ControlNet conditioning."""

import numpy as np
import pytest

from pipelines.errors import ValidationError
from pipelines.pose import (
    CONDITIONING_MODES,
    MODES,
    DrawMode,
    Person,
    PoseResult,
    draw_conditioning,
    draw_overlay,
    draw_pose,
    label_boxes,
    parse_conditioning_mode,
)
from pipelines.pose.draw import (
    BODY_COLORS,
    FACE_COLOR,
    HAND_BONE_COLORS,
    HAND_JOINT_COLOR,
    LABEL_BOX,
    LABEL_TEXT,
    LIMB_COLORS,
    LIMBS,
    Layer,
)
from tests.pose_samples import standing_result

WHITE = (255, 255, 255)


def _pixel(image: np.ndarray, point: np.ndarray) -> tuple[int, ...]:
    return tuple(int(v) for v in image[int(point[1]), int(point[0])])


def _count(image: np.ndarray, color) -> int:
    return int((image == np.asarray(color, np.uint8)).all(axis=2).sum())


@pytest.fixture(scope="module")
def result() -> PoseResult:
    return standing_result()


def test_modes_are_exactly_the_seven_and_body_pose_is_the_default():
    assert [mode.value for mode in MODES] == [
        "full-pose", "body-pose", "face-pose", "hand-pose", "face-hand-mask", "face-mask", "hand-mask",
    ]  # fmt: skip
    assert set(MODES) == set(DrawMode)
    assert draw_pose.__defaults__[0] is DrawMode.BODY_POSE


def test_body_joints_have_the_openpose_palette_and_limbs_are_dimmed(result):
    image = draw_pose(result, "body-pose")
    body = result.people[0].body
    for joint, color in enumerate(BODY_COLORS):
        assert _pixel(image, body[joint]) == tuple(color), joint
    # The neck -> right hip limb (limb 6) at its midpoint: the palette colour at 0.6.
    start, end = LIMBS[6]
    assert _pixel(image, (body[start] + body[end]) / 2) == tuple(LIMB_COLORS[6]) == (0, 153, 0)
    assert _count(image, WHITE) == 0  # no face dots
    assert _count(image, HAND_JOINT_COLOR) < 60  # the left-knee joint shares that blue; no hand dots


def test_full_pose_adds_white_face_dots_and_blue_hand_joints(result):
    image = draw_pose(result, DrawMode.FULL_POSE)
    person = result.people[0]
    assert all(_pixel(image, point) == WHITE for point in person.face)
    fingertips = person.left_hand[[4, 8, 12, 16, 20]]
    assert all(_pixel(image, point) == HAND_JOINT_COLOR for point in fingertips)
    # Hand bones use HSV hue i/20: between the middle finger's 2nd and 3rd joints, bone 9.
    middle = (person.right_hand[10] + person.right_hand[11]) / 2
    assert _pixel(image, middle) in {HAND_BONE_COLORS[9], HAND_JOINT_COLOR}


def test_face_and_hand_pose_draw_only_their_part(result):
    face = draw_pose(result, "face-pose")
    hands = draw_pose(result, "hand-pose")
    assert set(map(tuple, face.reshape(-1, 3))) == {(0, 0, 0), WHITE}
    assert _count(hands, WHITE) == 0 and _count(hands, HAND_JOINT_COLOR) > 21 * 2 * 20
    assert _pixel(hands, result.people[0].body[0]) == (0, 0, 0)  # no nose joint


@pytest.mark.parametrize("mode", ["face-hand-mask", "face-mask", "hand-mask"])
def test_masks_are_binary_filled_hulls(result, mode):
    image = draw_pose(result, mode)
    assert set(np.unique(image)) <= {0, 255}
    assert (image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all()
    person = result.people[0]
    face_inside = _pixel(image, person.face.mean(axis=0))
    hand_inside = _pixel(image, person.left_hand[[0, 9, 12]].mean(axis=0))
    assert face_inside == (WHITE if "face" in mode else (0, 0, 0))
    assert hand_inside == (WHITE if "hand" in mode else (0, 0, 0))
    assert _pixel(image, person.body[11]) == (0, 0, 0)  # the left hip is outside every hull


def test_face_hand_mask_is_the_union_of_both(result):
    both = draw_pose(result, "face-hand-mask")
    assert np.array_equal(both, np.maximum(draw_pose(result, "face-mask"), draw_pose(result, "hand-mask")))


def test_drawing_at_another_size_maps_keypoints_without_upscaling_strokes(result):
    big = draw_pose(result, "body-pose", size=(1280, 1600))  # twice the result's size
    assert big.shape == (1600, 1280, 3)
    nose = result.people[0].body[0] * 2
    assert _pixel(big, nose) == tuple(BODY_COLORS[0])
    # A joint disc keeps radius 4 (about 49 px) instead of growing to radius 8 (about 200 px).
    assert 40 <= _count(big, BODY_COLORS[0]) <= 60


def test_conditioning_scales_strokes_like_xinsir(result):
    body_only = draw_conditioning(result, (1024, 1024))  # longest side in [1000, 2000): x3
    thin = draw_conditioning(result, (1024, 1024), thick=False)
    assert 400 <= _count(body_only, BODY_COLORS[0]) <= 500  # radius 12: pi * 144 = 452
    assert 40 <= _count(thin, BODY_COLORS[0]) <= 60
    assert _count(body_only, WHITE) == 0
    with_face = draw_conditioning(result, (1024, 1024), "full-pose")
    assert _count(with_face, WHITE) > 0 and _count(with_face, HAND_JOINT_COLOR) > _count(
        body_only, (0, 0, 255)
    )


# Hand bone colours that no body joint or limb has (red and cyan are also body colours).
HANDS_ONLY = set(HAND_BONE_COLORS) - {
    tuple(color) for color in [*BODY_COLORS.tolist(), *LIMB_COLORS.tolist()]
}


def _colors(image: np.ndarray) -> set[tuple[int, ...]]:
    return set(map(tuple, image.reshape(-1, 3).tolist()))


@pytest.mark.parametrize("mode", CONDITIONING_MODES)
def test_conditioning_draws_exactly_the_layers_of_its_mode(result, mode):
    """Thin strokes, so every hand bone shows between its joints; each mode draws what draw_pose draws."""
    conditioning = draw_conditioning(result, (896, 1152), mode, thick=False)
    assert np.array_equal(conditioning, draw_pose(result, mode, size=(896, 1152)))
    colors = _colors(conditioning)
    layers = MODES[mode].layers
    assert (WHITE in colors) == (Layer.FACE in layers)
    assert HANDS_ONLY & colors == (HANDS_ONLY if Layer.HANDS in layers else set())
    assert (tuple(BODY_COLORS[1]) in colors) == (Layer.BODY in layers)  # the neck joint


def test_full_pose_conditioning_has_hand_and_face_pixels_and_body_pose_none(result):
    """With thick strokes (x3 at 1024) the hand joints' blue discs cover the bones: hands show as blue area
    (the body has one blue joint, the left knee)."""
    full = draw_conditioning(result, (1024, 1024), "full-pose")
    body = draw_conditioning(result, (1024, 1024), "body-pose")
    assert FACE_COLOR in _colors(full) and FACE_COLOR not in _colors(body)
    assert _count(body, HAND_JOINT_COLOR) < 500 < 5000 < _count(full, HAND_JOINT_COLOR)
    assert not HANDS_ONLY & _colors(body)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("face-mask", "draw_mode 'face-mask' is a mask for inpainting, not OpenPose conditioning; use one "
                      "of: full-pose, body-pose, face-pose, hand-pose"),
        (DrawMode.FACE_HAND_MASK, "draw_mode 'face-hand-mask' is a mask for inpainting"),
        ("skeleton", "draw_mode must be one of: full-pose, body-pose, face-pose, hand-pose (got 'skeleton')"),
    ],
)  # fmt: skip
def test_conditioning_refuses_masks_and_unknown_modes(result, mode, message):
    assert CONDITIONING_MODES == (
        DrawMode.FULL_POSE,
        DrawMode.BODY_POSE,
        DrawMode.FACE_POSE,
        DrawMode.HAND_POSE,
    )
    with pytest.raises(ValidationError) as raised:
        draw_conditioning(result, (64, 64), mode)
    assert str(raised.value).startswith(message)
    assert parse_conditioning_mode("hand-pose") is DrawMode.HAND_POSE


def test_overlay_keeps_the_photo_where_nothing_is_drawn(result):
    photo = np.full((result.height, result.width, 3), 90, np.uint8)
    overlay = draw_overlay(photo, result, "body-pose")
    assert _pixel(overlay, result.people[0].body[0]) == tuple(BODY_COLORS[0])
    assert _pixel(overlay, (5, 5)) == (90, 90, 90)
    masked = draw_overlay(photo, result, "face-mask")  # masks are blended half-and-half
    assert _pixel(masked, result.people[0].face.mean(axis=0)) == (172, 172, 172)


def test_empty_result_draws_a_black_canvas():
    assert not draw_pose(PoseResult(64, 32, []), "full-pose").any()


def test_unknown_mode_is_a_validation_error(result):
    with pytest.raises(ValidationError, match="full-pose"):
        draw_pose(result, "skeleton")


def _body_only(points: dict[int, tuple[float, float]]) -> Person:
    body = np.zeros((18, 3), np.float32)
    for joint, xy in points.items():
        body[joint] = (*xy, 0.9)
    empty = np.zeros((21, 3), np.float32)
    return Person(body, np.zeros((6, 3), np.float32), np.zeros((68, 3), np.float32), empty, empty.copy())


def test_limbs_are_drawn_limb_by_limb_across_people_as_the_reference():
    # Person A has only limb 1 (neck - left shoulder), person B only limb 0 (neck - right shoulder), on the
    # same pixels. Limb-major order paints B's limb 0 first and A's limb 1 over it, although B comes later.
    a = _body_only({1: (20.0, 50.0), 5: (80.0, 50.0)})
    b = _body_only({1: (20.0, 50.0), 2: (80.0, 50.0)})
    image = draw_pose(PoseResult(100, 100, [a, b]), "body-pose")
    assert tuple(image[50, 50]) == tuple(LIMB_COLORS[1])
    assert tuple(image[50, 20]) == tuple(BODY_COLORS[1])  # joints go over every limb


def test_hand_points_on_the_top_or_left_edge_are_skipped_as_the_reference():
    hand = np.zeros((21, 3), np.float32)
    hand[:, 2] = 0.9
    hand[:, 0], hand[:, 1] = 30.0, np.arange(21) * 3 + 10.0
    hand[4, 0] = -12.0  # the thumb tip is off the canvas: bone 3 (3 -> 4) is skipped, not clipped
    person = _body_only({})
    person.right_hand = hand
    image = draw_pose(PoseResult(64, 96, [person]), "hand-pose")
    assert not image[:, :20].any()  # nothing reaches towards the thumb tip at x = -12
    assert tuple(image[int(hand[5, 1]), 30]) == HAND_JOINT_COLOR


def test_hand_and_face_points_scored_exactly_at_the_threshold_are_drawn():
    person = _body_only({})
    person.left_hand[:, :2], person.left_hand[:, 2] = (20.0, 30.0), np.float32(0.3)
    person.face[:, :2], person.face[:, 2] = (40.0, 50.0), np.float32(0.3)
    image = draw_pose(PoseResult(64, 96, [person]), "full-pose")
    assert tuple(image[30, 20]) == HAND_JOINT_COLOR and tuple(image[50, 40]) == WHITE
    person.left_hand[:, 2] = person.face[:, 2] = np.float32(0.29)
    assert not draw_pose(PoseResult(64, 96, [person]), "full-pose")[[30, 50], [20, 40]].any()


# --- Person numbers on the overlay ---------------------------------------------------------------------


def _two_people(result: PoseResult) -> PoseResult:
    """The standing person and a copy of them shifted right by half the canvas, on a canvas twice as wide."""
    person = result.people[0]
    shifted = person.map_xy(1.0, result.width, 0.0)
    return PoseResult(result.width * 2, result.height, [person, shifted])


def test_numbered_overlay_differs_only_in_a_label_by_each_head(result):
    two = _two_people(result)
    photo = np.full((two.height, two.width, 3), 90, np.uint8)
    plain = draw_overlay(photo, two, "full-pose")
    numbered = draw_overlay(photo, two, "full-pose", numbered=True)
    boxes = label_boxes(two.people, two.width, two.height)
    changed = (plain != numbered).any(axis=2)
    inside = np.zeros_like(changed)
    for left, top, right, bottom in boxes:
        inside[top:bottom, left:right] = True
    assert changed.any() and not (changed & ~inside).any()  # only inside the label boxes
    for person, (left, top, right, bottom) in zip(two.people, boxes, strict=True):
        label = numbered[top:bottom, left:right]
        assert _count(label, LABEL_BOX) > label.shape[0] * label.shape[1] // 2  # a dark box ...
        assert _count(label, LABEL_TEXT) > 10  # ... with white text in it
        head_x, head_y = (
            person.body[[0, 14, 15, 16, 17], 0].mean(),
            person.body[[0, 1, 14, 15, 16, 17], 1].min(),
        )
        assert left <= head_x <= right and 0 <= head_y - bottom < (bottom - top)  # just above the head
        # Readable at display size: about 4 % of the shorter side tall.
        assert bottom - top >= 0.04 * min(two.width, two.height)
    assert boxes[0][2] <= boxes[1][0]  # each by its own person


def test_numbered_overlay_of_one_person_is_the_plain_overlay(result):
    photo = np.full((result.height, result.width, 3), 90, np.uint8)
    assert np.array_equal(draw_overlay(photo, result, numbered=True), draw_overlay(photo, result))
