"""ui/editor.py without a browser: loading, the unsaved flag, the tools' server function, the photo."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
import pytest

from pipelines.pose import draw, edits
from pipelines.pose.keypoints import from_openpose_json, to_openpose_json
from pipelines.settings import Settings
from tests.app_helpers import synthetic_photo
from ui import editor

SETTINGS = Settings()


def standing_value() -> dict:
    return editor.load_pose(from_openpose_json(editor.STANDING_TEMPLATE.read_bytes()), settings=SETTINGS)[1]


def tool(request: dict) -> dict:
    template = from_openpose_json(editor.STANDING_TEMPLATE.read_bytes())
    return editor._edit_function(SETTINGS, template)(request)


def test_load_pose_gives_the_value_a_fresh_load_mark_and_the_loaded_copy():
    pose = from_openpose_json(editor.STANDING_TEMPLATE.read_bytes())
    first, loaded = editor.load_pose(pose, "data:image/png;base64,AAAA", SETTINGS)
    second, _ = editor.load_pose(pose, None, SETTINGS)
    assert first["value"] == loaded and first["__type__"] == "update"
    assert first["background"] == "data:image/png;base64,AAAA" and second["background"] == ""
    assert first["load_id"] != second["load_id"]
    assert (loaded["canvas_width"], loaded["canvas_height"], len(loaded["people"])) == (896, 1152, 1)


def test_a_saved_editor_pose_loads_back_to_the_same_value():
    value = tool({"op": "mirror", "person": 0, "pose": standing_value()})["pose"]
    value = tool({"op": "hide", "person": 0, "part": "face", "index": 3, "pose": value})["pose"]
    saved = json.dumps(value)
    _, reloaded = editor.load_pose(json.loads(saved), settings=SETTINGS)
    assert reloaded == value
    assert reloaded["people"][0]["face_keypoints_2d"][9:12] == [0.0, 0.0, 0.0]


def test_load_nothing_gives_an_empty_canvas():
    _, value = editor.load_pose(None, settings=SETTINGS)
    assert value == {"version": 1.3, "canvas_width": 1024, "canvas_height": 1024, "people": []}


def test_unsaved_edits_compares_exact_coordinates_and_visibility():
    loaded = standing_value()
    assert not editor.unsaved_edits(json.loads(json.dumps(loaded)), loaded, SETTINGS)
    # The browser sends whole floats as ints: still the same pose.
    as_ints = json.loads(json.dumps(loaded).replace("448.0,", "448,"))
    assert not editor.unsaved_edits(as_ints, loaded, SETTINGS)
    moved = json.loads(json.dumps(loaded))
    moved["people"][0]["pose_keypoints_2d"][13] += 2.0**-12
    assert editor.unsaved_edits(moved, loaded, SETTINGS)
    assert editor.unsaved_edits(loaded, None) and not editor.unsaved_edits(None, None)


def test_the_tools_call_the_pure_edits():
    value = standing_value()
    pose = from_openpose_json(value)
    cases = {
        "mirror": ({"person": 0}, edits.mirror_person(pose, 0)),
        "delete": ({"person": 0}, edits.delete_person(pose, 0)),
        "scale": ({"person": 0, "factor": 1.1}, edits.scale_person(pose, 0, 1.1)),
        "move": ({"person": 0, "dx": 12.5, "dy": -3}, edits.move_person(pose, 0, 12.5, -3)),
        "add": ({}, edits.add_person(pose, pose, SETTINGS.max_pose_people)),
        "hide": (
            {"person": 0, "part": "body", "index": 4},
            edits.set_joint_visible(pose, 0, "body", 4, False),
        ),
    }
    for op, (arguments, expected) in cases.items():
        answer = tool({"op": op, "pose": value, **arguments})
        assert answer["pose"] == to_openpose_json(expected), op
    assert tool({"op": "add", "pose": value})["note"] == "Added person 1 from the standing template."


def test_show_says_where_the_joint_appears():
    hidden = tool({"op": "hide", "person": 0, "part": "body", "index": 4, "pose": standing_value()})["pose"]
    answer = tool({"op": "show", "person": 0, "part": "body", "index": 4, "pose": hidden})
    assert answer["note"] == "The joint is shown next to body point 3; drag it into place."


def test_tool_failures_come_back_as_messages():
    value = standing_value()
    assert tool({"op": "mirror", "person": 3, "pose": value}) == {
        "error": "There is no person 3 (people are counted from 0): the pose has 1 person."
    }
    assert tool({"op": "explode", "pose": value}) == {"error": "Unknown editor tool 'explode'."}
    assert tool({"op": "scale", "person": 0, "factor": "big", "pose": value}) == {
        "error": "The editor sent factor='big'; a number is needed."
    }
    assert tool({"op": "move", "person": True, "dx": 1, "dy": 1, "pose": value}) == {
        "error": "The editor sent person=True; a whole number is needed."
    }
    assert "people" in tool({"op": "add", "pose": {"canvas_width": 10}})["error"]


def test_an_edited_pose_outside_the_canvas_is_clipped_with_a_note():
    value = standing_value()
    value["people"][0]["pose_keypoints_2d"][12] = -40.0
    answer = tool({"op": "scale", "person": 0, "factor": 1.0, "pose": value})
    assert answer["note"] == "1 point was outside the 896x1152 canvas and moved onto its edge."
    assert answer["pose"]["people"][0]["pose_keypoints_2d"][12] == 0.0


def test_the_browser_tables_are_the_drawing_tables():
    tables = editor._tables()
    assert tables["limbs"] == draw.LIMBS and tables["hand_bones"] == draw.HAND_BONES
    assert tables["limb_colors"] == draw.LIMB_COLORS.tolist()
    assert tables["joint_colors"]["body"] == draw.BODY_COLORS.tolist()
    assert tables["joint_colors"]["feet"][0] == draw.BODY_COLORS[13].tolist()  # the left ankle's colour
    assert tables["parts"]["left_hand"] == {
        "field": "hand_left_keypoints_2d",
        "size": 21,
        "visible_at_threshold": True,
    }
    assert editor._script().startswith("const T = {")


def test_photo_data_url_is_a_jpeg_at_most_1024_on_its_longer_side():
    url = editor.photo_data_url(synthetic_photo(2048, 1536))
    assert url.startswith("data:image/jpeg;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (768, 1024, 3)


@pytest.mark.parametrize("size", [(300, 200)])
def test_a_small_photo_keeps_its_size(size):
    url = editor.photo_data_url(synthetic_photo(*size))
    image = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (size[1], size[0])


def test_a_tool_that_pushes_points_off_the_canvas_answers_with_them_on_its_edge():
    answer = tool({"op": "move", "person": 0, "dx": -400, "dy": 0, "pose": standing_value()})
    body = answer["pose"]["people"][0]["pose_keypoints_2d"]
    assert body[3 * 3] == 0.0  # the right elbow (x 313.6) went to -86.4, and was put on the left edge
    assert body[0] == 48.0  # the nose, 448 - 400, stayed inside
    assert answer["note"] == "28 points were outside the 896x1152 canvas and moved onto its edge."
