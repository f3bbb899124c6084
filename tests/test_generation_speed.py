"""Speed levers (pipelines/generation/speed.py) on the tiny preset: each CPU-capable lever gives the stock
images (decoded floats within TOLERANCE; the ControlNet skip exactly), the skip never runs the ControlNet's
network when its scale is 0, progress is unchanged, and the settings parse."""

from __future__ import annotations

import pytest
import torch
from diffusers import ControlNetModel, UNet2DConditionModel

from pipelines.errors import ValidationError
from pipelines.generation import GenerationEngine, GenerationRequest, Photo
from pipelines.generation.speed import LEVERS, IdleSkippingControlNet, stock_settings
from pipelines.images import load_image
from pipelines.pose import PoseEstimator, PoseResult
from pipelines.settings import Settings
from tests.pose_samples import SAMPLE_PHOTO, needs_sample_photo, standing_crop

SIZE = 64
# Max abs difference of decoded images (floats in [-1, 1]) allowed for levers that reorder float sums
# (channels_last, fused QKV): measured ≤ 3.4e-5 on the tiny preset; one 8-bit level is 7.8e-3.
TOLERANCE = 1e-4
STOCK = stock_settings(Settings(preset="tiny"))
# Levers applied to the loaded models on a CPU: they must keep the images. (bf16 runs on a CPU too, but it
# changes the weights' precision, so its images differ by design.)
CPU_LEVERS = [lever for lever in LEVERS if lever.runs_on_cpu and lever.apply is not None]


@pytest.fixture(scope="module")
def pose() -> PoseResult:
    return standing_crop()


def request(**changes: object) -> GenerationRequest:
    fields = {"prompt": "a dancer", "num_inference_steps": 4, "seed": 3, "width": SIZE, "height": SIZE}
    return GenerationRequest(**{**fields, "samples": 2, **changes})


def decoded(settings: Settings, pose: PoseResult, **changes: object) -> torch.Tensor:
    """The decoded floats of one request (before rounding to 8 bits)."""
    engine = GenerationEngine.from_settings(settings)
    images: list[torch.Tensor] = []
    original = engine._decode
    engine._decode = lambda pipeline, latents: images.append(original(pipeline, latents)) or images[-1]
    engine.generate(request(**changes), pose)
    return images[0]


@pytest.fixture(scope="module")
def stock_images(pose) -> dict[str, torch.Tensor]:
    cases = {"full": {}, "scale 0": {"controlnet_scale": 0.0}, "end 0.5": {"control_guidance_end": 0.5}}
    return {name: decoded(STOCK, pose, **changes) for name, changes in cases.items()}


def test_defaults_turn_the_safe_levers_on_and_compilation_off():
    settings = Settings()
    assert (settings.channels_last, settings.fuse_qkv, settings.skip_idle_controlnet) == (True, True, True)
    assert (settings.attention, settings.compile, settings.dtype) == ("sdpa", "off", "auto")
    assert not settings.sequential_guidance
    assert {lever.name for lever in CPU_LEVERS} == {
        "channels_last",
        "fuse_qkv",
        "skip_idle_controlnet",
        "sequential_guidance",
    }
    stock = stock_settings(settings)
    assert (stock.channels_last, stock.fuse_qkv, stock.skip_idle_controlnet, stock.compile) == (
        False,
        False,
        False,
        "off",
    )
    assert stock.dtype == "auto" and stock_settings(settings.replace(dtype="bf16")).dtype == "fp16"


def test_lever_settings_parse_from_the_environment():
    settings = Settings.from_env(
        {
            "POSE_STUDIO_ATTENTION": "flash",
            "POSE_STUDIO_CHANNELS_LAST": "0",
            "POSE_STUDIO_FUSE_QKV": "off",
            "POSE_STUDIO_SKIP_IDLE_CONTROLNET": "no",
            "POSE_STUDIO_COMPILE": "reduce-overhead",
            "POSE_STUDIO_COMPILE_WARMUP": "false",
        }
    )
    assert (settings.attention, settings.compile) == ("flash", "reduce-overhead")
    assert not (settings.channels_last or settings.fuse_qkv or settings.skip_idle_controlnet)
    assert not settings.compile_warmup
    with pytest.raises(ValueError, match="POSE_STUDIO_FUSE_QKV='maybe' is not a valid bool"):
        Settings.from_env({"POSE_STUDIO_FUSE_QKV": "maybe"})


@pytest.mark.parametrize(("setting", "value"), [("attention", "fast"), ("compile", "on")])
def test_unknown_lever_values_name_the_variable_and_choices(setting, value):
    with pytest.raises(ValidationError, match=f"POSE_STUDIO_{setting.upper()} must be one of"):
        GenerationEngine.from_settings(Settings(preset="tiny", **{setting: value}))


def test_cuda_only_levers_are_skipped_on_the_cpu_with_a_warning(caplog):
    engine = GenerationEngine.from_settings(STOCK.replace(attention="flash", compile="default"))
    with caplog.at_level("WARNING"):
        engine.load()
    assert "POSE_STUDIO_ATTENTION=flash needs a CUDA GPU; ignored on cpu" in caplog.text
    assert "POSE_STUDIO_COMPILE=default needs a CUDA GPU" in caplog.text
    assert engine.runtime["speed"] == "stock"


@pytest.mark.parametrize("lever", CPU_LEVERS, ids=lambda lever: lever.name)
def test_each_cpu_lever_alone_gives_the_stock_images(lever, pose, stock_images):
    settings = STOCK.replace(**{lever.setting: lever.trials[0]})
    changes = {"full": {}, "scale 0": {"controlnet_scale": 0.0}, "end 0.5": {"control_guidance_end": 0.5}}
    for case, images in stock_images.items():
        difference = (decoded(settings, pose, **changes[case]) - images).abs().max().item()
        limit = 0.0 if lever.name == "skip_idle_controlnet" else TOLERANCE
        assert difference <= limit, (case, difference)


def test_all_default_levers_together_give_the_stock_images(pose, stock_images):
    engine_settings = Settings(preset="tiny")
    difference = (decoded(engine_settings, pose) - stock_images["full"]).abs().max().item()
    assert difference <= TOLERANCE


def test_every_cpu_lever_together_gives_the_stock_images(pose, stock_images):
    """The ControlNet skip inside each half of sequential guidance, on fused, NHWC models."""
    settings = STOCK.replace(**{lever.setting: lever.trials[0] for lever in CPU_LEVERS})
    changes = {"full": {}, "scale 0": {"controlnet_scale": 0.0}, "end 0.5": {"control_guidance_end": 0.5}}
    for case, images in stock_images.items():
        difference = (decoded(settings, pose, **changes[case]) - images).abs().max().item()
        assert difference <= TOLERANCE, (case, difference)


@pytest.mark.parametrize(
    ("sequential", "changes", "unet_batches", "controlnet_batches"),
    [
        (False, {}, [4] * 4, [4] * 4),  # stock: negative and positive of 2 samples in one batch of 4
        (True, {}, [2] * 8, [2] * 8),  # the negative half, then the positive half
        (True, {"samples": 1, "guidance_scale": 1.0}, [1] * 4, [1] * 4),  # odd batch: one call
        (True, {"samples": 1, "control_guidance_end": 0.5}, [1] * 8, [1] * 4),  # skip, half by half
    ],
)
def test_sequential_guidance_calls_each_model_on_half_batches(
    pose, monkeypatch, sequential, changes, unet_batches, controlnet_batches
):
    batches: dict[str, list[int]] = {"unet": [], "controlnet": []}
    for name, model_class in (("unet", UNet2DConditionModel), ("controlnet", ControlNetModel)):
        original = model_class.forward

        def recording(self, sample, *args, _record=batches[name], _original=original, **kwargs):
            _record.append(sample.shape[0])
            return _original(self, sample, *args, **kwargs)

        monkeypatch.setattr(model_class, "forward", recording)
    settings = STOCK.replace(sequential_guidance=sequential, skip_idle_controlnet=True)
    GenerationEngine.from_settings(settings).generate(request(**changes), pose)
    assert batches == {"unet": unet_batches, "controlnet": controlnet_batches}


def test_fused_projections_share_memory_with_the_originals():
    engine = GenerationEngine.from_settings(STOCK.replace(fuse_qkv=True))
    unet = engine.pipeline.unet
    attention = next(module for name, module in unet.named_modules() if name.endswith("attn1"))
    assert attention.to_q.weight.data_ptr() == attention.to_qkv.weight.data_ptr()
    assert attention.to_k.weight.untyped_storage().data_ptr() == attention.to_qkv.weight.data_ptr()
    processors = {type(p).__name__ for p in engine.pipeline.controlnet.attn_processors.values()}
    assert processors == {"FusedAttnProcessor2_0"}


def count_controlnet_runs(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The scale of every real ControlNet forward (the network itself, not the skip check)."""
    scales: list[float] = []
    original = ControlNetModel.forward

    def counting(self, *args, conditioning_scale=1.0, **kwargs):
        scales.append(conditioning_scale)
        return original(self, *args, conditioning_scale=conditioning_scale, **kwargs)

    monkeypatch.setattr(ControlNetModel, "forward", counting)
    return scales


@pytest.mark.parametrize(
    ("changes", "expected_runs"),
    [
        ({}, 4),
        ({"controlnet_scale": 0.0}, 0),
        ({"control_guidance_end": 0.5}, 2),
        ({"control_guidance_end": 0.25}, 1),
        ({"control_guidance_start": 0.5}, 2),  # steps 3 and 4 of 4
        ({"control_guidance_start": 0.25, "control_guidance_end": 0.75}, 2),  # steps 2 and 3
    ],
)
def test_the_controlnet_network_does_not_run_at_zero_scale(pose, monkeypatch, changes, expected_runs):
    engine = GenerationEngine.from_settings(STOCK.replace(skip_idle_controlnet=True))
    assert isinstance(engine.pipeline.controlnet, ControlNetModel)
    assert type(engine.pipeline.controlnet) is IdleSkippingControlNet
    scales = count_controlnet_runs(monkeypatch)
    progress: list[tuple[int, int]] = []
    engine.generate(request(**changes), pose, progress=lambda *call: progress.append(call))
    assert len(scales) == expected_runs and all(scale != 0 for scale in scales)
    assert progress == [(step, 4) for step in range(1, 5)]  # every step still reports


def test_stock_runs_the_controlnet_on_every_step(pose, monkeypatch):
    engine = GenerationEngine.from_settings(STOCK)
    scales = count_controlnet_runs(monkeypatch)
    engine.generate(request(controlnet_scale=0.0), pose)
    assert scales == [0.0] * 4


def test_runtime_reports_device_dtype_and_levers(pose):
    engine = GenerationEngine.from_settings(Settings(preset="tiny"))
    result = engine.generate(request(), pose)
    assert result.runtime == {
        "device": "cpu",
        "dtype": "float32",
        "speed": "channels_last=True, fuse_qkv=True, skip_idle_controlnet=True",
        "previews": "TAESD",  # the tiny preset's stand-ins of the optional models
        "draft": "SDXL-Lightning 4-step LoRA (0.105 MB of merged weights in CPU memory)",
    }
    assert result.to_json()["runtime"] == result.runtime


@needs_sample_photo
def test_runtime_reports_the_pose_provider_once_dwpose_ran():
    estimator = PoseEstimator.from_settings(Settings(pose_models="tiny"))
    engine = GenerationEngine.from_settings(Settings(preset="tiny"), pose_estimator=estimator)
    result = engine.generate(request(samples=1), Photo(load_image(SAMPLE_PHOTO)))
    assert estimator.providers  # DWPose ran, so it reports its sessions' providers
    reported = result.runtime["pose_providers"].split(", ")
    known = {"CUDAExecutionProvider", "CPUExecutionProvider"}
    assert reported and all(item.rpartition(" ")[2] in known for item in reported)


def test_guidance_ending_at_zero_is_no_controlnet_at_all(pose, stock_images):
    """Diffusers refuses control_guidance_end=0; the API allows it and it means the ControlNet never acts."""
    ended_at_zero = decoded(STOCK, pose, control_guidance_end=0.0)
    assert torch.equal(ended_at_zero, stock_images["scale 0"])


def test_a_request_does_not_walk_the_models_to_find_their_device(pose, monkeypatch):
    """diffusers' `_execution_device` looks through every module of every model for offload hooks, twice a
    call; the engine asks once, when the models are placed, and gives each request the answer. (diffusers
    still asks each text encoder where it runs, a walk of that model alone.)"""
    import diffusers.hooks.group_offloading as group_offloading

    engine = GenerationEngine.from_settings(Settings(preset="tiny"))
    engine.load()
    walks = []
    original = group_offloading._get_group_onload_device
    monkeypatch.setattr(
        group_offloading, "_get_group_onload_device", lambda model: walks.append(model) or original(model)
    )
    assert len(engine.generate(request(samples=1), pose).images) == 1
    assert engine._request_pipeline(request())._execution_device == torch.device("cpu")
    shared = engine.pipeline
    assert [id(model) for model in walks] == [id(shared.text_encoder), id(shared.text_encoder_2)]
    walks.clear()
    assert shared._execution_device == torch.device("cpu")  # asked directly, diffusers walks the models
    assert id(shared.unet) in {id(model) for model in walks}
