"""The pure pose edits in pipelines/pose/edits.py, with exact coordinates."""

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.errors import ValidationError
from pipelines.pose import edits
from pipelines.pose.keypoints import PART_SIZES, Person, PoseResult, from_openpose_json, to_openpose_json
from pipelines.settings import Settings

STANDING = Path(__file__).resolve().parents[1] / "assets" / "poses" / "standing.json"


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


def standing() -> PoseResult:
    return from_openpose_json(STANDING.read_bytes())


def test_select_people_keeps_the_given_order_and_copies_exactly():
    pose = three_people()
    pose.people[0].body[3] = (10.1, 10.2, 0.1)  # off the grid and hidden: kept as it is
    chosen = edits.select_people(pose, [2, 0])
    assert (chosen.width, chosen.height) == (640, 480)
    assert chosen.people == [pose.people[2], pose.people[0]]
    assert chosen.people[1].body[3].tolist() == pose.people[0].body[3].tolist()
    chosen.people[0].body[0, 0] = -1
    assert pose.people[2].body[0, 0] == 400


def test_on_grid_snaps_points_and_zeroes_hidden_ones():
    pose = three_people()
    pose.people[0].body[3] = (10.1, 10.2, 0.1)
    pose.people[0].body[4] = (10.1, 10.2, 0.9)
    snapped = edits.on_grid(pose).people[0].body
    assert snapped[3].tolist() == [0.0, 0.0, 0.0]
    step = edits.grid_step(640, 480)
    assert snapped[4, :2].tolist() == [round(10.1 / step) * step, round(10.2 / step) * step]


def test_select_people_refuses_an_index_out_of_range():
    with pytest.raises(
        ValidationError, match=r"There is no person 3 \(people are counted from 0\): the pose"
    ):
        edits.select_people(three_people(), [0, 3])
    with pytest.raises(ValidationError, match="There is no person -1"):
        edits.select_people(three_people(), [-1])


def test_select_no_people_gives_an_empty_pose():
    assert edits.select_people(three_people(), []).people == []


def test_move_person_shifts_only_that_person_and_keeps_hidden_points_at_zero():
    pose = three_people()
    pose.people[1].body[4] = (0.0, 0.0, 0.0)
    moved = edits.move_person(pose, 1, 15.5, -4)
    assert moved.people[1].body[0].tolist() == [215.5, 16.0, 1.0]
    assert moved.people[1].right_hand[20].tolist() == [235.5, 20.0, 1.0]
    assert moved.people[1].body[4].tolist() == [0.0, 0.0, 0.0]
    assert moved.people[0] == pose.people[0] and moved.people[2] == pose.people[2]
    assert pose.people[1].body[0].tolist() == [200.0, 20.0, 1.0]  # the input is unchanged


def test_scale_person_about_its_box_centre():
    # person_at(200, 20): x from 200 to 267 (face, 68 points), y from 20 to 24 -> centre (233.5, 22)
    scaled = edits.scale_person(three_people(), 1, 2.0)
    assert scaled.people[1].body[0].tolist() == [166.5, 18.0, 1.0]
    assert scaled.people[1].face[67].tolist() == [300.5, 22.0, 1.0]
    with pytest.raises(ValidationError, match="positive number, not 0"):
        edits.scale_person(three_people(), 1, 0)


def test_mirror_swaps_sides_about_the_persons_centre_line():
    pose = three_people()
    mirrored = edits.mirror_person(pose, 0)
    person = mirrored.people[0]
    # x from 10 to 77: x' = 87 - x. The new right wrist (4) is the old left wrist (7, at x 17).
    assert person.body[4].tolist() == [70.0, 10.0, 1.0]
    assert person.body[7].tolist() == [73.0, 10.0, 1.0]
    assert person.body[0].tolist() == [77.0, 10.0, 1.0]  # the nose stays the nose
    # the right hand (y 14) takes the left hand's points (y 13), mirrored
    assert person.right_hand[0].tolist() == [77.0, 13.0, 1.0]
    assert person.left_hand[0].tolist() == [77.0, 14.0, 1.0]
    # feet: the left big toe (0) becomes the old right big toe (3); face: jaw 0 <-> 16, eye corner 36 <-> 45
    assert person.feet[0].tolist() == [87.0 - 13.0, 11.0, 1.0]
    assert person.face[0].tolist() == [87.0 - 26.0, 12.0, 1.0]
    assert person.face[36].tolist() == [87.0 - 55.0, 12.0, 1.0]
    assert person.face[30].tolist() == [87.0 - 40.0, 12.0, 1.0]  # the nose tip stays
    assert mirrored.people[1:] == pose.people[1:]


def test_mirror_maps_are_involutions_and_cover_every_face_point_once():
    for part, order in edits.MIRROR_ORDER.items():
        assert sorted(order) == list(range(PART_SIZES[part]))
        assert [order[i] for i in order] == list(range(PART_SIZES[part]))
    assert sum(1 for i, j in enumerate(edits.MIRROR_ORDER["face"]) if i == j) == 10  # centre-line points


def test_mirror_twice_gives_the_edited_standing_pose_back_exactly():
    pose = edits.clean_edited_pose(STANDING.read_bytes(), Settings()).pose
    waving = edits.move_joint(pose, 0, "body", 4, 250.3, 90.7)  # the right wrist raised
    once = edits.mirror_person(waving, 0)
    assert once.people[0].body[7, 1] == waving.people[0].body[4, 1]  # now the left wrist is up
    assert once.people[0].body[4, 1] == waving.people[0].body[7, 1]
    twice = edits.mirror_person(once, 0)
    assert to_openpose_json(twice) == to_openpose_json(waving)
    assert twice.people[0] == waving.people[0]


def test_delete_person():
    remaining = edits.delete_person(three_people(), 1)
    assert [person.body[0, 0] for person in remaining.people] == [10, 400]


def test_add_person_fits_the_template_and_places_it_clear_of_everyone():
    template = standing()  # 896x1152, box x 296.9..599.1, y 121.8..1059.8 (hands and face inside)
    pose = PoseResult(896, 1152, [person_at(348, 100)])  # a box 348..415 x 100..104 in the middle
    added = edits.add_person(pose, template)
    assert len(added.people) == 2 and added.people[0] == pose.people[0]
    new_box = edits.person_box(added.people[1])
    old_box = edits.person_box(pose.people[0])
    width, height = new_box[2] - new_box[0], new_box[3] - new_box[1]
    template_box = edits.person_box(template.people[0])
    assert width == pytest.approx(template_box[2] - template_box[0], abs=1e-3)
    assert height == pytest.approx(template_box[3] - template_box[1], abs=1e-3)
    assert edits._overlap(new_box, [old_box]) == 0
    assert new_box[0] >= 0 and new_box[2] <= 896 and new_box[1] >= 0 and new_box[3] <= 1152


def test_add_person_to_an_empty_pose_centres_it_and_scales_to_the_canvas():
    added = edits.add_person(PoseResult(448, 576, []), standing())
    box = edits.person_box(added.people[0])
    template_box = edits.person_box(standing().people[0])
    assert box[3] - box[1] == pytest.approx((template_box[3] - template_box[1]) / 2, abs=1e-3)
    assert (box[0] + box[2]) / 2 == pytest.approx(224, abs=0.01)  # the middle of 17 positions: centred


def test_add_person_respects_the_cap():
    with pytest.raises(ValidationError, match="already has 3 people, the most allowed"):
        edits.add_person(three_people(), standing(), max_people=3)


def test_move_joint_clips_onto_the_canvas_and_shows_a_hidden_point():
    pose = three_people()
    moved = edits.move_joint(pose, 0, "body", 4, 700.25, 33)
    assert moved.people[0].body[4].tolist() == [640.0, 33.0, 1.0]
    assert moved.people[0].body[3].tolist() == pose.people[0].body[3].tolist()
    with pytest.raises(ValidationError, match="The body has points 0 to 17, not 18"):
        edits.move_joint(pose, 0, "body", 18, 1, 1)
    with pytest.raises(ValidationError, match="Unknown part 'tail'"):
        edits.move_joint(pose, 0, "tail", 0, 1, 1)


def test_hide_a_joint_writes_zeros_and_showing_puts_it_next_to_a_neighbour():
    pose = three_people()
    hidden = edits.set_joint_visible(pose, 0, "body", 4, False)
    assert hidden.people[0].body[4].tolist() == [0.0, 0.0, 0.0]
    assert to_openpose_json(hidden)["people"][0]["pose_keypoints_2d"][12:15] == [0.0, 0.0, 0.0]
    # the right wrist's bone goes to the right elbow (3, at 13, 10); offset 2% of 480 = 9.6 px to the right
    (x, y), why = edits.shown_position(hidden, 0, "body", 4)
    assert ((x, y), why) == ((13 + 9.6, 10.0), "next to body point 3")
    shown = edits.set_joint_visible(hidden, 0, "body", 4, True)
    assert shown.people[0].body[4, 0] == pytest.approx(22.6, abs=1e-3)
    assert shown.people[0].body[4, 1:].tolist() == [10.0, 1.0]
    # showing a visible joint leaves it in place
    assert edits.set_joint_visible(pose, 0, "body", 4, True).people[0].body[4].tolist() == [14.0, 10.0, 1.0]


def test_a_joint_with_no_visible_neighbour_is_shown_at_the_persons_centre():
    pose = PoseResult(640, 480, [person_at(10, 10)])
    for index in range(PART_SIZES["left_hand"]):
        pose = edits.set_joint_visible(pose, 0, "left_hand", index, False)
    (x, y), why = edits.shown_position(pose, 0, "left_hand", 5)
    assert ((x, y), why) == ((43.5, 12.0), "at the centre of person 0")  # box 10..77 x 10..14 (no y 13)


def test_clean_edited_pose_clips_points_and_says_so():
    data = to_openpose_json(PoseResult(100, 80, [person_at(50, 10)]))  # body x 50..67, face x up to 117
    cleaned = edits.clean_edited_pose(json.dumps(data), Settings())
    assert cleaned.note == "17 points were outside the 100x80 canvas and moved onto its edge."
    assert cleaned.pose.people[0].face[67].tolist() == [100.0, 12.0, 1.0]
    assert cleaned.pose.people[0].face[49].tolist() == [99.0, 12.0, 1.0]
    inside = edits.clean_edited_pose(to_openpose_json(PoseResult(200, 80, [person_at(50, 10)])), Settings())
    assert inside.note == ""


def test_clean_edited_pose_caps_people():
    data = to_openpose_json(three_people())
    with pytest.raises(ValidationError, match="The pose has 3 people; at most 2 are allowed"):
        edits.clean_edited_pose(data, Settings(max_pose_people=2))


def test_grid_step_keeps_canvas_coordinates_exact_in_float32():
    assert edits.grid_step(896, 1152) == 2.0**-12
    assert edits.grid_step(640, 480) == 2.0**-13
    value = np.float32(1151.0 + 2.0**-12)
    assert float(value) == 1151.0 + 2.0**-12


def test_add_person_next_to_the_standing_pose_shrinks_until_it_fits_beside_it():
    # The standing person's box (hands spread) is 217.5..678.5 of 896: 217.5 px free on either side. At
    # full size (461 wide) and 3/4 (345.75) nothing is free; at 1/2 (230.5) it still touches the other box,
    # so it goes where it covers least: the left edge, feet on the template's floor line (y 1059.8).
    pose = standing()
    added = edits.add_person(pose, standing())
    assert edits.person_box(added.people[1]) == (0.0, 576.0, 230.5, pytest.approx(1059.8, abs=1e-3))
    assert added.people[0] == edits.on_grid(pose).people[0]


def test_turn_a_hand_about_its_wrist_end():
    pose = three_people()  # person 0's right hand: x 10..30 at y 14, point 0 at (10, 14)
    turned = edits.turn_part(pose, 0, "right_hand", 90)
    hand = turned.people[0].right_hand
    assert hand[0].tolist() == [10.0, 14.0, 1.0]
    assert hand[20].tolist() == [10.0, 34.0, 1.0]  # 20 px right of the wrist becomes 20 px below it
    assert turned.people[0].left_hand.tolist() == pose.people[0].left_hand.tolist()
    assert edits.turn_part(pose, 0, "right_hand", 180).people[0].right_hand[5].tolist() == [5.0, 14.0, 1.0]


def test_turn_the_face_about_its_box_centre_and_refuse_the_body():
    turned = edits.turn_part(three_people(), 0, "face", 180)  # face x 10..77 at y 12: centre (43.5, 12)
    assert turned.people[0].face[0].tolist() == [77.0, 12.0, 1.0]
    with pytest.raises(
        ValidationError, match="Only left_hand, right_hand, face, feet can be turned, not 'body'"
    ):
        edits.turn_part(three_people(), 0, "body", 30)
