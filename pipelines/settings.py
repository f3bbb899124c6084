"""Defaults and limits in one place. Every value can be set by an environment variable POSE_STUDIO_<NAME>;
the CLIs and app.py override them with flags through `Settings.replace`."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path

ENV_PREFIX = "POSE_STUDIO_"
# The values the speed-lever settings take (pipelines/generation/speed.py maps them to torch's kernels and
# compile modes); here so the command lines can offer them without importing torch.
ATTENTION_CHOICES = ("sdpa", "flash", "efficient", "cudnn", "math")
COMPILE_CHOICES = ("off", "default", "reduce-overhead", "max-autotune-no-cudagraphs", "max-autotune")

# Fixed caps of the pose JSON format (no setting: no real file comes near them). OpenPose JSON is at most 4
# levels deep; a keypoint number beyond MAX_KEYPOINT_VALUE is garbage, not a far-away point.
MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 32
MAX_KEYPOINT_VALUE = 1e9


def _default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pose-studio"


@dataclass(frozen=True)
class Settings:
    """Process-wide configuration. Field names map to env vars: `max_pixels` ← POSE_STUDIO_MAX_PIXELS."""

    # Pose engine (DWPose on onnxruntime)
    dwpose_repo: str = "yzd-v/DWPose"
    dwpose_dir: str = ""  # local folder with yolox_l.onnx and dw-ll_ucoco_384.onnx; empty = Hugging Face Hub
    pose_models: str = "dwpose"  # "dwpose" (real weights) or "tiny" (generated stand-in, no download)
    pose_device: str = "auto"  # auto | cpu | cuda

    # Generation engine (SDXL + ControlNet OpenPose in diffusers)
    preset: str = "sdxl"  # sdxl | tiny
    base_model: str = "stabilityai/stable-diffusion-xl-base-1.0"
    controlnet_model: str = "xinsir/controlnet-openpose-sdxl-1.0"
    vae_model: str = "madebyollin/sdxl-vae-fp16-fix"
    device: str = "auto"  # auto | cpu | cuda | mps
    dtype: str = "auto"  # auto | fp16 | bf16 | fp32
    cpu_offload: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    preview_every: int = 5  # a live preview every this many scheduler steps
    preview_model: str = "madebyollin/taesdxl"  # TAESD decoder of the live previews; "" = the colour map
    preview_size: int = 512  # longest side of a live preview, in pixels (the gallery's display size)
    draft_lora: str = "ByteDance/SDXL-Lightning"  # few-step LoRA of Draft mode: Hub id or folder; "" = none
    draft_lora_file: str = "sdxl_lightning_4step_lora.safetensors"  # the weight file in draft_lora
    # Where the draft keeps the weights of the mode not in use (a copy of every layer the LoRA changes: up to
    # about 4 GB in fp16 for a LoRA on every linear layer of the SDXL UNet): device (fast switches) | cpu (no
    # GPU memory; a switch copies them over) | auto (the GPU when it has at least DRAFT_COPY_MIN_GPU_GIB).
    draft_copy: str = "auto"
    # Speed levers (pipelines/generation/speed.py, LEVERS): numerically safe ones on, compilation off.
    attention: str = "sdpa"  # sdpa (torch picks) | flash | efficient | cudnn | math (CUDA only)
    channels_last: bool = True
    fuse_qkv: bool = True
    skip_idle_controlnet: bool = True  # no ControlNet forward at effective scale 0
    sequential_guidance: bool = False  # negative and positive as two half-batch calls (less memory)
    compile: str = "off"  # off | default | reduce-overhead (CUDA graphs) | max-autotune-no-cudagraphs | ...
    compile_warmup: bool = True  # with compile on: compile the default 1024² bucket when the models load

    # Limits
    max_pixels: int = 40_000_000  # decoded image size cap, checked from the header; also a pose JSON canvas's
    max_upload_mb: int = 25
    max_pose_json_mb: int = 5  # a pose JSON file; 100 people pretty-printed take under 1 MB
    max_pose_people: int = 100  # people in one pose JSON (each is drawn and held on the GPU slot)
    display_max_side: int = 2048  # previews and pose drawings without an explicit size fit inside this
    max_samples: int = 4
    sweep_max_cells: int = 16
    pose_cache_mb: int = 1024  # the app's cache of prepared uploads, bounded by their size in memory

    # Serving
    host: str = "127.0.0.1"
    port: int = 7860
    concurrency_limit: int = 1
    max_queue_size: int = 16
    mcp_server: bool = True  # Gradio's MCP server at /gradio_api/mcp/ (tools dwpose, generate, sweep)
    # The hosted APIs' HTTP shapes (ui/hosted_api.py)
    api_key: str = ""  # when set, the hosted routes need it (x-api-key, or Authorization: Key ...)
    fetch_urls: bool = False  # fetch http(s) image URLs given to them (data: URLs always work)
    fetch_allow_loopback: bool = False  # also 127.0.0.1 / ::1 (tests); private addresses never
    fetch_timeout_s: int = 10

    cache_dir: str = str(_default_cache_dir())

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read POSE_STUDIO_* variables; a malformed value raises ValueError naming the variable."""
        environ = os.environ if environ is None else environ
        values = {}
        for field in fields(cls):
            raw = environ.get(ENV_PREFIX + field.name.upper())
            if raw is None:
                continue
            values[field.name] = _parse(field.name, field.type, raw)
        return cls(**values)

    def replace(self, **changes: object) -> Settings:
        """A copy with the non-None changes applied (CLI flags left unset keep the env/default value)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def _parse(name: str, type_name: object, raw: str) -> object:
    kind = str(type_name)
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(raw)
        return raw
    except ValueError:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from None


# What each preset implies beyond its name: the tiny preset also uses the tiny stand-in pose models. The app
# and both CLIs apply it after the environment and before their flags.
PRESET_SETTINGS: dict[str, dict[str, str]] = {
    "sdxl": {"preset": "sdxl"},
    "tiny": {"preset": "tiny", "pose_models": "tiny"},
}


def with_preset(settings: Settings, preset: str | None) -> Settings:
    """`settings` with `preset` (or its own preset) and everything that preset implies."""
    return settings.replace(**PRESET_SETTINGS[preset or settings.preset])
