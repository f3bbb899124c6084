"""OpenPose JSON as other tools write it (files written here by hand from each format's documentation) and
our exports as sd-webui-controlnet reads them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import pipelines.pose.__main__ as pose_cli
from pipelines.errors import ValidationError
from pipelines.pose import from_openpose_json, to_openpose_json
from pipelines.pose.formats import EDITOR_CONFIDENCE, for_editors, normalise_openpose, read_openpose
from pipelines.settings import Settings
from tests.pose_samples import standing_result
from ui.pose_panel import PoseHandlers
from ui.studio import PoseStudio

# OpenPose-18 body, pixels: nose, neck, r-shoulder ... l-ear, all seen.
BODY_18 = [(100 + 10 * index, 50 + 20 * index) for index in range(18)]


def flat(points: list[tuple[float, float]], score: float = 1.0) -> list[float]:
    return [value for x, y in points for value in (x, y, score)]


def cmu_openpose() -> dict:
    """CMU OpenPose's own output (doc/02_output.md): version 1.3, BODY_25, a 70-point face, no canvas."""
    body_25 = [(200 + 4 * index, 100 + 12 * index) for index in range(25)]
    face_70 = [(300 + index, 80 + index // 10) for index in range(70)]
    return {
        "version": 1.3,
        "people": [
            {
                "person_id": [-1],
                "pose_keypoints_2d": flat(body_25, 0.87),
                "face_keypoints_2d": flat(face_70, 0.64),
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
                "pose_keypoints_3d": [],
                "face_keypoints_3d": [],
                "hand_left_keypoints_3d": [],
                "hand_right_keypoints_3d": [],
            }
        ],
    }


def controlnet_preprocessor(width: int = 768, height: int = 512) -> dict:
    """sd-webui-controlnet's preprocessor JSON (encode_poses_as_json): normalised coordinates, confidence
    1.0, hidden points 0, 0, 0, null for parts not detected, an `animals` list."""
    body = [(x / width, y / height) for x, y in BODY_18]
    values = flat(body)
    values[3 * 17 : 3 * 18] = [0.0, 0.0, 0.0]  # l-ear not found
    return {
        "people": [
            {
                "pose_keypoints_2d": values,
                "face_keypoints_2d": None,
                "hand_left_keypoints_2d": None,
                "hand_right_keypoints_2d": None,
            }
        ],
        "animals": [],
        "canvas_height": height,
        "canvas_width": width,
    }


def test_cmu_openpose_takes_the_callers_canvas_or_infers_the_smallest():
    pose, notes = read_openpose(json.dumps(cmu_openpose()), canvas=(640, 480))
    assert (pose.width, pose.height, notes) == (640, 480, [])
    person = pose.people[0]
    assert person.body[8, :2].tolist() == [236, 208]  # BODY_25's mid-hip (8) is dropped: our r-hip is its 9
    assert person.feet[:, 0].tolist() == [276, 280, 284, 288, 292, 296]
    assert person.face.shape == (68, 3) and person.face[67, :2].tolist() == [367, 86]  # the pupils dropped
    inferred, notes = read_openpose(cmu_openpose())
    assert (inferred.width, inferred.height) == (370, 389)  # face x up to 369, ankle y up to 388
    assert notes == [
        "The file has no canvas size; using 370x389, the smallest that holds every point. Give the size of "
        "the image it belongs to if that is wrong."
    ]
    assert normalise_openpose(cmu_openpose()).canvas_source == "inferred"


def test_normalised_coordinates_are_scaled_to_the_canvas():
    pose, notes = read_openpose(controlnet_preprocessor())
    assert (pose.width, pose.height) == (768, 512)
    assert notes == ["The coordinates are normalised (0-1); scaled to the 768x512 canvas."]
    body = pose.people[0].body
    assert body[:17, :2] == pytest.approx(np.asarray(BODY_18[:17], np.float32), abs=1e-3)
    assert body[17].tolist() == [0, 0, 0]
    assert not pose.people[0].left_hand.any() and not pose.people[0].face.any()


def test_normalised_coordinates_without_a_canvas_need_the_callers():
    data = controlnet_preprocessor()
    del data["canvas_width"], data["canvas_height"]
    with pytest.raises(
        ValidationError, match=r"normalised \(all between 0 and 1\) but the file has no canvas"
    ):
        read_openpose(data)
    pose, _ = read_openpose(data, canvas=(768, 512))
    assert pose.people[0].body[1, :2] == pytest.approx([110, 70], abs=1e-3)


def test_pose_editor_json_in_pixels_with_animals():
    """huchenlei's sd-webui-openpose-editor (A1111 and ComfyUI): pixels, canvas, and an `animals` list."""
    animal = flat([(10 + index, 20 + index) for index in range(17)])
    data = {
        "people": [{"pose_keypoints_2d": flat(BODY_18)}],
        "animals": [animal],
        "canvas_width": 512,
        "canvas_height": 768,
    }
    pose, notes = read_openpose(data)
    assert (pose.width, pose.height) == (512, 768)
    assert pose.people[0].body[:, :2].tolist() == [list(point) for point in BODY_18]
    assert notes == ['The file\'s "animals" (1) are not used: only people are drawn.']


def test_comfyui_pose_keypoint_batches_use_the_first_frame():
    """ComfyUI's POSE_KEYPOINT (controlnet_aux): a list with one frame per image of the batch."""
    frames = [
        {"people": [{"pose_keypoints_2d": flat(BODY_18)}], "canvas_width": 512, "canvas_height": 512},
        {"people": [], "canvas_width": 512, "canvas_height": 512},
    ]
    pose, notes = read_openpose(frames)
    assert len(pose.people) == 1 and notes == ["The file holds 2 poses (frames); the first one is used."]
    assert len(from_openpose_json(frames[:1]).people) == 1


def test_export_writes_the_version_and_keeps_our_exact_round_trip():
    ours = standing_result(people=2)
    exported = to_openpose_json(ours)
    assert exported["version"] == 1.3
    back, notes = read_openpose(json.dumps(exported))
    assert back == ours and notes == []


def controlnet_decode(data: dict) -> list[list[tuple[float, float] | None]]:
    """sd-webui-controlnet's decode_json_as_poses, body part: a point with confidence below 1.0 is None."""
    values = data["people"][0]["pose_keypoints_2d"]
    return [[(x, y) if c >= EDITOR_CONFIDENCE else None for x, y, c in zip(*[iter(values)] * 3, strict=True)]]


def test_editor_export_keeps_every_visible_point_in_controlnets_decoder():
    ours = standing_result()
    plain = to_openpose_json(ours)
    visible = [index for index in range(18) if plain["people"][0]["pose_keypoints_2d"][3 * index + 2] > 0]
    assert len(visible) == 18
    assert controlnet_decode(plain)[0] == [None] * 18  # DWPose scores are below 1.0: all dropped
    editor = for_editors(plain)
    assert editor["animals"] == [] and editor["version"] == 1.3
    kept = controlnet_decode(editor)[0]
    assert [index for index, point in enumerate(kept) if point is not None] == visible
    assert kept == [tuple(point) for point in ours.people[0].body[:, :2].tolist()]
    assert from_openpose_json(editor).people[0].body[:, :2].tolist() == ours.people[0].body[:, :2].tolist()


def test_editor_export_leaves_hidden_points_hidden():
    ours = standing_result()
    ours.people[0].body[17, 2] = 0.1  # below our threshold: exported as 0, 0, 0
    editor = for_editors(to_openpose_json(ours))
    assert editor["people"][0]["pose_keypoints_2d"][51:54] == [0.0, 0.0, 0.0]
    assert controlnet_decode(editor)[0][17] is None


def test_pose_cli_writes_editor_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POSE_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    photo = tmp_path / "walker.png"
    Image.fromarray(np.full((300, 200, 3), 60, np.uint8)).save(photo)
    out = tmp_path / "out"
    assert (
        pose_cli.main(["detect", str(photo), "--models", "tiny", "--json-for-editors", "--out", str(out)])
        == 0
    )
    saved = json.loads((out / "walker.json").read_text())
    assert (saved["version"], saved["animals"], saved["canvas_width"]) == (1.3, [], 200)
    scores = saved["people"][0]["pose_keypoints_2d"][2::3]
    assert scores and set(scores) <= {0.0, 1.0} and 1.0 in scores


def test_the_page_says_when_the_canvas_was_inferred(tmp_path):
    studio = PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=str(tmp_path / "cache")))
    upload = tmp_path / "openpose.json"
    upload.write_text(json.dumps(cmu_openpose()))
    shown = PoseHandlers(studio).show(str(upload), "body-pose")
    pose_json, info = shown["pose_json"], shown["info"]
    assert info == (
        "**Pose JSON** `openpose.json`, 370×389: 1 person. The file has no canvas size; using 370x389, the "
        "smallest that holds every point. Give the size of the image it belongs to if that is wrong."
    )
    assert (pose_json["canvas_width"], pose_json["canvas_height"]) == (370, 389)
