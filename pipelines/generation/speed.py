"""Speed levers: how the loaded SDXL + ControlNet weights run, each behind one setting.

`LEVERS` is the one table: the benchmark's `--levers` walks it, `configure_pipeline` applies it, the README
documents it. Every lever is independent of the others; its `stock` value leaves diffusers' own behaviour.
Levers that cannot run on a CPU are skipped there with a warning, so the tiny preset runs every other one.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import ControlNetModel, StableDiffusionXLControlNetPipeline
from diffusers.models.attention_processor import Attention, FusedAttnProcessor2_0
from torch.nn.attention import SDPBackend, sdpa_kernel

from pipelines.errors import ValidationError
from pipelines.settings import ATTENTION_CHOICES, COMPILE_CHOICES, ENV_PREFIX, Settings

log = logging.getLogger(__name__)

# settings.attention -> the scaled_dot_product_attention kernel to force (None: let torch pick, as stock).
ATTENTION_BACKENDS: dict[str, SDPBackend | None] = dict(
    zip(
        ATTENTION_CHOICES,
        (
            None,
            SDPBackend.FLASH_ATTENTION,
            SDPBackend.EFFICIENT_ATTENTION,
            SDPBackend.CUDNN_ATTENTION,
            SDPBackend.MATH,
        ),
        strict=True,
    )
)
# settings.compile -> torch.compile mode of the repeated blocks ("reduce-overhead" = CUDA graphs).
COMPILE_MODES: dict[str, str | None] = {name: None if name == "off" else name for name in COMPILE_CHOICES}
CUDA_GRAPH_MODES = {"reduce-overhead", "max-autotune"}
# The UNet's transformer block: the unit both models repeat (the ControlNet does not declare it in 0.42).
REPEATED_BLOCKS = ["BasicTransformerBlock"]


class IdleSkippingControlNet(ControlNetModel):
    """A ControlNetModel whose forward does nothing when its effective scale is 0 (controlnet_scale 0, or a
    step outside control_guidance_start..end): the stock pipeline still runs the whole network and multiplies
    its residuals by 0. Returning no residuals makes the UNet skip the additions of zeros, so the result is
    the same; it stays a ControlNetModel for the pipeline's isinstance checks."""

    def forward(
        self,
        *args: Any,
        conditioning_scale: float = 1.0,
        guess_mode: bool = False,
        return_dict: bool = True,
        **kwargs: Any,
    ) -> Any:
        if conditioning_scale == 0 and not guess_mode and not return_dict:
            return None, None  # the UNet's "no ControlNet" path
        return super().forward(
            *args,
            conditioning_scale=conditioning_scale,
            guess_mode=guess_mode,
            return_dict=return_dict,
            **kwargs,
        )


def _channels_last(pipeline: StableDiffusionXLControlNetPipeline, value: bool) -> None:
    """NHWC convolutions: what tensor-core conv kernels want, saving layout transposes."""
    for model in (pipeline.unet, pipeline.controlnet, pipeline.vae):
        model.to(memory_format=torch.channels_last)


def _fuse_qkv(pipeline: StableDiffusionXLControlNetPipeline, value: bool) -> None:
    """One matmul for q, k and v (k and v in cross-attention) in all three models, as diffusers'
    `fuse_qkv_projections` does for the UNet and the VAE (the ControlNet's is a no-op in 0.42)."""
    for model in (pipeline.unet, pipeline.controlnet, pipeline.vae):
        attentions = [module for module in model.modules() if isinstance(module, Attention)]
        for attention in attentions:
            attention.fuse_projections(fuse=True)
            _share_fused_storage(attention)
        if attentions:
            model.set_attn_processor(FusedAttnProcessor2_0())


def _share_fused_storage(attention: Attention) -> None:
    """Make the separate projections views of the fused one, so fusing adds no memory (diffusers keeps both
    copies: about 1.2 GB more in fp16 for the SDXL UNet). state_dict and unfusing still work."""
    fused, parts = (
        (attention.to_kv, (attention.to_k, attention.to_v))
        if attention.is_cross_attention
        else (attention.to_qkv, (attention.to_q, attention.to_k, attention.to_v))
    )
    row = 0
    for linear in parts:
        rows = slice(row, row + linear.out_features)
        linear.weight = torch.nn.Parameter(fused.weight.data[rows], requires_grad=False)
        if linear.bias is not None:
            linear.bias = torch.nn.Parameter(fused.bias.data[rows], requires_grad=False)
        row += linear.out_features


def _skip_idle_controlnet(pipeline: StableDiffusionXLControlNetPipeline, value: bool) -> None:
    if type(pipeline.controlnet) is ControlNetModel:
        pipeline.controlnet.__class__ = IdleSkippingControlNet


def _sequential_guidance(pipeline: StableDiffusionXLControlNetPipeline, value: bool) -> None:
    """Classifier-free guidance as two half-batch calls of the UNet and the ControlNet (negative, then
    positive) instead of one doubled batch: half the peak activations, at the cost of launching every kernel
    twice. diffusers batches the halves inside its loop, so each model's forward is wrapped (per instance:
    the models are shared by every request's pipeline)."""
    for model in (pipeline.unet, pipeline.controlnet):
        model.forward = _in_two_halves(model.forward)


def _in_two_halves(forward: Callable[..., Any]) -> Callable[..., Any]:
    """`forward` run on each half of an even batch, the outputs joined again: every tensor argument with
    the batch's length is split, the rest (timestep, scales) passed as is. With guidance the halves are the
    negative and the positive; without it, an even number of samples is halved (the same result)."""

    @functools.wraps(forward)
    def halves(*args: Any, **kwargs: Any) -> Any:
        batch = (args[0] if args else kwargs["sample"]).shape[0]
        if batch % 2:
            return forward(*args, **kwargs)
        size = batch // 2
        parts = [
            forward(*_batch_slice(args, batch, start, size), **_batch_slice(kwargs, batch, start, size))
            for start in (0, size)
        ]
        return _joined(*parts)

    return halves


def _batch_slice(value: Any, batch: int, start: int, size: int) -> Any:
    if isinstance(value, torch.Tensor):
        return value[start : start + size] if value.ndim and value.shape[0] == batch else value
    if isinstance(value, dict):
        return {key: _batch_slice(item, batch, start, size) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_batch_slice(item, batch, start, size) for item in value)
    return value


def _joined(first: Any, second: Any) -> Any:
    if isinstance(first, torch.Tensor):
        return torch.cat([first, second])
    if isinstance(first, dict):  # also diffusers' BaseOutput, an OrderedDict
        return type(first)(**{key: _joined(first[key], second[key]) for key in first})
    if isinstance(first, (list, tuple)):
        return type(first)(_joined(a, b) for a, b in zip(first, second, strict=True))
    return first  # None: the skipped ControlNet's residuals


def _compile(pipeline: StableDiffusionXLControlNetPipeline, value: str) -> None:
    """Regional compilation: only the transformer blocks (70 in the UNet, 35 in the ControlNet, two distinct
    shapes), so compiling takes seconds per shape instead of minutes for the whole model."""
    controlnet = pipeline.controlnet
    if not getattr(controlnet, "_repeated_blocks", None):
        controlnet._repeated_blocks = REPEATED_BLOCKS
    for model in (pipeline.unet, controlnet):
        model.compile_repeated_blocks(fullgraph=True, mode=COMPILE_MODES[value])


@dataclass(frozen=True)
class Lever:
    name: str  # as the benchmark's --levers names it
    setting: str  # the Settings field (POSE_STUDIO_<SETTING>)
    does: str  # what it does, for the README and --help
    runs_on_cpu: bool  # False: skipped (with a warning) on a CPU
    stock: tuple[object, ...]  # values that leave diffusers' stock behaviour; the first is the baseline
    trials: tuple[object, ...]  # the values the benchmark tries, one at a time, against `stock`
    apply: (
        Callable[[StableDiffusionXLControlNetPipeline, Any], None] | None
    )  # None: used elsewhere (see does)


# In the order they are applied: layout and fusion before compilation, which traces the result.
LEVERS: tuple[Lever, ...] = (
    Lever(
        "bf16",
        "dtype",
        "bfloat16 instead of float16 weights/activations (no fp16 overflow); applied when loading",
        True,
        ("fp16", "auto", "fp32"),
        ("bf16",),
        None,
    ),
    Lever(
        "attention",
        "attention",
        "force one scaled_dot_product_attention kernel (flash, efficient, cudnn) instead of torch's pick",
        False,
        ("sdpa",),
        ("flash", "efficient", "cudnn"),
        None,
    ),
    Lever(
        "channels_last",
        "channels_last",
        "NHWC memory format for the UNet, ControlNet and VAE",
        True,
        (False,),
        (True,),
        _channels_last,
    ),
    Lever(
        "fuse_qkv",
        "fuse_qkv",
        "fused q/k/v projections in the UNet, ControlNet and VAE (no extra memory)",
        True,
        (False,),
        (True,),
        _fuse_qkv,
    ),
    Lever(
        "skip_idle_controlnet",
        "skip_idle_controlnet",
        "no ControlNet forward when its effective scale is 0 (scale 0, or outside the guidance start..end)",
        True,
        (False,),
        (True,),
        _skip_idle_controlnet,
    ),
    Lever(
        "sequential_guidance",
        "sequential_guidance",
        "classifier-free guidance as two half-batch calls of the UNet and ControlNet instead of one doubled "
        "batch (half the peak activations)",
        True,
        (False,),
        (True,),
        _sequential_guidance,
    ),
    Lever(
        "compile",
        "compile",
        "torch.compile of the repeated transformer blocks (regional, fullgraph) in the UNet and ControlNet; "
        "reduce-overhead adds CUDA graphs",
        False,
        ("off",),
        ("default", "max-autotune-no-cudagraphs", "reduce-overhead"),
        _compile,
    ),
)
CHOICES: dict[str, dict[str, object]] = {"attention": ATTENTION_BACKENDS, "compile": COMPILE_MODES}


def stock_settings(settings: Settings) -> Settings:
    """`settings` with every lever at a stock value (kept if it is one already, so dtype auto stays auto):
    what the benchmark's baseline runs."""
    stock = {
        lever.setting: value if (value := getattr(settings, lever.setting)) in lever.stock else lever.stock[0]
        for lever in LEVERS
    }
    return settings.replace(**stock, compile_warmup=False)


def check_settings(settings: Settings) -> None:
    """Raise ValidationError for a lever value that is not one of its choices."""
    for setting, choices in CHOICES.items():
        value = getattr(settings, setting)
        if value not in choices:
            raise ValidationError(
                f"{ENV_PREFIX}{setting.upper()} must be one of {', '.join(choices)} (got {value!r})"
            )


def apply_levers(
    pipeline: StableDiffusionXLControlNetPipeline, settings: Settings, device: torch.device
) -> list[str]:
    """Apply every lever set away from its stock value that this device can run; returns what runs
    (name=value), for the logs and each result's `runtime`."""
    check_settings(settings)
    active = []
    for lever in LEVERS:
        value = getattr(settings, lever.setting)
        if value in lever.stock:
            continue
        if not lever.runs_on_cpu and device.type != "cuda":
            log.warning(
                "%s%s=%s needs a CUDA GPU; ignored on %s", ENV_PREFIX, lever.setting.upper(), value, device
            )
            continue
        if lever.apply is not None:
            lever.apply(pipeline, value)
        active.append(f"{lever.name}={value}")
    return active


@contextmanager
def running(settings: Settings, device: torch.device) -> Iterator[None]:
    """Wrap every model call of a request: forces the chosen attention kernel (CUDA only)."""
    backend = ATTENTION_BACKENDS[settings.attention] if device.type == "cuda" else None
    with nullcontext() if backend is None else sdpa_kernel(backend):
        yield


def uses_cuda_graphs(settings: Settings, device: torch.device) -> bool:
    """Compiled CUDA graphs reuse their output buffers: each step must be marked as a new run."""
    return device.type == "cuda" and settings.compile in CUDA_GRAPH_MODES


def mark_step() -> None:
    torch.compiler.cudagraph_mark_step_begin()
