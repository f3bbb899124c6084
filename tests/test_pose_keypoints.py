"""COCO-WholeBody -> OpenPose conversion, fitting to a canvas, and OpenPose JSON in and out."""

import json

import numpy as np
import pytest

from pipelines.errors import ValidationError
from pipelines.pose import PoseResult, from_openpose_json, to_openpose_json
from pipelines.pose.keypoints import people_from_wholebody
from tests.pose_samples import standing_result


def _numbered_wholebody(score: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """Point i sits at (i, 1000 + i), so every output point says which input it came from."""
    index = np.arange(133, dtype=np.float32)
    return np.stack([index, 1000 + index], axis=1)[None], np.full((1, 133), score, np.float32)


def test_wholebody_is_reordered_to_openpose_with_a_neck():
    person = people_from_wholebody(*_numbered_wholebody())[0]
    # OpenPose-18: nose, neck, r-shoulder, r-elbow, r-wrist, l-shoulder, l-elbow, l-wrist, r-hip, r-knee,
    # r-ankle, l-hip, l-knee, l-ankle, r-eye, l-eye, r-ear, l-ear  <-  COCO indices below (neck = mean 5, 6).
    coco_sources = [0, 5.5, 6, 8, 10, 5, 7, 9, 12, 14, 16, 11, 13, 15, 2, 1, 4, 3]
    np.testing.assert_array_equal(person.body[:, 0], coco_sources)
    np.testing.assert_array_equal(person.body[:, 1], np.asarray(coco_sources) + 1000)
    np.testing.assert_array_equal(person.feet[:, 0], np.arange(17, 23))
    np.testing.assert_array_equal(person.face[:, 0], np.arange(23, 91))
    np.testing.assert_array_equal(person.left_hand[:, 0], np.arange(91, 112))
    np.testing.assert_array_equal(person.right_hand[:, 0], np.arange(112, 133))
    assert person.body[1, 2] == pytest.approx(0.9)


def test_neck_is_invisible_unless_both_shoulders_are():
    keypoints, scores = _numbered_wholebody()
    scores[0, 6] = 0.2  # right shoulder below the threshold
    person = people_from_wholebody(keypoints, scores)[0]
    assert person.body[1, 2] == 0.0
    assert person.body[2, 2] == pytest.approx(0.2)


def test_fit_to_scales_uniformly_and_centres():
    result = standing_result(width=400, height=200)
    fitted = result.fit_to(800, 800)  # scale 2, then 200 px of padding above and below
    np.testing.assert_allclose(fitted.people[0].body[:, 0], result.people[0].body[:, 0] * 2, rtol=1e-6)
    np.testing.assert_allclose(fitted.people[0].body[:, 1], result.people[0].body[:, 1] * 2 + 200, rtol=1e-6)
    np.testing.assert_array_equal(fitted.people[0].body[:, 2], result.people[0].body[:, 2])
    assert (fitted.width, fitted.height) == (800, 800)


def test_json_round_trip_is_exact():
    result = standing_result(people=2)
    result.people[1].face[:5, 2] = 0.1  # invisible points are exported as 0, 0, 0
    exported = to_openpose_json(result)
    assert exported["people"][1]["face_keypoints_2d"][:15] == [0.0] * 15
    text = json.dumps(exported)
    loaded = from_openpose_json(text)
    assert to_openpose_json(loaded) == exported
    assert loaded.people[0] == result.people[0]
    np.testing.assert_array_equal(loaded.people[1].face[5:], result.people[1].face[5:])
    assert (loaded.width, loaded.height) == (640, 800)


def test_json_from_other_openpose_tools_loads():
    body = [float(v) for i in range(18) for v in (10 * i, 20 * i, 0.8)]
    face = [float(v) for i in range(70) for v in (i, 2 * i, 0.7)]
    data = {
        "canvas_width": 512,
        "canvas_height": 768,
        "people": [{"pose_keypoints_2d": body, "face_keypoints_2d": face, "hand_left_keypoints_2d": []}],
    }
    result = from_openpose_json(json.dumps([data]).encode())
    person = result.people[0]
    assert (result.width, result.height) == (512, 768)
    assert person.body[17].tolist() == pytest.approx([170, 340, 0.8])
    assert person.face.shape == (68, 3)  # the two pupils are dropped
    assert person.face[67].tolist() == pytest.approx([67, 134, 0.7])
    assert not person.left_hand.any() and not person.right_hand.any() and not person.feet.any()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{not json", "not valid JSON"),
        ({"people": []}, "canvas_width"),
        ({"canvas_width": 10, "canvas_height": 10}, "'people' list"),
        ({"canvas_width": 10, "canvas_height": 10, "people": [{"pose_keypoints_2d": [1, 2]}]}, "expected 54"),
        ({"canvas_width": 10, "canvas_height": 10, "people": [{"pose_keypoints_2d": ["a"] * 54}]}, "numbers"),
        ({"canvas_width": 0, "canvas_height": 10, "people": []}, "positive"),
    ],
)
def test_malformed_json_raises_validation_error(data, message):
    with pytest.raises(ValidationError, match=message):
        from_openpose_json(data if isinstance(data, str) else json.dumps(data))


def test_empty_result_exports_no_people():
    exported = to_openpose_json(PoseResult(32, 16, []))
    assert exported == {"version": 1.3, "canvas_width": 32, "canvas_height": 16, "people": []}


def test_neck_keeps_the_weaker_shoulder_score_and_the_strict_threshold():
    keypoints, scores = _numbered_wholebody()
    scores[0, 5], scores[0, 6] = 0.8, 0.45
    assert people_from_wholebody(keypoints, scores)[0].body[1, 2] == pytest.approx(0.45)
    scores[0, 6] = np.float32(0.3)  # exactly at the threshold: not visible (the reference's `> 0.3`)
    person = people_from_wholebody(keypoints, scores)[0]
    assert person.body[1].tolist() == [5.5, 1005.5, 0.0]
    exported = to_openpose_json(PoseResult(2000, 2000, [person]))["people"][0]["pose_keypoints_2d"]
    assert exported[3:6] == [0.0, 0.0, 0.0] and exported[6:9] == [0.0, 0.0, 0.0]  # neck and r-shoulder


def test_openpose_body_25_without_a_canvas_loads_with_a_given_size():
    body_25 = [float(v) for i in range(25) for v in (100 + i, 200 + i, 0.9)]
    data = {"version": 1.3, "people": [{"person_id": [-1], "pose_keypoints_2d": body_25}]}
    assert (from_openpose_json(data).width, from_openpose_json(data).height) == (125, 225)  # inferred
    result = from_openpose_json(data, canvas=(640, 480))
    person = result.people[0]
    assert (result.width, result.height) == (640, 480)
    # BODY_25 drops its mid-hip (8): our r-hip (8) is its 9, our l-ear (17) its 18; its 19-24 are the feet.
    assert person.body[:, 0].tolist() == [100 + i for i in (*range(8), *range(9, 19))]
    assert person.feet[:, 0].tolist() == [119, 120, 121, 122, 123, 124]
    ours = standing_result()
    assert from_openpose_json(to_openpose_json(ours), canvas=(1, 1)).width == ours.width  # the file wins


def test_a_score_of_exactly_the_threshold_hides_body_points_but_keeps_feet_face_and_hands():
    """The reference: body points need `> 0.3`, the rest are hidden only by `< 0.3`."""
    keypoints, scores = _numbered_wholebody()
    at_threshold = np.float32(0.3)
    scores[0, [0, 17, 23, 91, 112]] = at_threshold  # nose, a foot, a face, a left- and a right-hand point
    exported = to_openpose_json(PoseResult(2000, 2000, people_from_wholebody(keypoints, scores)))["people"][0]
    assert exported["pose_keypoints_2d"][:3] == [0.0, 0.0, 0.0]
    for field, coco_index in [
        ("foot_keypoints_2d", 17),
        ("face_keypoints_2d", 23),
        ("hand_left_keypoints_2d", 91),
        ("hand_right_keypoints_2d", 112),
    ]:
        assert exported[field][:3] == pytest.approx([coco_index, 1000 + coco_index, 0.3]), field


def test_select_keeps_the_chosen_people_in_the_poses_order_and_names_a_missing_one():
    standing = standing_result()
    first = standing.people[0]
    second = first.map_xy(0.5, 10.0, 20.0)
    pose = PoseResult(standing.width, standing.height, [first, second])
    assert pose.select([2]).people == [second]
    assert pose.select([2, 1]).people == [first, second] == pose.select(range(1, 3)).people
    assert (pose.select([1]).width, pose.select([1]).height) == (standing.width, standing.height)
    assert len(to_openpose_json(pose.select([2]))["people"]) == 1  # what pose.json then holds
    for numbers, message in (
        ([], "Choose at least one person for the conditioning."),
        ([3], "There is no person 3 in the pose: it has 2 people, numbered 1 to 2."),
        ([1, 0], "There is no person 0 in the pose: it has 2 people, numbered 1 to 2."),
        ([True], "There is no person True in the pose: it has 2 people, numbered 1 to 2."),
        (["1"], "There is no person '1' in the pose: it has 2 people, numbered 1 to 2."),
    ):
        with pytest.raises(ValidationError) as raised:
            pose.select(numbers)
        assert str(raised.value) == message
    with pytest.raises(
        ValidationError, match=r"^There is no person 2 in the pose: it has 1 person, numbered"
    ):
        standing.select([2])
