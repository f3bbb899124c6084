"""The generation engine end to end on the tiny preset (CPU, real diffusers pipeline, tiny random weights)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLControlNetPipeline
from PIL import Image

from pipelines.errors import Cancelled, GenerationError, NoPersonError, ValidationError
from pipelines.generation import (
    DEFAULT_SCHEDULER,
    MAX_SEED,
    PNG_TEXT_KEY,
    SCHEDULERS,
    GenerationEngine,
    GenerationRequest,
    Photo,
)
from pipelines.generation.engine import resolve_dtype
from pipelines.generation.inputs import conditioning_for
from pipelines.generation.schedulers import build_scheduler
from pipelines.generation.tiny import SDXL_SCHEDULER_CONFIG
from pipelines.images import letterbox, load_image, sdxl_bucket
from pipelines.pose import (
    CONDITIONING_MODES,
    PoseEstimator,
    PoseResult,
    draw_conditioning,
    from_openpose_json,
    to_openpose_json,
)
from pipelines.pose.draw import BODY_COLORS, FACE_COLOR, HAND_BONE_COLORS, HAND_JOINT_COLOR, LIMB_COLORS
from pipelines.settings import Settings
from tests.pose_samples import SAMPLE_PHOTO, needs_sample_photo, standing_crop

REPO = Path(__file__).resolve().parents[1]
SIZE = 64  # small enough for seconds per test; 64 px = an 8x8 latent, still three UNet levels


@pytest.fixture(scope="module")
def engine() -> GenerationEngine:
    engine = GenerationEngine.from_settings(Settings(preset="tiny", preview_every=2))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def pose() -> PoseResult:
    """One standing person (the DWPose stand-in's template) in a 288x384 portrait image."""
    return standing_crop()


def request(**changes: object) -> GenerationRequest:
    fields = {"prompt": "a dancer", "num_inference_steps": 3, "seed": 1, "width": SIZE, "height": SIZE}
    return GenerationRequest(**{**fields, **changes})


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def spy_decode(engine: GenerationEngine, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """Record every decoded batch (floats in [-1, 1], before rounding to 8 bits)."""
    decoded: list[torch.Tensor] = []
    original = engine._decode

    def recording(pipeline, latents):
        images = original(pipeline, latents)
        decoded.append(images.clone())
        return images

    monkeypatch.setattr(engine, "_decode", recording)
    return decoded


# --- Request validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prompt": "  "}, "prompt must not be empty"),
        ({"samples": 0}, "samples must be an integer between 1 and 4 (got 0)"),
        ({"samples": 5}, "samples must be an integer between 1 and 4 (got 5)"),
        ({"samples": 2.0}, "samples must be an integer between 1 and 4 (got 2.0)"),
        ({"num_inference_steps": 0}, "num_inference_steps must be an integer between 1 and 100 (got 0)"),
        ({"num_inference_steps": 101}, "num_inference_steps must be an integer between 1 and 100 (got 101)"),
        ({"guidance_scale": 0.5}, "guidance_scale must be a number between 1 and 25 (got 0.5)"),
        ({"guidance_scale": 25.5}, "guidance_scale must be a number between 1 and 25 (got 25.5)"),
        ({"controlnet_scale": -0.1}, "controlnet_scale must be a number between 0 and 1 (got -0.1)"),
        ({"controlnet_scale": 1.5}, "controlnet_scale must be a number between 0 and 1 (got 1.5)"),
        ({"seed": -2}, "seed must be -1 (random) or an integer between 0 and 999999999999999 (got -2)"),
        (
            {"seed": MAX_SEED + 1},
            "seed must be -1 (random) or an integer between 0 and 999999999999999 (got 1000000000000000)",
        ),
        ({"width": 32}, "width must be an integer between 64 and 2048 (got 32)"),
        ({"height": 4096}, "height must be an integer between 64 and 2048 (got 4096)"),
        ({"width": 100}, "width must be a multiple of 8 (got 100)"),
        ({"height": None}, "width and height must be given together"),
        ({"control_guidance_end": 1.2}, "control_guidance_end must be a number between 0 and 1 (got 1.2)"),
        ({"scheduler": "Euler A"}, "scheduler must be one of: DDIM, DPM Multi, DPM Single, Euler a, Euler"),
        (
            {"control_guidance_start": -0.1},
            "control_guidance_start must be a number between 0 and 1 (got -0.1)",
        ),
        (
            {"control_guidance_start": 0.6, "control_guidance_end": 0.5},
            "control_guidance_start (0.6) must be below control_guidance_end (0.5): the ControlNet guides",
        ),
        (
            {"control_guidance_start": 0.5, "control_guidance_end": 0.5},
            "control_guidance_start (0.5) must be below",
        ),
        (
            {"control_guidance_start": 0.2, "control_guidance_end": 0.0},
            "control_guidance_start must be 0 when control_guidance_end is 0 (no ControlNet guidance) "
            "(got start 0.2)",
        ),
        (
            {"draw_mode": "face-mask"},
            "draw_mode 'face-mask' is a mask for inpainting, not OpenPose conditioning; use one of: "
            "full-pose, body-pose, face-pose, hand-pose",
        ),
        (
            {"draw_mode": "skeleton"},
            "draw_mode must be one of: full-pose, body-pose, face-pose, hand-pose (got 'skeleton')",
        ),
    ],
)
def test_each_out_of_range_field_gets_its_message(changes, message):
    with pytest.raises(ValidationError) as raised:
        request(**changes).validate()
    assert str(raised.value).startswith(message)


def test_defaults_are_valid_and_match_the_hosted_api():
    defaults = GenerationRequest(prompt="x")
    defaults.validate()
    assert (defaults.samples, defaults.num_inference_steps, defaults.guidance_scale) == (1, 30, 7.5)
    assert (defaults.scheduler, defaults.seed, defaults.controlnet_scale) == ("Euler a", -1, 1.0)
    assert DEFAULT_SCHEDULER == "Euler a"
    assert (defaults.control_guidance_start, defaults.control_guidance_end, defaults.draw_mode) == (
        0.0,
        1.0,
        "body-pose",
    )
    edges = (
        {"seed": -1},
        {"seed": 0},
        {"seed": MAX_SEED},
        {"samples": 4},
        {"guidance_scale": 25},
        {"control_guidance_start": 0.99},
        {"control_guidance_end": 0.0},
        *({"draw_mode": mode.value} for mode in CONDITIONING_MODES),
    )
    for edge in edges:
        request(**edge).validate()


def test_scheduler_table_has_the_twelve_names_in_order():
    assert list(SCHEDULERS) == [
        "DDIM",
        "DPM Multi",
        "DPM Single",
        "Euler a",
        "Euler",
        "Heun",
        "DPM2 a Karras",
        "DPM2 Karras",
        "LMS",
        "PNDM",
        "DDPM",
        "UniPC",
    ]
    karras = build_scheduler("DPM2 Karras", SDXL_SCHEDULER_CONFIG)
    assert karras.config.use_karras_sigmas and karras.config.timestep_spacing == "linspace"
    assert build_scheduler("PNDM", SDXL_SCHEDULER_CONFIG).config.skip_prk_steps
    # Built from the pipeline's config: the model's noise schedule is kept.
    assert build_scheduler("DDIM", SDXL_SCHEDULER_CONFIG).config.beta_schedule == "scaled_linear"


def test_dtype_follows_the_device():
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("auto", torch.device("mps")) == torch.float16
    assert resolve_dtype("bf16", torch.device("cuda")) == torch.bfloat16
    with pytest.raises(ValidationError, match="POSE_STUDIO_DTYPE must be auto or one of fp16, bf16, fp32"):
        resolve_dtype("half", torch.device("cuda"))


def test_memory_options_are_applied_and_offload_needs_cuda(caplog):
    settings = Settings(preset="tiny", vae_slicing=True, vae_tiling=True, cpu_offload=True, device="cpu")
    engine = GenerationEngine.from_settings(settings)
    with caplog.at_level("WARNING"):
        engine.load()
    assert engine.pipeline.vae.use_slicing and engine.pipeline.vae.use_tiling
    assert "CPU offload only helps on a CUDA GPU; running on cpu without it" in caplog.text
    assert engine.pipeline.device.type == "cpu"


# --- Schedulers, progress, previews -----------------------------------------------------------------------


def expected_calls(scheduler: str, steps: int) -> int:
    """The true number of scheduler steps: what the pipeline iterates over after set_timesteps."""
    reference = build_scheduler(scheduler, SDXL_SCHEDULER_CONFIG)
    reference.set_timesteps(steps)
    return len(reference.timesteps)


@pytest.mark.parametrize("scheduler", list(SCHEDULERS))
def test_every_scheduler_runs_with_one_progress_call_per_step(engine, pose, scheduler):
    calls: list[tuple[int, int]] = []
    result = engine.generate(request(scheduler=scheduler), pose, progress=lambda *call: calls.append(call))
    total = expected_calls(scheduler, 3)
    assert calls == [(step, total) for step in range(1, total + 1)]
    image = pixels(result.images[0])
    assert image.shape == (SIZE, SIZE, 3)
    assert image.std() > 10 and len(np.unique(image)) > 50  # not flat, not black, not saturated


def test_second_order_schedulers_take_about_twice_the_calls():
    assert expected_calls("Euler", 10) == 10
    assert expected_calls("Heun", 10) == 19
    assert expected_calls("DPM2 Karras", 10) == 19
    assert expected_calls("PNDM", 10) == 11  # PLMS warm-up repeats one timestep


def test_previews_come_every_few_steps_for_every_sample(engine, pose):
    previews: list[tuple[int, int, int, tuple[int, int]]] = []

    def on_preview(images, step, total):
        previews.append((step, total, len(images), images[0].size))

    engine.generate(request(samples=2, num_inference_steps=5), pose, preview=on_preview)
    # The tiny preset's stand-in TAESD decodes at the output size (tests/test_generation_extras.py: more).
    assert previews == [(2, 5, 2, (SIZE, SIZE)), (4, 5, 2, (SIZE, SIZE))]


# --- Seeds ----------------------------------------------------------------------------------------------


def test_sample_k_uses_seed_plus_k_and_reproduces_alone(engine, pose, monkeypatch):
    decoded = spy_decode(engine, monkeypatch)
    batch = engine.generate(request(samples=3, seed=40), pose)
    alone = engine.generate(request(samples=1, seed=41), pose)
    assert batch.seeds == [40, 41, 42]
    assert alone.seeds == [41]
    assert torch.allclose(decoded[0][1], decoded[1][0], atol=1e-5, rtol=0)
    # 8-bit rounding may flip a value sitting on a boundary by one level, never more.
    assert np.abs(pixels(batch.images[1]) - pixels(alone.images[0])).max() <= 1
    assert np.abs(pixels(batch.images[0]) - pixels(batch.images[1])).mean() > 5  # seeds really differ


def test_same_seed_same_image_and_random_seed_is_drawn(engine, pose):
    first = engine.generate(request(seed=7), pose)
    again = engine.generate(request(seed=7), pose)
    assert np.array_equal(pixels(first.images[0]), pixels(again.images[0]))
    drawn = engine.generate(request(seed=-1, samples=2), pose)
    assert 0 <= drawn.seeds[0] <= MAX_SEED and drawn.seeds[1] == drawn.seeds[0] + 1
    assert drawn.parameters["seed"] == drawn.seeds[0]


def test_concurrent_requests_do_not_share_scheduler_state(engine, pose):
    requests = [request(scheduler="Euler a", seed=3), request(scheduler="DPM Multi", seed=4)]
    sequential = [pixels(engine.generate(each, pose).images[0]) for each in requests]
    results: dict[int, np.ndarray] = {}

    def run(index: int) -> None:
        results[index] = pixels(engine.generate(requests[index], pose).images[0])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for index in range(2):
        assert np.abs(results[index] - sequential[index]).max() <= 1


# --- Pose inputs, sizes and conditioning ------------------------------------------------------------------


def test_without_size_the_nearest_sdxl_bucket_is_used_and_conditioning_matches(engine, pose):
    result = engine.generate(request(width=None, height=None, num_inference_steps=1), pose)
    assert sdxl_bucket(288, 384) == (896, 1152)
    assert result.images[0].size == result.conditioning.size == (896, 1152)
    assert (result.parameters["width"], result.parameters["height"]) == (896, 1152)
    expected = draw_conditioning(pose, (896, 1152), "body-pose", thick=True)
    assert np.array_equal(np.asarray(result.conditioning), expected)


@pytest.mark.parametrize("mode", [mode.value for mode in CONDITIONING_MODES])
def test_conditioning_is_the_draw_mode_and_thickness(engine, pose, mode):
    result = engine.generate(request(draw_mode=mode, thick_lines=False, num_inference_steps=1), pose)
    expected = draw_conditioning(pose, (SIZE, SIZE), mode, thick=False)
    assert np.array_equal(np.asarray(result.conditioning), expected) and expected.any()
    assert result.parameters["draw_mode"] == mode


@pytest.mark.parametrize("mode", [mode.value for mode in CONDITIONING_MODES])
def test_a_preview_with_conditioning_for_is_the_conditioning_the_engine_uses(engine, pose, mode):
    """At the bucket size with thick strokes, as the page runs: the preview's drawing and the gallery's
    conditioning are one function's output, pixel for pixel, and pose.json is its pose."""
    bucket = request(draw_mode=mode, width=None, height=None, num_inference_steps=1)
    preview = conditioning_for(bucket, pose)
    result = engine.generate(bucket, pose)
    assert preview.image.shape == (1152, 896, 3)
    assert np.array_equal(np.asarray(result.conditioning), preview.image)
    assert result.pose == to_openpose_json(preview.pose)


def test_conditioning_for_needs_no_torch():
    code = (
        "import sys; from pipelines.generation.inputs import conditioning_for; "
        "print(sorted(name for name in ('torch', 'diffusers', 'onnxruntime') if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "[]", done.stderr


def test_full_pose_conditioning_has_hands_and_face_and_body_pose_has_neither(engine, pose):
    """At the default bucket size, as the page runs it, with xinsir's thick strokes (x3 at 896x1152): the
    hand joints' discs (blue, radius 12) then cover most bones. Two hand bone colours are body colours too
    (red, cyan) and the joints' blue is the left knee's: the hands are told by the other 18 and by the blue
    area."""
    drawn = {}
    for mode in ("full-pose", "body-pose"):
        bucket = request(draw_mode=mode, width=None, height=None, num_inference_steps=1)
        drawn[mode] = np.asarray(engine.generate(bucket, pose).conditioning)
    colors = {mode: set(map(tuple, image.reshape(-1, 3).tolist())) for mode, image in drawn.items()}
    hands_only = set(HAND_BONE_COLORS) - {
        tuple(color) for color in [*BODY_COLORS.tolist(), *LIMB_COLORS.tolist()]
    }
    assert len(hands_only) == 18
    assert FACE_COLOR in colors["full-pose"] and hands_only & colors["full-pose"]
    assert FACE_COLOR not in colors["body-pose"] and not colors["body-pose"] & hands_only
    blue = {mode: int((image == HAND_JOINT_COLOR).all(axis=2).sum()) for mode, image in drawn.items()}
    assert blue["body-pose"] < 500 < 5000 < blue["full-pose"]  # one knee disc; 42 hand joints more


def test_a_mask_mode_is_refused_before_anything_runs(engine, pose):
    with pytest.raises(ValidationError, match="draw_mode 'hand-mask' is a mask for inpainting"):
        engine.generate(request(draw_mode="hand-mask"), pose)


def test_guidance_start_and_end_reach_diffusers(engine, pose, monkeypatch):
    calls: list[dict] = []
    original = StableDiffusionXLControlNetPipeline.__call__

    def recording(self, *args, **kwargs):
        calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(StableDiffusionXLControlNetPipeline, "__call__", recording)
    engine.generate(
        request(control_guidance_start=0.25, control_guidance_end=0.75, controlnet_scale=0.5), pose
    )
    engine.generate(request(control_guidance_end=0.0), pose)
    schedule = ("controlnet_conditioning_scale", "control_guidance_start", "control_guidance_end")
    assert [tuple(call[name] for name in schedule) for call in calls] == [(0.5, 0.25, 0.75), (0.0, 0.0, 1.0)]


def test_openpose_json_gives_the_same_image_as_the_pose(engine, pose):
    from_pose = engine.generate(request(), pose)
    from_json = engine.generate(request(), to_openpose_json(pose))
    assert np.array_equal(np.asarray(from_pose.conditioning), np.asarray(from_json.conditioning))
    assert np.array_equal(pixels(from_pose.images[0]), pixels(from_json.images[0]))


def test_controlnet_scale_changes_the_image(engine, pose):
    full = pixels(engine.generate(request(controlnet_scale=1.0), pose).images[0])
    off = pixels(engine.generate(request(controlnet_scale=0.0), pose).images[0])
    assert np.abs(full - off).mean() > 1


def test_a_skeleton_image_is_letterboxed_never_stretched(engine):
    skeleton = np.zeros((40, 80, 3), np.uint8)
    skeleton[10:30, 20:60] = (255, 0, 0)
    result = engine.generate(request(), skeleton)
    conditioning = np.asarray(result.conditioning)
    assert np.array_equal(conditioning, letterbox(skeleton, SIZE, SIZE))
    rows = np.flatnonzero(conditioning.any(axis=(1, 2)))
    assert (rows[0], rows[-1]) == (24, 39)  # 80x40 -> 64x32, centred: 16 black rows above and below


@needs_sample_photo
def test_a_photo_runs_pose_detection_first(pose):
    estimator = PoseEstimator.from_settings(Settings(pose_models="tiny"))
    engine = GenerationEngine.from_settings(Settings(preset="tiny"), pose_estimator=estimator)
    photo = load_image(SAMPLE_PHOTO)
    result = engine.generate(request(), Photo(photo))
    detected = estimator.detect(photo)
    assert len(detected.people) == 1
    expected = draw_conditioning(detected, (SIZE, SIZE), "body-pose", thick=True)
    assert np.array_equal(np.asarray(result.conditioning), expected)
    assert result.pose == to_openpose_json(detected.fit_to(SIZE, SIZE))  # the detected pose, as drawn
    assert result.timings["pose"] > 0
    assert set(result.timings) == {"pose", "denoise", "decode", "total"}


def test_no_people_is_a_no_person_error(engine, pose):
    with pytest.raises(NoPersonError, match="no person in the pose"):
        engine.generate(request(), dataclasses.replace(pose, people=[]))
    with pytest.raises(NoPersonError, match="all black"):
        engine.generate(request(), np.zeros((64, 64, 3), np.uint8))


# --- Cancel and the guards --------------------------------------------------------------------------------


def count_decodes(engine: GenerationEngine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    vae = engine.pipeline.vae
    original = vae.decode
    monkeypatch.setattr(vae, "decode", lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    return calls


def test_cancel_stops_at_the_next_step_without_decoding(engine, pose, monkeypatch):
    decodes = count_decodes(engine, monkeypatch)
    cancel = threading.Event()
    steps: list[int] = []

    def on_progress(step: int, total: int) -> None:
        steps.append(step)
        if step == 2:
            cancel.set()

    with pytest.raises(Cancelled, match="at step 2 of 10"):
        engine.generate(request(num_inference_steps=10), pose, progress=on_progress, cancel=cancel)
    assert steps == [1, 2]
    assert decodes == []
    with pytest.raises(Cancelled, match="before it started"):
        engine.generate(request(), pose, progress=on_progress, cancel=cancel)
    assert steps == [1, 2]
    engine.generate(request(), pose)
    assert decodes == [1]


@pytest.mark.parametrize(("fill", "message"), [(float("nan"), "NaN values"), (-1.0, "all-black image")])
def test_nan_or_black_output_is_an_error(engine, pose, monkeypatch, fill, message):
    vae = engine.pipeline.vae
    monkeypatch.setattr(
        vae, "decode", lambda latents, return_dict=False: (torch.full((1, 3, SIZE, SIZE), fill),)
    )
    with pytest.raises(GenerationError, match=message):
        engine.generate(request(seed=5), pose)


def test_out_of_memory_frees_and_the_next_request_works(engine, pose, monkeypatch):
    unet = engine.pipeline.unet
    original = unet.forward

    def fail_once(*args, **kwargs):
        monkeypatch.setattr(unet, "forward", original)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(unet, "forward", fail_once)
    with pytest.raises(GenerationError, match=r"Out of GPU memory generating 2 x 64x64\. Try fewer samples"):
        engine.generate(request(samples=2), pose)
    result = engine.generate(request(samples=2), pose)
    assert len(result.images) == 2 and pixels(result.images[0]).std() > 10


# --- Saving -----------------------------------------------------------------------------------------------


def test_save_writes_pngs_with_parameters_and_result_json(engine, pose, tmp_path):
    result = engine.generate(request(samples=2, seed=12, negative_prompt="blurry"), pose)
    paths = result.save(tmp_path)
    assert [path.name for path in paths] == ["sample-1-seed-12.png", "sample-2-seed-13.png"]
    text = Image.open(paths[1]).text[PNG_TEXT_KEY]
    assert text.splitlines()[:2] == ["a dancer", "Negative prompt: blurry"]
    assert "Steps: 3, Sampler: Euler a, CFG scale: 7.5, Seed: 13, Size: 64x64, Model: tiny" in text
    saved = pixels(Image.open(paths[0]))
    assert np.array_equal(saved, pixels(result.images[0]))
    assert Image.open(tmp_path / "conditioning.png").size == (SIZE, SIZE)
    assert GenerationRequest(**result.parameters) == request(samples=2, seed=12, negative_prompt="blurry")
    saved_json = json.loads((tmp_path / "result.json").read_text())
    assert saved_json["seeds"] == [12, 13]
    assert saved_json["images"] == [path.name for path in paths]
    assert saved_json["parameters"]["seed"] == 12 and saved_json["models"] == {"preset": "tiny"}


def test_pose_json_is_the_pose_drawn_and_is_saved_beside_the_conditioning(engine, pose, tmp_path):
    result = engine.generate(
        request(draw_mode="full-pose", width=None, height=None, num_inference_steps=1), pose
    )
    assert result.pose == to_openpose_json(pose.fit_to(896, 1152))
    result.save(tmp_path)
    saved = json.loads((tmp_path / "pose.json").read_text())
    assert json.loads((tmp_path / "result.json").read_text())["pose"] == "pose.json"
    assert (saved["canvas_width"], saved["canvas_height"]) == (896, 1152)
    redrawn = draw_conditioning(from_openpose_json(saved), (896, 1152), "full-pose")
    assert np.array_equal(redrawn, np.asarray(Image.open(tmp_path / "conditioning.png")))


def test_a_skeleton_image_has_no_pose_json(engine, tmp_path):
    skeleton = np.zeros((64, 64, 3), np.uint8)
    skeleton[10:50, 30:34] = 255
    result = engine.generate(request(), skeleton)
    result.save(tmp_path)
    assert result.pose is None and result.to_json()["pose"] is None
    assert not (tmp_path / "pose.json").exists() and (tmp_path / "conditioning.png").exists()
