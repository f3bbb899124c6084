"""The UI handlers called directly on the tiny preset: upload kinds, the pose cache, errors, generation."""

from __future__ import annotations

import json
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from pipelines.errors import GenerationError, ImageError
from pipelines.generation import GenerationRequest
from pipelines.generation.inputs import is_openpose_skeleton
from pipelines.images import load_image
from pipelines.pose import DrawMode, draw_overlay, draw_pose, from_openpose_json
from pipelines.settings import Settings
from tests.app_helpers import PANEL, REPO, synthetic_photo, write_png
from ui.handlers import (
    GENERATION_RUN,
    GENERIC_ERROR,
    NO_UPLOAD,
    PoseStudio,
    panel_request,
    select_sample,
    use_seed,
)
from ui.layout import build_ui
from ui.state import LruCache
from ui.sweep import SWEEP_RUN, SweepHandlers
from ui.uploads import PREVIEW_MAX_SIDE, UploadKind, content_key

PRESET = REPO / "assets" / "poses" / "t-pose.json"


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


def ui_arguments(upload, **overrides) -> dict:
    return {"upload": str(upload), **PANEL, **overrides}


def test_a_photo_is_detected_once_and_every_mode_redraws_from_the_cache(studio, counted_detect, photo_path):
    photo = synthetic_photo()
    (before, after), pose_json, info = studio.show_pose(str(photo_path), DrawMode.BODY_POSE.value)
    pose = from_openpose_json(pose_json)
    assert len(pose.people) == 1 and (pose.width, pose.height) == (240, 320)
    assert info == "**Photo**, 240×320: 1 person."
    assert np.array_equal(before, draw_overlay(photo, pose, DrawMode.BODY_POSE))
    assert np.array_equal(after, draw_pose(pose, DrawMode.BODY_POSE))
    drawn = {}
    for mode in DrawMode:
        (before, after), _, _, detect_again = studio.redraw(str(photo_path), mode.value)
        assert detect_again == gr.skip()
        assert np.array_equal(after, draw_pose(pose, mode))
        drawn[mode] = after
    assert counted_detect == [1]
    # The modes really differ: the body alone has no white face dots, the face mode has no limb colours.
    assert not np.array_equal(drawn[DrawMode.BODY_POSE], drawn[DrawMode.FACE_POSE])
    assert (drawn[DrawMode.FACE_POSE] == 255).all(axis=2).any()
    assert not (drawn[DrawMode.BODY_POSE] == 255).all(axis=2).any()


def test_the_same_bytes_under_another_name_hit_the_cache(studio, counted_detect, photo_path, tmp_path):
    studio.show_pose(str(photo_path), DrawMode.FULL_POSE.value)
    copy = tmp_path / "renamed.png"
    copy.write_bytes(photo_path.read_bytes())
    studio.dwpose(str(copy), DrawMode.FULL_POSE.value)
    assert len(counted_detect) <= 1  # 0 when an earlier test already cached these bytes


def test_a_pose_json_file_is_parsed_not_detected(studio, counted_detect):
    expected = from_openpose_json(PRESET.read_bytes())
    (before, after), pose_json, info = studio.show_pose(str(PRESET), DrawMode.HAND_POSE.value)
    assert counted_detect == []
    assert info == "**Pose JSON**, 1152×896: 1 person."
    assert np.array_equal(before, draw_pose(expected, DrawMode.FULL_POSE))
    assert np.array_equal(after, draw_pose(expected, DrawMode.HAND_POSE))
    written = json.loads(PRESET.read_text())["people"][0]["pose_keypoints_2d"]
    assert np.allclose(pose_json["people"][0]["pose_keypoints_2d"], written, atol=1e-3)


def test_a_skeleton_image_is_used_as_it_is(studio, counted_detect, tmp_path):
    skeleton = draw_pose(from_openpose_json(PRESET.read_bytes()), DrawMode.FULL_POSE)
    path = write_png(tmp_path / "skeleton.png", skeleton)
    (before, after), pose_json, info = studio.show_pose(str(path), DrawMode.FACE_MASK.value)
    assert counted_detect == [] and pose_json is None
    assert np.array_equal(before, skeleton) and np.array_equal(after, skeleton)
    assert info.startswith("**OpenPose skeleton**, 1152×896")
    assert studio.prepare(path).kind is UploadKind.SKELETON


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


def test_corrupt_upload_shows_the_engines_message(studio, tmp_path):
    corrupt = tmp_path / "broken.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
    with pytest.raises(ImageError) as engine_error:
        load_image(corrupt.read_bytes())
    with pytest.raises(gr.Error) as shown:
        studio.show_pose(str(corrupt), DrawMode.BODY_POSE.value)
    assert shown.value.message == str(engine_error.value)
    assert "corrupt" in shown.value.message


def test_malformed_json_and_missing_upload_are_readable(studio, tmp_path):
    bad = tmp_path / "pose.json"
    bad.write_text('{"people": [}')
    with pytest.raises(gr.Error, match="not valid JSON"):
        studio.show_pose(str(bad), DrawMode.BODY_POSE.value)
    with pytest.raises(gr.Error) as missing:
        studio.show_pose(None, DrawMode.BODY_POSE.value)
    assert missing.value.message == NO_UPLOAD
    assert studio.redraw(None, DrawMode.BODY_POSE.value) == (None, None, "", gr.skip())


def test_an_unexpected_failure_is_logged_and_shown_generically(studio, monkeypatch, tmp_path):
    def broken(image):
        raise RuntimeError("CUDA driver exploded")

    monkeypatch.setattr(studio.pose_estimator, "detect", broken)
    path = write_png(tmp_path / "other.png", synthetic_photo(200, 300))
    with pytest.raises(gr.Error) as shown:
        studio.show_pose(str(path), DrawMode.BODY_POSE.value)
    assert shown.value.message == GENERIC_ERROR


def test_generate_stream_reports_every_step_and_writes_seeds_back(studio, photo_path):
    progress = ProgressRecorder()
    updates = list(studio.generate_stream(**ui_arguments(photo_path, samples=2), progress=progress))
    gallery, files, seed, seeds, status, finished = updates[-1]
    assert seeds == [7, 8] and seed == 7 and finished == gallery
    assert [caption for _, caption in gallery] == ["pose conditioning", "seed 7", "seed 8"]
    assert progress.steps == [(step, 3) for step in range(1, 4)]
    for (path, _), seed in zip(gallery[1:], seeds, strict=True):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (128, 96)
            parameters = image.text["parameters"]
        assert parameters.startswith("a dancer on a stage\nNegative prompt: blurry\n")
        assert f"Steps: 3, Sampler: Euler a, CFG scale: 5.0, Seed: {seed}, Size: 128x96" in parameters
    with Image.open(gallery[0][0]) as conditioning:
        assert conditioning.size == (128, 96)
    archive = Path(files[0])
    with zipfile.ZipFile(archive) as bundle:
        names = set(bundle.namelist())
    assert names == {Path(path).name for path, _ in gallery} | {"result.json"}
    assert "Seeds: 7, 8" in status


def test_live_previews_come_before_the_result(studio, photo_path):
    updates = list(studio.generate_stream(**ui_arguments(photo_path, num_inference_steps=8)))
    streamed = [update for update in updates[:-1] if update[0] != gr.skip()]
    assert streamed, "no preview was streamed while denoising"
    for preview, *rest in streamed:
        assert rest == [gr.skip()] * 5
        assert [image.size for image in preview] == [(128, 96)]  # TAESD (the tiny stand-in) previews


def test_cancel_stops_the_run_at_the_next_step(studio, photo_path):
    request = SimpleNamespace(session_hash="cancel-test")
    progress = ProgressRecorder(on_step=lambda step: studio.cancel(request))
    updates = list(
        studio.generate_stream(
            **ui_arguments(photo_path, num_inference_steps=50), progress=progress, request=request
        )
    )
    assert all(update[1] == gr.skip() for update in updates)  # no final result was produced
    assert 1 <= len(progress.steps) < 50


def test_a_pose_without_people_cannot_generate(studio, tmp_path):
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"canvas_width": 512, "canvas_height": 512, "people": []}))
    with pytest.raises(gr.Error, match="No person"):
        list(studio.generate_stream(**ui_arguments(empty)))


def test_generation_validation_errors_carry_the_engines_message(studio, photo_path):
    with pytest.raises(gr.Error, match="scheduler"):
        list(studio.generate_stream(**ui_arguments(photo_path, scheduler="Nope")))


def test_api_handlers_share_the_core(studio, photo_path):
    pose_image, pose_json = studio.dwpose(str(photo_path), DrawMode.FULL_POSE.value)
    assert np.array_equal(pose_image, draw_pose(from_openpose_json(pose_json), DrawMode.FULL_POSE))
    *_, (images, seeds) = studio.generate(
        str(PRESET), prompt="a robot", num_inference_steps=2, seed=11, samples=2
    )
    assert seeds == [11, 12]
    assert [caption for _, caption in images] == ["seed 11", "seed 12"]


def test_use_this_seed_takes_the_selected_samples_seed():
    seeds = [40, 41]
    assert select_sample(seeds, SimpleNamespace(index=0)) is None  # the conditioning image
    assert select_sample(seeds, SimpleNamespace(index=2)) == 41
    assert use_seed(41) == (41, False)
    assert use_seed(None) == (gr.skip(), gr.skip())


def test_cancel_flags_are_per_session_and_kind(studio):
    with (
        studio.cancel_flags.run("a", GENERATION_RUN) as first,
        studio.cancel_flags.run("b", GENERATION_RUN) as second,
    ):
        studio.cancel(SimpleNamespace(session_hash="a"))
        assert first.is_set() and not second.is_set()
        assert studio.cancel_flags.cancel("b", SWEEP_RUN) is False and not second.is_set()
    assert second.is_set()  # a run's flag is set when it ends, which stops its worker
    assert studio.cancel_flags.cancel("b", GENERATION_RUN) is False  # finished runs have no flag left to set


def test_cancel_sweep_does_not_stop_a_generation(studio, photo_path):
    request = SimpleNamespace(session_hash="cancel-sweep-test")
    sweeps = SweepHandlers(studio)
    progress = ProgressRecorder(on_step=lambda step: sweeps.cancel(request))
    arguments = ui_arguments(photo_path, num_inference_steps=4)
    *_, (gallery, *_) = studio.generate_stream(**arguments, progress=progress, request=request)
    assert [caption for _, caption in gallery] == ["pose conditioning", "seed 7"]
    assert len(progress.steps) == 4


@pytest.fixture(scope="module")
def page_events(studio):
    """The page's generate event and the listener the page runs when that event is cancelled or fails."""
    demo = build_ui(studio)
    generate = next(event for event in demo.fns.values() if event.name == "generate_stream")
    (on_failure,) = [
        event
        for event in demo.fns.values()
        if event.trigger_after == generate._id and event.trigger_only_on_failure
    ]
    return generate, on_failure


def shown_after_failure(page_events, finished: list) -> list:
    """What the page's gallery shows once a run is cancelled or fails, given the `finished` state then."""
    generate, on_failure = page_events
    gallery, finished_state = generate.outputs[0], generate.outputs[-1]
    assert [block._id for block in on_failure.inputs] == [finished_state._id]
    assert [block._id for block in on_failure.outputs] == [gallery._id]
    return on_failure.fn(finished)


def test_a_cancelled_run_shows_the_previous_finished_gallery_again(studio, photo_path, page_events):
    assert shown_after_failure(page_events, []) == []  # no finished run yet: the previews go, empty
    *_, (previous, *_, finished) = studio.generate_stream(**ui_arguments(photo_path))
    request = SimpleNamespace(session_hash="restore-test")
    arguments = ui_arguments(photo_path, seed=99, num_inference_steps=50)
    updates = []
    for update in studio.generate_stream(**arguments, request=request):
        updates.append(update)
        if update[0] != gr.skip():
            studio.cancel(request)  # the Cancel button, while the first live preview is shown
    assert any(update[0] != gr.skip() for update in updates)
    assert all(update[1:] == (gr.skip(),) * 5 for update in updates)  # downloads, seed, status, state kept
    assert shown_after_failure(page_events, finished) == previous
    assert [caption for _, caption in previous] == ["pose conditioning", "seed 7"]


def test_an_error_after_previews_shows_the_previous_finished_gallery_again(
    studio, photo_path, page_events, monkeypatch
):
    *_, (previous, *_, finished) = studio.generate_stream(**ui_arguments(photo_path))
    generate = studio.generation_engine.generate

    def nan_after_the_first_preview(*args, preview, **kwargs):
        def failing_preview(images, step, total):
            preview(images, step, total)
            raise GenerationError("The result was not a number (NaN).")

        return generate(*args, preview=failing_preview, **kwargs)

    monkeypatch.setattr(studio.generation_engine, "generate", nan_after_the_first_preview)
    updates = studio.generate_stream(**ui_arguments(photo_path, num_inference_steps=8))
    _, *kept = next(update for update in updates if update[0] != gr.skip())
    assert kept == [gr.skip()] * 5
    with pytest.raises(gr.Error, match="NaN"):
        list(updates)
    assert shown_after_failure(page_events, finished) == previous


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


def test_a_draw_mode_change_on_an_uncached_upload_detects_nothing_and_asks_the_gpu_queue(
    studio, counted_detect, tmp_path
):
    """redraw runs outside the GPU queue: on a miss it leaves the preview and hands back a new token, whose
    change runs show_pose in the GPU group (ui.layout); a cached pose is redrawn at once."""
    photo = write_png(tmp_path / "new.png", synthetic_photo(200, 260))
    first = studio.redraw(str(photo), DrawMode.FACE_POSE.value)
    second = studio.redraw(str(photo), DrawMode.FACE_POSE.value)
    assert first[:3] == second[:3] == (gr.skip(),) * 3
    assert len(first[3]) == len(second[3]) == 32 and first[3] != second[3]  # each miss is a change
    assert counted_detect == []
    studio.show_pose(str(photo), DrawMode.BODY_POSE.value)  # what the token's change runs
    (_, after), _, info, detect_again = studio.redraw(str(photo), DrawMode.FACE_POSE.value)
    assert (detect_again, info, after.shape) == (gr.skip(), "**Photo**, 200×260: 1 person.", (260, 200, 3))
    assert counted_detect == [1]


def test_the_redraw_event_runs_outside_the_gpu_group_and_its_misses_inside(studio):
    demo = build_ui(studio)
    events = {fn.name: fn for fn in demo.fns.values()}
    assert (events["redraw"].concurrency_id, events["redraw"].concurrency_limit) == ("render", None)
    gpu_events = [fn for fn in demo.fns.values() if fn.name == "show_pose"]
    assert [fn.concurrency_id for fn in gpu_events] == ["gpu", "gpu"]  # on upload, and on a redraw's miss
    assert {fn.concurrency_limit for fn in gpu_events} == {studio.settings.concurrency_limit}
    page_events = [fn for fn in demo.fns.values() if fn.api_name not in {"dwpose", "generate", "sweep"}]
    undocumented = {fn.name for fn in page_events if fn.api_visibility != "private"}
    assert undocumented == {"load_example_input", "load_example_output"}  # gr.Examples' own


def test_a_big_photo_is_cached_at_display_size_and_previewed_there(studio, tmp_path):
    photo = synthetic_photo(3000, 2000)
    path = write_png(tmp_path / "big.png", photo)
    (before, after), pose_json, info, _ = (*studio.show_pose(str(path), DrawMode.BODY_POSE.value), None)
    assert before.shape == after.shape == (853, PREVIEW_MAX_SIDE, 3)
    assert (pose_json["canvas_width"], pose_json["canvas_height"]) == (3000, 2000)  # full-size keypoints
    assert info.startswith("**Photo**, 3000×2000")
    cached = studio.poses.peek(content_key(path.read_bytes()))
    assert cached.image.shape == (853, PREVIEW_MAX_SIDE, 3)
    dwpose_image, _ = studio.dwpose(str(path), DrawMode.BODY_POSE.value)
    assert dwpose_image.shape == (2000, 3000, 3)  # the API draws at the image's own size


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
def test_the_page_and_the_api_refuse_what_the_engine_refuses_with_its_message(studio, overrides, message):
    """The panel's components hand on raw values (no rounding), and both paths use the engine's checks."""
    with pytest.raises(gr.Error) as page:
        list(studio.generate_stream(str(PRESET), ProgressRecorder(), **PANEL | overrides))
    api = {name: value for name, value in PANEL.items() if name not in {"randomize_seed", "auto_size"}}
    with pytest.raises(gr.Error) as endpoint:
        list(studio.generate(str(PRESET), ProgressRecorder(), **api | overrides))
    assert page.value.message == endpoint.value.message == message


def test_the_panel_components_pass_the_raw_value_and_look_like_gradios(studio):
    demo = build_ui(studio)
    steps = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "steps")
    assert steps.preprocess(2.5) == 2.5 and steps.preprocess("abc") == "abc"
    assert steps.get_block_name() == "slider" and steps.api_info()["type"] == "integer"


def test_samples_above_the_servers_cap_are_refused(tmp_path):
    capped = PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=str(tmp_path), max_samples=2))
    with pytest.raises(gr.Error) as refused:
        list(capped.generate_stream(str(PRESET), ProgressRecorder(), **PANEL | {"samples": 3}))
    assert refused.value.message == "samples must be an integer between 1 and 2 (got 3)"
