"""Hugging Face ZeroGPU: the `spaces` import, the GPU functions' wrapper and durations, and the start-up.

On ZeroGPU the Space's main process has no GPU. `spaces` patches `torch.cuda` when it is imported (so it must
come before torch: app.py imports this module first) and packs every tensor placed on "cuda" when the app
launches. A function wrapped in `spaces.GPU` runs in a worker process forked from the main one, with a GPU
attached for at most its `duration`; its arguments, return values and yields travel pickled between the two.
So here:

- only the denoising is a GPU function (`PoseStudio.generation_events`, `SweepHandlers.sweep_events`); pose
  detection (CPU onnxruntime), drawing, the pose cache, cancel flags and saving run in the main process;
- a GPU function takes plain inputs (pose, request or plan) and yields plain events, and nothing it writes in
  its own process is read back;
- closing the wrapper's generator (Gradio's `cancels=`, or the main process seeing its cancel flag) makes
  ZeroGPU close the function's generator in the worker, which stops the engine at its next step;
- the engines load at start-up in the main process, on "cuda", so ZeroGPU packs the weights once.

Nothing in this module imports torch at import time.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import math
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.generation import GenerationRequest
    from pipelines.generation.sweep import SweepPlan
    from pipelines.settings import Settings
    from ui.studio import PoseStudio

log = logging.getLogger(__name__)

ZEROGPU_ENV = "SPACES_ZERO_GPU"  # set by Hugging Face on ZeroGPU hardware; `spaces` reads it too
# Imported before torch (see the module's docstring); None where the package is not installed.
spaces = importlib.import_module("spaces") if importlib.util.find_spec("spaces") else None

# The settings ZeroGPU implies where they are left on "auto": the engine is placed on "cuda" (ZeroGPU packs
# it and moves it onto the worker's GPU), while DWPose stays on CPU onnxruntime in the main process, which
# has no GPU and spends no one's GPU quota.
# The draft's copy of the weights stays on the GPU: ZeroGPU's slices are large, and its main process cannot
# ask the GPU how large.
ZEROGPU_SETTINGS = {"device": "cuda", "pose_device": "cpu", "draft_copy": "device"}

MEGAPIXEL = 1024 * 1024  # an SDXL bucket, the size used when a request leaves it to the pose


def on_zerogpu() -> bool:
    """True on a ZeroGPU Space: `spaces` is installed and the platform says the hardware is ZeroGPU."""
    return spaces is not None and os.environ.get(ZEROGPU_ENV, "").lower() in {"1", "t", "true"}


def zerogpu_settings(settings: Settings) -> Settings:
    """`settings` with what ZeroGPU implies in place of "auto" (explicit choices are kept)."""
    return settings.replace(
        **{name: value for name, value in ZEROGPU_SETTINGS.items() if getattr(settings, name) == "auto"}
    )


def load_at_start_up(studio: PoseStudio) -> None:
    """Load both engines now, in the main process, before the app launches: ZeroGPU packs what is on "cuda"
    at launch, and every GPU worker then starts from those weights instead of loading its own."""
    engine = studio.generation_engine
    engine.load()
    studio.pose_estimator.models  # noqa: B018  (opens the ONNX sessions on the CPU now)
    # Ahead-of-time compilation goes here (the speed work): `spaces.aoti_capture` one call of the pipeline's
    # UNet inside a `spaces.GPU` function, `spaces.aoti_compile` the exported graph, `spaces.aoti_apply` it
    # to `engine.pipeline.unet`, all before launch. torch.compile does not carry over to ZeroGPU's workers.
    log.info(
        "ZeroGPU: loaded at start-up: generation on %s (%s), pose on %s",
        engine.device,
        engine.runtime["dtype"],
        ", ".join(sorted({used[0] for used in studio.pose_estimator.providers.values()})),
    )


# How long a GPU function may hold the GPU, in seconds: a fixed part (the worker's start, moving the packed
# weights onto its GPU, prompt encoding, decoding) plus the denoising, which grows with samples × steps ×
# megapixels. Planning figures, not measurements (no ZeroGPU or GPU could be reached): about 4× the compute
# floor of SDXL + ControlNet with guidance (19.6 TFLOP per sample-step at 1024²) on half an H200, so a run
# is not cut off. ZeroGPU gives shorter requests priority and refuses ones above its (undocumented) maximum,
# hence the cap; a request over it runs with the cap and may be stopped when the time is up.
START_SECONDS = 15
SECONDS_PER_MEGAPIXEL_STEP = 0.25
MAX_SECONDS = 120


def _denoise_seconds(request: GenerationRequest, samples: int) -> float:
    pixels = MEGAPIXEL if request.width is None or request.height is None else request.width * request.height
    return samples * request.num_inference_steps * pixels / MEGAPIXEL * SECONDS_PER_MEGAPIXEL_STEP


def _capped(seconds: float) -> int:
    return min(MAX_SECONDS, math.ceil(START_SECONDS + seconds))


def generation_seconds(request: GenerationRequest) -> int:
    """The GPU time to ask for one generation: samples × steps × pixels."""
    return _capped(_denoise_seconds(request, request.samples))


def sweep_seconds(plan: SweepPlan) -> int:
    """The GPU time to ask for a sweep: every batch of cells (each cell one image, its own steps and size)."""
    return _capped(sum(_denoise_seconds(plan.cells[batch[0]].request, len(batch)) for batch in plan.batches))


def gpu_task(
    events: Callable[..., Iterator[Any]], duration: Callable[..., int]
) -> Callable[..., Iterator[Any]]:
    """`events` (a generator function) as a ZeroGPU GPU function asking for `duration(*its arguments)`
    seconds; elsewhere `events` itself, run in the calling process."""
    if not on_zerogpu():
        return events

    @functools.wraps(events)
    def in_gpu_worker(*args: Any, **kwargs: Any) -> Iterator[Any]:
        import torch  # already loaded: the worker is a fork of the main process

        # The worker is forked from a process whose OpenMP thread pool is running, and a fork does not carry
        # that pool over: CPU torch work with more than one thread would wait for it forever (tests/
        # test_zerogpu.py shows it). The GPU does the work here; the CPU only prepares and hands over.
        torch.set_num_threads(1)
        yield from events(*args, **kwargs)

    return spaces.GPU(duration=duration)(in_gpu_worker)
