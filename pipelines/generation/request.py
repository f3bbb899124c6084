"""What a generation is asked and what it gives back: the request with its ranges, the pose inputs, the
result. No torch here: the page imports this module to build its controls before the models are needed."""

from __future__ import annotations

import dataclasses
import json
import numbers
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from PIL import Image

from pipelines.errors import ValidationError, shown
from pipelines.files import save_image, write_text
from pipelines.generation.metadata import png_text
from pipelines.generation.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from pipelines.pose.draw import DrawMode, parse_conditioning_mode
from pipelines.pose.keypoints import PoseResult

MAX_SEED = 999_999_999_999_999
CONDITIONING_FILE_NAME = "conditioning.png"  # beside the samples of every run and sweep
POSE_FILE_NAME = "pose.json"
SIZE_MULTIPLE = 8  # the VAE's downscale factor: latents must tile the image exactly


@dataclass(frozen=True)
class Bounds:
    low: float
    high: float
    integer: bool = False
    special: int | None = None  # one more allowed value outside the range (seed -1 = random)
    special_meaning: str = ""

    def allows(self, value: object) -> bool:
        kind = numbers.Integral if self.integer else numbers.Real
        if isinstance(value, bool) or not isinstance(value, kind):
            return False
        return value == self.special or self.low <= value <= self.high

    def describe(self) -> str:
        noun = "an integer" if self.integer else "a number"
        special = f"{self.special} ({self.special_meaning}) or " if self.special is not None else ""
        low, high = (f"{int(bound)}" if self.integer else f"{bound:g}" for bound in (self.low, self.high))
        return f"{special}{noun} between {low} and {high}"


# The ranges of the hosted SDXL-OpenPose APIs, except steps: from 1 so quick previews are possible.
REQUEST_BOUNDS: dict[str, Bounds] = {
    "samples": Bounds(1, 4, integer=True),
    "num_inference_steps": Bounds(1, 100, integer=True),
    "guidance_scale": Bounds(1, 25),
    "controlnet_scale": Bounds(0, 1),
    "seed": Bounds(0, MAX_SEED, integer=True, special=-1, special_meaning="random"),
    "width": Bounds(64, 2048, integer=True),
    "height": Bounds(64, 2048, integer=True),
    "control_guidance_start": Bounds(0, 1),
    "control_guidance_end": Bounds(0, 1),
}
# Request fields a draft replaces with its recipe's own (pipelines/generation/draft.py); a sweep over them
# in Draft mode means nothing.
DRAFT_FIXED_FIELDS = ("scheduler", "num_inference_steps", "guidance_scale")
OPTIONAL_FIELDS = ("width", "height")  # None: the SDXL bucket nearest the pose's aspect ratio
FLAG_FIELDS = ("thick_lines",)


@dataclass
class GenerationRequest:
    """What the user asked for; `validate()` is the only place that knows the ranges."""

    prompt: str
    negative_prompt: str = ""  # "" = none: SDXL then uses its zeroed negative embedding
    samples: int = 1
    scheduler: str = DEFAULT_SCHEDULER
    num_inference_steps: int = 30
    guidance_scale: float = 7.5
    controlnet_scale: float = 1.0
    seed: int = -1  # -1 draws one; sample k uses seed + k
    width: int | None = None  # None (both): the SDXL bucket nearest the pose's aspect ratio
    height: int | None = None
    control_guidance_start: float = 0.0  # the fraction of the steps after which the ControlNet starts
    control_guidance_end: float = 1.0  # ... and after which it stops; 0: no ControlNet guidance at all
    draw_mode: str = DrawMode.BODY_POSE.value  # what the conditioning draws: one of CONDITIONING_MODES
    thick_lines: bool = True
    draft: bool = False  # a quick few-step look (SDXL-Lightning LoRA; fixed steps, sampler and guidance)

    def validate(self) -> None:
        """Raise ValidationError naming the first bad field and its allowed values."""
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise ValidationError("prompt must not be empty")
        if not isinstance(self.negative_prompt, str):
            raise ValidationError("negative_prompt must be text")
        if self.scheduler not in SCHEDULERS:
            raise ValidationError(
                f"scheduler must be one of: {', '.join(SCHEDULERS)} (got {self.scheduler!r})"
            )
        for name, bounds in REQUEST_BOUNDS.items():
            _check_bounds(name, getattr(self, name), bounds)
        if (self.width is None) != (self.height is None):
            raise ValidationError(
                "width and height must be given together, or both left empty to use the SDXL size nearest "
                "the pose's aspect ratio"
            )
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None and value % SIZE_MULTIPLE:
                raise ValidationError(f"{name} must be a multiple of {SIZE_MULTIPLE} (got {value})")
        _check_guidance_window(self.control_guidance_start, self.control_guidance_end)
        parse_conditioning_mode(self.draw_mode)
        for name in FLAG_FIELDS:
            if not isinstance(getattr(self, name), bool):
                raise ValidationError(f"{name} must be true or false (got {shown(getattr(self, name))})")

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> GenerationRequest:
        """A validated request from loosely typed values (an API call, the page, a JSON file): the one
        boundary where their types are checked. JSON has a single number type, so a whole float such as
        30.0 is the integer 30 and an integer is a float where a float is asked; anything else keeps its
        type and `validate` refuses it with the field's rule: 2.5 for an integer, True for a number,
        "30" for anything numeric."""
        unknown = sorted(set(values) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ValidationError(f"unknown request parameter(s): {', '.join(unknown)}")
        if "prompt" not in values:
            raise ValidationError("prompt must not be empty")
        request = cls(**{name: _json_number(name, value) for name, value in values.items()})
        request.validate()
        return request


def _json_number(name: str, value: object) -> object:
    """A number in the form its field takes, when that loses nothing; any other value as it is."""
    bounds = REQUEST_BOUNDS.get(name)
    if bounds is None or isinstance(value, bool):
        return value
    if bounds.integer and isinstance(value, float) and value.is_integer():
        return int(value)
    if not bounds.integer and isinstance(value, int) and abs(value) <= MAX_SEED:
        return float(value)
    return value


def _check_bounds(name: str, value: object, bounds: Bounds) -> None:
    if value is None and name in OPTIONAL_FIELDS:
        return
    if not bounds.allows(value):
        raise ValidationError(f"{name} must be {bounds.describe()} (got {shown(value)})")


def _check_guidance_window(start: float, end: float) -> None:
    """Start and end together: the ControlNet guides from `start` to `end` (fractions of the steps), so start
    comes first; an end of 0 means no ControlNet guidance (as the hosted API has it), with no start."""
    if end == 0 and start != 0:
        raise ValidationError(
            f"control_guidance_start must be 0 when control_guidance_end is 0 (no ControlNet guidance) "
            f"(got start {start:g})"
        )
    if end != 0 and start >= end:
        raise ValidationError(
            f"control_guidance_start ({start:g}) must be below control_guidance_end ({end:g}): the "
            "ControlNet guides from the start to the end of that window"
        )


def request_from_parameters(parameters: Mapping[str, Any], **changes: Any) -> GenerationRequest:
    """The validated request that makes an image again from its saved parameters (GenerationResult's, a
    sweep cell's, result.json's), with `changes` on top: what "send to panel" puts back. A draft records its
    recipe's sampler, which is no scheduler of the panel's and which a draft does not use: it becomes the
    default one, so the request validates and runs as the same draft."""
    values = {**parameters, **changes}
    if values.get("draft") and values.get("scheduler") not in SCHEDULERS:
        values["scheduler"] = DEFAULT_SCHEDULER
    return GenerationRequest.from_values(values)


def resolve_seed(seed: int) -> int:
    """-1 draws a fresh seed (leaving room for seed + k of every sample); anything else is kept."""
    return secrets.randbelow(MAX_SEED + 1 - REQUEST_BOUNDS["samples"].high) if seed == -1 else seed


@dataclass(frozen=True)
class Photo:
    """A photo to run DWPose on first. (A bare array is taken as a ready skeleton image.)"""

    image: np.ndarray  # HxWx3 uint8 RGB


# A pose, its OpenPose JSON, a skeleton image used as is (letterboxed), or a photo to detect the pose in.
PoseInput: TypeAlias = PoseResult | dict | np.ndarray | Photo
ProgressCallback = Callable[[int, int], None]  # (step done, total steps)
PreviewCallback = Callable[[list[Image.Image], int, int], None]  # (one preview per sample, step, total)


@dataclass
class GenerationResult:
    images: list[Image.Image]
    seeds: list[int]  # sample k's own seed: re-run it with samples=1 to get the same image
    conditioning: Image.Image  # the exact ControlNet input, at the output size
    timings: dict[str, float]  # seconds: pose, denoise, decode, total
    parameters: dict[str, Any]  # the request with seed, width and height resolved
    models: dict[str, str] = field(default_factory=dict)  # preset and model ids, for the metadata
    runtime: dict[str, str] = field(default_factory=dict)  # device, dtype, speed levers, pose provider
    # The OpenPose JSON of the pose drawn, at the output size (drawing it gives the conditioning); None when
    # the pose was a skeleton image.
    pose: dict | None = None

    def sample_file_name(self, index: int) -> str:
        return f"sample-{index + 1}-seed-{self.seeds[index]}.png"

    def sample_request(self, index: int) -> GenerationRequest:
        """The request that makes sample `index` alone again: its own seed, one sample."""
        return request_from_parameters(self.parameters, seed=self.seeds[index], samples=1)

    def to_json(self) -> dict[str, Any]:
        return {
            "images": [self.sample_file_name(index) for index in range(len(self.images))],
            "conditioning": CONDITIONING_FILE_NAME,
            "pose": POSE_FILE_NAME if self.pose is not None else None,
            "seeds": self.seeds,
            "timings": self.timings,
            "parameters": self.parameters,
            "models": self.models,
            "runtime": self.runtime,
        }

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write the samples as PNGs carrying a "parameters" text chunk, the conditioning image, pose.json
        (when there is a pose) and result.json into `out_dir`, each atomically (pipelines.files); returns the
        sample paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for index, (image, seed) in enumerate(zip(self.images, self.seeds, strict=True)):
            path = out / self.sample_file_name(index)
            save_image(image, path, pnginfo=png_text(self.parameters, seed, self.models))
            paths.append(path)
        save_image(self.conditioning, out / CONDITIONING_FILE_NAME)
        if self.pose is not None:
            write_text(out / POSE_FILE_NAME, json.dumps(self.pose) + "\n")
        write_text(out / "result.json", json.dumps(self.to_json(), indent=2) + "\n")
        return paths
