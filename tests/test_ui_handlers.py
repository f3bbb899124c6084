"""The panels' handlers called directly on the tiny preset: upload kinds, the pose cache, the conditioning
preview, people, errors in the status line, generation, cancel, the seed and settings fillers."""

from __future__ import annotations

import ast
import json
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import GenerationError, ImageError
from pipelines.generation import GenerationRequest
from pipelines.generation.inputs import conditioning_for, is_openpose_skeleton
from pipelines.images import load_image
from pipelines.pose import DrawMode, draw_overlay, draw_pose, from_openpose_json, to_openpose_json
from pipelines.pose.draw import BODY_COLORS, FACE_COLOR, HAND_BONE_COLORS, LIMB_COLORS
from pipelines.pose.edits import select_people
from pipelines.settings import Settings
from tests.app_helpers import PANEL, REPO, synthetic_photo, write_png
from ui.base import GENERIC_ERROR
from ui.generate_panel import (
    CANCELLING,
    GENERATION_RUN,
    NO_SELECTION,
    NOTHING_TO_CANCEL,
    GenerateHandlers,
    panel_request,
)
from ui.page import create_demo
from ui.pose_panel import PoseHandlers
from ui.state import LruCache
from ui.studio import NO_PERSON_CHOSEN, NO_UPLOAD, PoseStudio
from ui.sweep_panel import SWEEP_RUN, SweepHandlers
from ui.uploads import PREVIEW_MAX_SIDE, UploadKind, content_key

PRESET = REPO / "assets" / "poses" / "t-pose.json"
UI_DIR = REPO / "ui"


class ProgressRecorder:
    """Stands in for gr.Progress: records every (step, total) the handler reports."""

    def __init__(self, on_step=None) -> None:
        self.steps: list[tuple[int, int]] = []
        self.descriptions: list[str | None] = []
        self.on_step = on_step

    def __call__(self, progress, desc=None, total=None, unit="steps"):
        self.descriptions.append(desc)
        if isinstance(progress, tuple):
            self.steps.append(progress)
            if self.on_step:
                self.on_step(progress)


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> PoseStudio:
    cache = tmp_path_factory.mktemp("cache")
    return PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=str(cache)))


@pytest.fixture(scope="module")
def poses(studio) -> PoseHandlers:
    return PoseHandlers(studio)


@pytest.fixture(scope="module")
def generation(studio) -> GenerateHandlers:
    return GenerateHandlers(studio)


@pytest.fixture
def counted_detect(studio, monkeypatch) -> list[int]:
    """Counts calls to the estimator's detect (still running it)."""
    calls: list[int] = []
    detect = studio.pose_estimator.detect

    def counting(image):
        calls.append(1)
        return detect(image)

    monkeypatch.setattr(studio.pose_estimator, "detect", counting)
    return calls


@pytest.fixture
def photo_path(tmp_path) -> Path:
    return write_png(tmp_path / "photo.png", synthetic_photo())


def ui_arguments(upload, draw_mode: str = "body-pose", people=None, finished=(), **overrides) -> dict:
    """Generate's inputs as the page sends them: the pose panel's, the last finished gallery, the panel."""
    return {
        "upload": None if upload is None else str(upload),
        "draw_mode": draw_mode,
        "people": people,
        "finished": list(finished),
        **PANEL,
        **overrides,
    }


def look(draw_mode: str, **overrides) -> dict:
    """The conditioning preview's inputs: the PANEL's fixed 128×96 size and thick lines."""
    return {
        "draw_mode": draw_mode,
        "auto_size": False,
        "width": 128,
        "height": 96,
        "thick_lines": True,
    } | overrides


def conditioning_image(pose, draw_mode: str, size: tuple[int, int], thick_lines: bool = True) -> np.ndarray:
    """The engine's conditioning of `pose` for a request of this mode, size and strokes."""
    width, height = size
    request = GenerationRequest(
        prompt="", draw_mode=draw_mode, width=width, height=height, thick_lines=thick_lines
    )
    return conditioning_for(request, pose).image


def value(update):
    return update["value"] if isinstance(update, dict) else update


def two_people() -> dict:
    """The t-pose preset and a copy of it moved right: two people on one canvas."""
    data = json.loads(PRESET.read_text())
    second = json.loads(json.dumps(data["people"][0]))
    for key, values in second.items():
        if key.endswith("_2d"):
            second[key] = [v + 300 if i % 3 == 0 and values[i + 2] > 0 else v for i, v in enumerate(values)]
    data["people"].append(second)
    return data


def test_a_photo_is_detected_once_and_every_mode_redraws_from_the_cache(poses, counted_detect, photo_path):
    photo = synthetic_photo()
    shown = poses.show(str(photo_path), **look(DrawMode.BODY_POSE.value))
    pose = from_openpose_json(shown["pose_json"])
    assert len(pose.people) == 1 and (pose.width, pose.height) == (240, 320)
    assert shown["info"] == "**Photo** `photo.png`, 240×320: 1 person."
    assert shown["pose_size"] == [240, 320]
    assert np.array_equal(
        value(shown["overlay"]), draw_overlay(photo, pose, DrawMode.BODY_POSE, numbered=True)
    )
    for mode in ("full-pose", "body-pose", "face-pose", "hand-pose"):
        redrawn = poses.redraw(str(photo_path), people=None, **look(mode))
        assert "detect_again" not in redrawn
        expected = conditioning_image(pose, mode, (128, 96), True)
        assert np.array_equal(value(redrawn["conditioning"]), expected)
        assert redrawn["conditioning"]["label"].endswith("128×96")
    mask = poses.redraw(str(photo_path), people=None, **look(DrawMode.FACE_MASK.value))
    assert np.array_equal(value(mask["conditioning"]), draw_pose(pose, DrawMode.FACE_MASK))
    assert "inpainting mask" in mask["conditioning"]["label"]
    assert counted_detect == [1]


def test_the_preview_is_at_the_size_a_run_uses(poses):
    """Size from the pose: the SDXL bucket of the 1152×896 preset; thick strokes widen with the size."""
    auto = poses.show(str(PRESET), **look(DrawMode.BODY_POSE.value, auto_size=True))
    assert value(auto["conditioning"]).shape == (896, 1152, 3)
    thin = poses.redraw(str(PRESET), people=None, **look("body-pose", auto_size=True, thick_lines=False))
    assert (value(thin["conditioning"]) > 0).sum() < (value(auto["conditioning"]) > 0).sum()


def test_a_size_out_of_range_is_refused_before_anything_is_drawn(poses):
    refused = poses.show(str(PRESET), **look("body-pose", width=100_000, height=96))
    assert value(refused["conditioning"]) is None
    assert refused["info"].endswith("❌ width must be an integer between 64 and 2048 (got 100000)")


def test_the_same_bytes_under_another_name_hit_the_cache(poses, counted_detect, photo_path, tmp_path):
    poses.show(str(photo_path), **look(DrawMode.FULL_POSE.value))
    copy = tmp_path / "renamed.png"
    copy.write_bytes(photo_path.read_bytes())
    poses.dwpose(str(copy), DrawMode.FULL_POSE.value)
    assert len(counted_detect) <= 1  # 0 when an earlier test already cached these bytes


def test_a_pose_json_file_is_parsed_not_detected(poses, counted_detect):
    expected = from_openpose_json(PRESET.read_bytes())
    shown = poses.show(str(PRESET), **look(DrawMode.HAND_POSE.value))
    assert counted_detect == []
    assert shown["info"] == "**Pose JSON** `t-pose.json`, 1152×896: 1 person."
    assert shown["overlay"]["label"] == "The pose file, every part"
    assert np.array_equal(value(shown["conditioning"]), conditioning_image(expected, "hand-pose", (128, 96)))
    written = json.loads(PRESET.read_text())["people"][0]["pose_keypoints_2d"]
    assert np.allclose(shown["pose_json"]["people"][0]["pose_keypoints_2d"], written, atol=1e-3)


def test_a_skeleton_image_is_used_as_it_is_and_the_draw_mode_is_disabled(poses, counted_detect, tmp_path):
    skeleton = draw_pose(from_openpose_json(PRESET.read_bytes()), DrawMode.FULL_POSE)
    path = write_png(tmp_path / "skeleton.png", skeleton)
    shown = poses.show(str(path), **look(DrawMode.FACE_POSE.value))
    assert counted_detect == [] and shown["pose_json"] is None
    assert shown["overlay"]["visible"] is False  # no photo: nothing to compare, one image only
    assert shown["draw_mode"]["interactive"] is False
    assert np.array_equal(value(shown["conditioning"]), conditioning_image(skeleton, "face-pose", (128, 96)))
    assert "your skeleton, letterboxed, 128×96" in shown["conditioning"]["label"]
    assert shown["info"].startswith("**OpenPose skeleton** `skeleton.png`, 1152×896")
    assert poses.studio.prepare(path).kind is UploadKind.SKELETON


@pytest.mark.parametrize(
    ("image", "is_skeleton"),
    [
        (lambda: draw_pose(from_openpose_json(PRESET.read_bytes()), DrawMode.BODY_POSE), True),
        (synthetic_photo, False),
        # A dark photo: mostly black, but its bright part is grey, not palette colour.
        (lambda: np.pad(np.full((60, 60, 3), 180, np.uint8), ((100, 100), (100, 100), (0, 0))), False),
        (lambda: np.zeros((64, 64, 3), np.uint8), False),
    ],
)
def test_skeleton_detection_by_content(image, is_skeleton):
    assert is_openpose_skeleton(image()) is is_skeleton


def test_errors_stay_in_the_pose_line_with_the_engines_message(poses, tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    with pytest.raises(ImageError) as engine_error:
        load_image(corrupt.read_bytes())
    shown = poses.show(str(corrupt), **look("body-pose"))
    assert shown["info"] == f"❌ {engine_error.value}" and "corrupt" in shown["info"]
    assert value(shown["conditioning"]) is None and shown["pose_json"] is None
    bad = tmp_path / "pose.json"
    bad.write_text('{"people": [}')
    assert "not valid JSON" in poses.show(str(bad), **look("body-pose"))["info"]
    assert poses.show(None, **look("body-pose"))["info"] == ""
    assert poses.redraw(None, people=None, **look("body-pose"))["pose_json"] is None


def test_an_unexpected_failure_is_logged_and_shown_generically(poses, monkeypatch, tmp_path, caplog):
    def broken(image):
        raise RuntimeError("CUDA driver exploded")

    monkeypatch.setattr(poses.studio.pose_estimator, "detect", broken)
    path = write_png(tmp_path / "other.png", synthetic_photo(200, 300))
    assert poses.show(str(path), **look("body-pose"))["info"] == f"❌ {GENERIC_ERROR}"
    assert "CUDA driver exploded" in caplog.text


def test_several_people_are_numbered_and_the_chosen_ones_make_the_conditioning(poses, tmp_path):
    path = tmp_path / "two.json"
    path.write_text(json.dumps(two_people()))
    pose = from_openpose_json(path.read_bytes())
    shown = poses.show(str(path), **look("body-pose"))
    assert shown["people"]["choices"] == [("Person 1", 0), ("Person 2", 1)]
    assert shown["people"]["value"] == [0, 1] and shown["people"]["visible"] is True
    assert "2 people (numbered in the preview; 2 of 2 in the conditioning)" in shown["info"]
    black = np.zeros_like(value(shown["overlay"]))
    assert not np.array_equal(value(shown["overlay"]), draw_overlay(black, pose, DrawMode.FULL_POSE))

    second_only = poses.redraw(str(path), people=[1], **look("body-pose"))
    assert np.array_equal(
        value(second_only["conditioning"]),
        conditioning_image(select_people(pose, [1]), "body-pose", (128, 96)),
    )
    assert second_only["pose_json"] == to_openpose_json(
        select_people(pose, [1])
    )  # the export keeps the choice
    assert "1 of 2 in the conditioning" in second_only["info"]
    nobody = poses.redraw(str(path), people=[], **look("body-pose"))
    assert NO_PERSON_CHOSEN in nobody["info"]


def test_generate_reports_every_step_and_writes_seeds_back(generation, photo_path):
    progress = ProgressRecorder()
    updates = list(generation.run(**ui_arguments(photo_path, samples=2), progress=progress))
    final = updates[-1]
    gallery, seeds = final["gallery"], final["run"]["seeds"]
    assert seeds == [7, 8] and final["seed"] == 7 and final["finished"] == gallery
    assert [caption for _, caption in gallery] == ["conditioning 128×96", "#1 · seed 7", "#2 · seed 8"]
    assert progress.steps == [(step, 3) for step in range(1, 4)]
    for (path, _), seed in zip(gallery[1:], seeds, strict=True):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (128, 96)
            parameters = image.text["parameters"]
        assert parameters.startswith("a dancer on a stage\nNegative prompt: blurry\n")
        assert f"Steps: 3, Sampler: Euler a, CFG scale: 5.0, Seed: {seed}, Size: 128x96" in parameters
    files = final["downloads"]["value"]
    assert final["downloads"]["visible"] is True
    with zipfile.ZipFile(files[0]) as bundle:
        names = set(bundle.namelist())
        pose_used = json.loads(bundle.read("pose.json"))
    assert names == {Path(path).name for path, _ in gallery} | {"result.json", "pose.json"}
    assert pose_used == to_openpose_json(from_openpose_json(pose_used))
    assert final["status"].startswith("✅ 2 sample(s) at 128×96, body, Euler a, 3 steps, in ")
    assert final["status"].endswith("Seeds: 7, 8.")


def test_the_gallerys_conditioning_is_the_previews_pixel_for_pixel(poses, generation):
    for mode in ("full-pose", "body-pose", "face-pose", "hand-pose"):
        preview = value(poses.redraw(str(PRESET), people=None, **look(mode))["conditioning"])
        *_, final = generation.run(**ui_arguments(PRESET, draw_mode=mode, num_inference_steps=1))
        with Image.open(final["gallery"][0][0]) as conditioning:
            assert np.array_equal(np.asarray(conditioning.convert("RGB")), preview), mode


def hand_and_face_pixels(image: np.ndarray) -> tuple[int, int]:
    """Pixels in a colour only hands have (their bones' hues that no body limb or joint uses), and white
    ones (face dots)."""
    body_colours = {tuple(colour) for colour in BODY_COLORS.tolist()} | {
        tuple(c) for c in LIMB_COLORS.tolist()
    }
    hand_only = [colour for colour in HAND_BONE_COLORS if colour not in body_colours]
    hands = sum(int((image == colour).all(axis=2).sum()) for colour in hand_only)
    return hands, int((image == FACE_COLOR).all(axis=2).sum())


def test_full_pose_conditions_on_hands_and_face_and_body_pose_on_neither(poses):
    full = value(poses.redraw(str(PRESET), people=None, **look("full-pose", auto_size=True))["conditioning"])
    body = value(poses.redraw(str(PRESET), people=None, **look("body-pose", auto_size=True))["conditioning"])
    hands, face = hand_and_face_pixels(full)
    assert hands > 100 and face > 100
    assert hand_and_face_pixels(body) == (0, 0)


def test_a_mask_mode_is_refused_at_generate_with_a_way_out(generation):
    *_, final = generation.run(**ui_arguments(PRESET, draw_mode="face-mask"))
    assert final["status"].startswith("❌ ") and "inpainting" in final["status"]
    notice = generation.mask_notice("face-mask")
    assert (
        notice["mask_row"]["visible"] is True
        and "**Face mask** is a mask for inpainting" in notice["mask_text"]
    )
    assert generation.mask_notice("full-pose")["mask_row"]["visible"] is False


def test_live_previews_come_before_the_result(generation, photo_path):
    updates = list(generation.run(**ui_arguments(photo_path, num_inference_steps=8)))
    streamed = [update for update in updates[:-1] if update]  # the others are each step's empty update
    assert streamed, "no preview was streamed while denoising"
    for update in streamed:
        assert set(update) == {"gallery"}
        assert [image.size for image in update["gallery"]] == [
            (128, 96)
        ]  # TAESD (the tiny stand-in) previews


def test_cancel_stops_the_run_at_the_next_step_and_says_so(generation, photo_path):
    request = SimpleNamespace(session_hash="cancel-test")
    said = []
    progress = ProgressRecorder(on_step=lambda step: said.append(generation.cancel(request)))
    previous = [("earlier.png", "#1 · seed 1")]
    updates = list(
        generation.run(
            **ui_arguments(photo_path, num_inference_steps=50, finished=previous),
            progress=progress,
            request=request,
        )
    )
    assert said[0] == {"status": CANCELLING}
    assert 1 <= len(progress.steps) < 50
    step = progress.steps[-1][0]
    assert updates[-1] == {
        "gallery": previous,
        "status": f"⏹ Cancelled at step {step} of 50; the previous results are kept.",
    }
    assert generation.cancel(request) == {"status": NOTHING_TO_CANCEL}


def test_a_run_cancelled_while_it_waits_never_starts(generation, photo_path):
    request = SimpleNamespace(session_hash="queued-cancel")
    generation.arm(request)  # Generate pressed: armed before joining the queue
    assert generation.cancel(request) == {"status": CANCELLING}
    progress = ProgressRecorder()
    *_, final = generation.run(**ui_arguments(photo_path), progress=progress, request=request)
    assert final["status"] == "⏹ Cancelled before it started; the previous results are kept."
    assert progress.steps == []


def test_errors_persist_in_the_status_line_and_restore_the_last_gallery(generation, tmp_path, photo_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"canvas_width": 512, "canvas_height": 512, "people": []}))
    *_, final = generation.run(**ui_arguments(empty, finished=[("a.png", "x")]))
    assert final == {"gallery": [("a.png", "x")], "status": final["status"]}
    assert final["status"].startswith("❌ There is no person in the pose")
    *_, final = generation.run(**ui_arguments(photo_path, scheduler="Nope"))
    assert final["status"].startswith("❌ scheduler must be one of:")
    *_, final = generation.run(**ui_arguments(None))
    assert final["status"] == f"❌ {NO_UPLOAD}"


def test_an_error_after_previews_restores_the_previous_gallery(generation, photo_path, monkeypatch):
    *_, done = generation.run(**ui_arguments(photo_path))
    engine = generation.studio.generation_engine
    generate = engine.generate

    def nan_after_the_first_preview(*args, preview, **kwargs):
        def failing_preview(images, step, total):
            preview(images, step, total)
            raise GenerationError("The result was not a number (NaN).")

        return generate(*args, preview=failing_preview, **kwargs)

    monkeypatch.setattr(engine, "generate", nan_after_the_first_preview)
    updates = list(
        generation.run(**ui_arguments(photo_path, num_inference_steps=8, finished=done["finished"]))
    )
    assert set(next(update for update in updates if update)) == {"gallery"}  # a live preview first
    assert updates[-1] == {"gallery": done["finished"], "status": "❌ The result was not a number (NaN)."}


def test_the_api_shares_the_core_and_raises_for_its_clients(studio, poses, generation, photo_path):
    import gradio as gr

    drawn = poses.dwpose(str(photo_path), DrawMode.FULL_POSE.value)
    assert np.array_equal(drawn["image"], draw_pose(from_openpose_json(drawn["json"]), DrawMode.FULL_POSE))
    *_, final = generation.api(str(PRESET), prompt="a robot", num_inference_steps=2, seed=11, samples=2)
    assert final["seeds"] == [11, 12]
    assert [caption for _, caption in final["images"]] == ["seed 11", "seed 12"]
    *_, full = generation.api(
        str(PRESET), prompt="a robot", num_inference_steps=1, seed=1, draw_mode="full-pose"
    )
    assert full["seeds"] == [1]
    with pytest.raises(gr.Error, match="scheduler must be one of"):
        list(generation.api(str(PRESET), prompt="a robot", scheduler="Nope"))


def test_selection_use_seed_and_send_to_panel(generation, photo_path):
    *_, final = generation.run(**ui_arguments(photo_path, samples=2, seed=40, num_inference_steps=2))
    run = final["run"]
    assert generation.select(run, SimpleNamespace(index=0))["selected"] is None  # the conditioning
    picked = generation.select(run, SimpleNamespace(index=2))
    assert picked["selected"] == 1 and picked["status"].startswith("Sample #2 selected (seed 41)")
    assert generation.use_seed(1, run) == {
        "seed": 41,
        "randomize_seed": False,
        "status": "Seed 41 (sample #2) is set.",
    }
    assert generation.use_seed(None, run) == {"status": f"⚠️ No sample is selected. {NO_SELECTION}"}
    assert generation.send_to_panel(None, run)["status"].startswith("⚠️ No sample is selected.")
    panel = generation.send_to_panel(1, run)
    assert panel["status"].startswith("✅ Settings from sample #2, seed 41 are in the panel.")
    assert (panel["prompt"], panel["negative_prompt"], panel["seed"]) == ("a dancer on a stage", "blurry", 41)
    assert (panel["num_inference_steps"], panel["guidance_scale"], panel["scheduler"]) == (2, 5.0, "Euler a")
    assert (panel["auto_size"], panel["randomize_seed"]) == (False, False)
    assert (panel["width"]["value"], panel["height"]["value"], panel["draw_mode"]) == (128, 96, "body-pose")
    request_fields = {name: panel[name] for name in ("prompt", "seed", "num_inference_steps", "draw_mode")}
    assert GenerationRequest(**request_fields).num_inference_steps == 2


def test_settings_from_a_png_without_parameters_say_why(generation, photo_path):
    assert generation.settings_from_png(str(photo_path))["status"].startswith(
        '❌ the image has no "parameters"'
    )


def test_the_size_fields_show_the_size_a_run_uses(generation):
    auto = generation.sync_size(True, [1152, 896], 1024, 1024)
    assert auto == {
        "width": {"__type__": "update", "value": 1152, "interactive": False},
        "height": {"__type__": "update", "value": 896, "interactive": False},
    }
    manual = generation.sync_size(False, [1152, 896], 640, 512)
    assert manual["width"] == {"__type__": "update", "interactive": True}


def test_cancel_flags_are_per_session_and_kind(studio, generation):
    flags = studio.runner.flags
    with flags.run("a", GENERATION_RUN) as first, flags.run("b", GENERATION_RUN) as second:
        generation.cancel(SimpleNamespace(session_hash="a"))
        assert first.is_set() and not second.is_set()
        assert studio.runner.cancel("b", SWEEP_RUN) is False and not second.is_set()
    assert second.is_set()  # a run's flag is set when it ends, which stops its worker
    assert studio.runner.cancel("b", GENERATION_RUN) is False  # finished runs have no flag left to set


def test_cancel_sweep_does_not_stop_a_generation(studio, generation, photo_path):
    request = SimpleNamespace(session_hash="cancel-sweep-test")
    sweeps = SweepHandlers(studio)
    progress = ProgressRecorder(on_step=lambda step: sweeps.cancel(request))
    *_, final = generation.run(
        **ui_arguments(photo_path, num_inference_steps=4), progress=progress, request=request
    )
    assert [caption for _, caption in final["gallery"]] == ["conditioning 128×96", "#1 · seed 7"]
    assert len(progress.steps) == 4


def test_the_panels_toggles_stand_for_a_random_seed_and_the_poses_size():
    request_fields = {
        key: value for key, value in PANEL.items() if key not in {"randomize_seed", "auto_size"}
    }
    assert panel_request(**PANEL) == GenerationRequest(**request_fields)
    assert isinstance(panel_request(**PANEL).controlnet_scale, float)  # diffusers refuses an int scale
    toggled = panel_request(**PANEL | {"randomize_seed": True, "auto_size": True})
    assert (toggled.seed, toggled.width, toggled.height) == (-1, None, None)


def test_a_pose_asked_for_while_it_is_detected_is_detected_once():
    """A draw-mode change during the upload's detection waits for it instead of running another."""
    cache: LruCache[str] = LruCache(2)
    started, release, calls = threading.Event(), threading.Event(), []

    def detect(name: str) -> str:
        calls.append(name)
        started.set()
        release.wait(timeout=30)
        return f"pose from {name}"

    with ThreadPoolExecutor(2) as pool:
        upload = pool.submit(cache.get_or_create, "image", lambda: detect("upload"))
        started.wait(timeout=30)
        mode_change = pool.submit(cache.get_or_create, "image", lambda: detect("mode change"))
        release.set()
        assert upload.result() == mode_change.result() == "pose from upload"
    assert calls == ["upload"]


def test_a_failed_detection_is_not_cached():
    cache: LruCache[str] = LruCache(2)

    def broken() -> str:
        raise ImageError("corrupt")

    with pytest.raises(ImageError):
        cache.get_or_create("image", broken)
    assert cache.get_or_create("image", lambda: "pose") == "pose" and len(cache) == 1


def test_a_mode_change_on_an_uncached_upload_detects_nothing_and_asks_the_gpu_queue(
    poses, counted_detect, tmp_path
):
    """redraw runs outside the GPU queue: on a miss it leaves the preview and hands back a new token, whose
    change runs `show` in the GPU group; a cached pose is redrawn at once."""
    photo = write_png(tmp_path / "new.png", synthetic_photo(200, 260))
    first = poses.redraw(str(photo), people=None, **look("face-pose"))
    second = poses.redraw(str(photo), people=None, **look("face-pose"))
    assert set(first) == set(second) == {"detect_again"}
    assert len(first["detect_again"]) == 32 and first["detect_again"] != second["detect_again"]
    assert counted_detect == []
    poses.show(str(photo), **look("body-pose"))  # what the token's change runs
    redrawn = poses.redraw(str(photo), people=None, **look("face-pose"))
    assert redrawn["info"] == "**Photo** `new.png`, 200×260: 1 person." and "detect_again" not in redrawn
    assert counted_detect == [1]


def test_the_pages_events_run_in_their_groups_and_stay_private(studio):
    demo = create_demo(studio)
    events = list(demo.fns.values())
    redraws = [fn for fn in events if fn.name == "redraw"]
    assert redraws and {(fn.concurrency_id, fn.concurrency_limit) for fn in redraws} == {("render", None)}
    heavy = [fn for fn in events if fn.name in {"show", "run", "api", "dwpose"}]
    assert {fn.concurrency_id for fn in heavy} == {"gpu"}
    assert {fn.concurrency_limit for fn in heavy} == {studio.settings.concurrency_limit}
    public = {fn.api_name for fn in events if fn.api_visibility != "private"}
    assert public == {"dwpose", "generate", "sweep"}


def test_a_big_photo_is_cached_at_display_size_and_previewed_there(poses, tmp_path):
    photo = synthetic_photo(3000, 2000)
    path = write_png(tmp_path / "big.png", photo)
    shown = poses.show(str(path), **look("body-pose"))
    assert value(shown["overlay"]).shape == (853, PREVIEW_MAX_SIDE, 3)
    assert (shown["pose_json"]["canvas_width"], shown["pose_json"]["canvas_height"]) == (3000, 2000)
    assert shown["info"].startswith("**Photo** `big.png`, 3000×2000")
    cached = poses.studio.poses.peek(content_key(path.read_bytes()))
    assert cached.image.shape == (853, PREVIEW_MAX_SIDE, 3)
    assert poses.dwpose(str(path), DrawMode.BODY_POSE.value)["image"].shape == (2000, 3000, 3)


def test_the_pose_cache_is_bounded_by_bytes_and_keeps_the_newest():
    cache: LruCache[bytes] = LruCache(100, size_of=len)
    for key, size in (("a", 40), ("b", 40), ("c", 40)):
        cache.get_or_create(key, lambda size=size: b"x" * size)
    assert (len(cache), cache.size, cache.peek("a"), cache.peek("b") is not None) == (2, 80, None, True)
    cache.get_or_create("huge", lambda: b"x" * 500)  # alone over the bound: kept, the others go
    assert (len(cache), cache.size) == (1, 500)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_inference_steps": 2.5}, "num_inference_steps must be an integer between 1 and 100 (got 2.5)"),
        ({"samples": "abc"}, "samples must be an integer between 1 and 4 (got 'abc')"),
        ({"controlnet_scale": "1"}, "controlnet_scale must be a number between 0 and 1 (got '1')"),
        ({"seed": True}, "seed must be -1 (random) or an integer between 0 and 999999999999999 (got True)"),
    ],
)
def test_the_page_and_the_api_refuse_what_the_engine_refuses_with_its_message(generation, overrides, message):
    """The panel's components hand on raw values (no rounding), and both paths use the engine's checks."""
    import gradio as gr

    *_, page = generation.run(**ui_arguments(PRESET, **overrides))
    api = {name: value for name, value in PANEL.items() if name not in {"randomize_seed", "auto_size"}}
    with pytest.raises(gr.Error) as endpoint:
        list(generation.api(str(PRESET), ProgressRecorder(), **api | overrides))
    assert page["status"] == f"❌ {message}" and endpoint.value.message == message


def test_the_panel_components_pass_the_raw_value_and_look_like_gradios(studio):
    demo = create_demo(studio)
    steps = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "steps")
    assert steps.preprocess(2.5) == 2.5 and steps.preprocess("abc") == "abc"
    assert steps.get_block_name() == "slider" and steps.api_info()["type"] == "integer"


def test_samples_above_the_servers_cap_are_refused(tmp_path):
    capped = PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=str(tmp_path), max_samples=2))
    *_, final = GenerateHandlers(capped).run(**ui_arguments(PRESET, samples=3))
    assert final["status"] == "❌ samples must be an integer between 1 and 2 (got 3)"


def _ui_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ui."):
            names.add(node.module.removeprefix("ui."))
        elif isinstance(node, ast.Import):
            names |= {alias.name.removeprefix("ui.") for alias in node.names if alias.name.startswith("ui.")}
    return names


def test_no_ui_module_imports_one_that_imports_it_back():
    """ui/ is a tree of rooms: following imports from any module never comes back to it."""
    graph = {path.stem: _ui_imports(path) for path in UI_DIR.glob("*.py") if path.stem != "__init__"}
    for start in graph:
        seen, stack = set(), list(graph[start])
        while stack:
            module = stack.pop()
            assert module != start, f"ui.{start} imports a module that imports it back"
            if module not in seen:
                seen.add(module)
                stack.extend(graph.get(module, ()))


def test_no_ui_module_reaches_into_gradio_internals_or_another_modules_privates():
    for path in UI_DIR.glob("*.py"):
        text = path.read_text()
        assert "demo.fns[" not in text and "cache_event" not in text, path.name
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ui."):
                assert not [alias.name for alias in node.names if alias.name.startswith("_")], path.name
