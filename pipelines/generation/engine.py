"""SDXL + ControlNet OpenPose generation in-process: request validation, lazy loading, per-request
schedulers and seeds, progress, previews, cancel, and the NaN/black/out-of-memory guards."""

from __future__ import annotations

import dataclasses
import gc
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import AutoencoderTiny, StableDiffusionXLControlNetPipeline
from PIL import Image

from pipelines.errors import (
    Cancelled,
    GenerationError,
    ModelError,
    ValidationError,
    out_of_memory_kind,
)
from pipelines.generation import speed
from pipelines.generation.draft import (
    DRAFT,
    AdapterGate,
    DraftWeights,
    check_draft_copy,
    copy_on_cpu,
    load_draft_lora,
)
from pipelines.generation.inputs import conditioning_for
from pipelines.generation.presets import (
    DRAFT_SOURCE,
    PREVIEW_SOURCE,
    ModelSource,
    Preset,
    get_preset,
    resolve_extra,
)
from pipelines.generation.previews import Previewer, TaesdPreviews, latent_previews
from pipelines.generation.request import (  # re-exported: callers import the request types from here too
    MAX_SEED,
    REQUEST_BOUNDS,
    GenerationRequest,
    GenerationResult,
    Photo,
    PoseInput,
    PreviewCallback,
    ProgressCallback,
    resolve_seed,
)
from pipelines.generation.schedulers import SCHEDULERS
from pipelines.pose import PoseEstimator, parse_conditioning_mode, to_openpose_json
from pipelines.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)
__all__ = [
    "MAX_SEED",
    "REQUEST_BOUNDS",
    "GenerationEngine",
    "GenerationRequest",
    "GenerationResult",
    "Photo",
    "PoseInput",
    "PreviewCallback",
    "ProgressCallback",
    "resolve_seed",
]

BLACK_LEVEL = 2 / 255  # a sample whose brightest pixel is below this is a failed (black) image
WARMUP_SIZE = 1024  # the default SDXL bucket: what a compiled engine warms up on at load
# Device kind -> dtype when POSE_STUDIO_DTYPE is auto; CPUs run fp16 convolutions slowly or not at all.
AUTO_DTYPE = {"cuda": "fp16", "mps": "fp16", "cpu": "fp32"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
# Optional model -> what the app does without it (the page shows this once, with the reason after it).
WITHOUT_EXTRA = {
    "preview_model": "Live previews show a rough colour map of the latents instead of TAESD pictures:",
    "draft_lora": "Draft mode is unavailable:",
}
# Kernels run asynchronously on accelerators: wait for them before reading a timer.
SYNCHRONIZE: dict[str, Callable[[], None]] = {"cuda": torch.cuda.synchronize, "mps": torch.mps.synchronize}


def resolve_device(setting: str) -> torch.device:
    if setting != "auto":
        return torch.device(setting)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(setting: str, device: torch.device) -> torch.dtype:
    name = AUTO_DTYPE.get(device.type, "fp32") if setting == "auto" else setting
    if name not in DTYPES:
        raise ValidationError(
            f"{ENV_PREFIX}DTYPE must be auto or one of {', '.join(DTYPES)} (got {setting!r})"
        )
    return DTYPES[name]


def configure_pipeline(
    pipeline: StableDiffusionXLControlNetPipeline, settings: Settings, device: torch.device
) -> StableDiffusionXLControlNetPipeline:
    """The one place that decides how the loaded weights run: placement or offload, VAE memory savers, and
    the speed levers of `speed.LEVERS` (after placement: compilation traces the placed models)."""
    if settings.cpu_offload and device.type == "cuda":
        pipeline.enable_model_cpu_offload(device=device)
    else:
        if settings.cpu_offload:
            log.warning("CPU offload only helps on a CUDA GPU; running on %s without it", device)
        pipeline.to(device)
    if settings.vae_slicing:
        pipeline.vae.enable_slicing()
    if settings.vae_tiling:
        pipeline.vae.enable_tiling()
    pipeline.set_progress_bar_config(disable=True)
    active = speed.apply_levers(pipeline, settings, device)
    log.info("Speed levers on %s: %s", device, ", ".join(active) or "none (stock diffusers)")
    pipeline.speed_levers = active  # read back by GenerationEngine.runtime
    return pipeline


class RequestPipeline(StableDiffusionXLControlNetPipeline):
    """The pipeline object of one request, told where its models run. diffusers' `_execution_device` walks
    every module of every model, twice per call, looking for offload hooks (14 ms of a 90 ms draft on the
    tiny models; SDXL has far more modules); the answer cannot change after the models are placed, so the
    engine asks once at load and hands it to each request."""

    placed_on: torch.device

    @property
    def _execution_device(self) -> torch.device:
        return self.placed_on


class GenerationEngine:
    """Holds the weights (loaded once, on first use) and turns requests into images. Thread-safe:
    every request gets its own pipeline object and scheduler around the shared weights."""

    def __init__(
        self, settings: Settings, pose_estimator: PoseEstimator | None = None, preset: Preset | None = None
    ) -> None:
        """`preset` overrides the table entry named by settings.preset (the benchmark's random full-size
        SDXL uses this); settings.preset then only labels the results."""
        self.settings = settings
        self.preset = preset or get_preset(settings.preset)
        self.device = resolve_device(settings.device)
        self.dtype = resolve_dtype(settings.dtype, self.device)
        speed.check_settings(settings)
        check_draft_copy(settings.draft_copy)
        self._pose_estimator = pose_estimator
        self._pose_providers: dict[str, list[str]] = {}  # model file -> onnxruntime's, once DWPose has run
        self._pipeline: StableDiffusionXLControlNetPipeline | None = None
        self._execution_device = self.device  # where the pipeline runs its models, once they are loaded
        self._previewer: Previewer = latent_previews  # TAESD once it loads
        self._draft_weights: DraftWeights | None = None  # set once the draft LoRA loads
        self._draft_gate: AdapterGate | None = None
        # Optional model setting -> why it is not in use, for the page to show once (and the logs).
        self.notices: dict[str, str] = {}
        self._load_lock = threading.Lock()
        self._vae_lock = threading.Lock()  # decoding may upcast the shared VAE
        # Fast tokenizers switch padding modes in place and fail ("Already borrowed") when shared by threads.
        self._text_lock = threading.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, pose_estimator: PoseEstimator | None = None
    ) -> GenerationEngine:
        return cls(settings, pose_estimator)

    @property
    def is_loaded(self) -> bool:
        return self._pipeline is not None

    @property
    def is_stand_in(self) -> bool:
        return self.preset.is_stand_in

    @property
    def models(self) -> dict[str, str]:
        """The preset and the model ids (or folders) it loads."""
        sources = {source.setting: getattr(self.settings, source.setting) for source in self.preset.sources}
        return {"preset": self.settings.preset, **sources}

    @property
    def runtime(self) -> dict[str, str]:
        """Where and how requests run: device, dtype, the active speed levers and, once DWPose has run, the
        onnxruntime providers it uses (CUDAExecutionProvider first when it runs on the GPU)."""
        runtime = {"device": str(self.device), "dtype": str(self.dtype).removeprefix("torch.")}
        if self._pipeline is not None:
            runtime["speed"] = ", ".join(getattr(self._pipeline, "speed_levers", [])) or "stock"
            runtime["previews"] = "colour map" if self._previewer is latent_previews else "TAESD"
            if self._draft_weights is not None:
                weights = self._draft_weights
                place = "in CPU memory" if weights.on_cpu else "beside the model"
                runtime["draft"] = f"{DRAFT.name} ({weights.nbytes / 2**20:.3g} MB of merged weights {place})"
        if self._pose_providers:
            runtime["pose_providers"] = _providers_text(self._pose_providers)
        return runtime

    @property
    def pipeline(self) -> StableDiffusionXLControlNetPipeline:
        """The shared, loaded pipeline (loads it on first use)."""
        self.load()
        assert self._pipeline is not None
        return self._pipeline

    def load(self) -> None:
        """Load the weights once per engine; concurrent callers wait for the first one."""
        if self._pipeline is not None:
            return
        with self._load_lock:
            if self._pipeline is not None:
                return
            if self.device.type == "cpu" and not self.preset.is_stand_in:
                log.warning(
                    "No GPU: running SDXL on the CPU in float32. It works, but takes minutes per image."
                )
            started = time.perf_counter()
            pipeline = configure_pipeline(
                self.preset.build(self.preset, self.settings, self.dtype), self.settings, self.device
            )
            self._load_extras(pipeline)
            self._execution_device = pipeline._execution_device  # placed (or offloaded) for good now
            self._pipeline = pipeline
            if self.settings.compile != "off" and self.settings.compile_warmup:
                self._warm_up()
            log.info(
                "Loaded the %s preset on %s (%s) in %.1f s",
                self.settings.preset,
                self.device,
                self.dtype,
                time.perf_counter() - started,
            )

    def _load_extras(self, pipeline: StableDiffusionXLControlNetPipeline) -> None:
        """The optional models: each one that is off or fails to load leaves a notice, not an error."""
        loaders: dict[ModelSource, Callable[[StableDiffusionXLControlNetPipeline, Path], None]] = {
            PREVIEW_SOURCE: self._load_previewer,
            DRAFT_SOURCE: self._load_draft,
        }
        for source, load in loaders.items():
            try:
                folder = resolve_extra(self.preset, source, self.settings)
                if folder is None:
                    raise ModelError(f"{ENV_PREFIX}{source.setting.upper()} is empty (turned off).")
                load(pipeline, folder)
            except ModelError as error:
                self.notices[source.setting] = f"{WITHOUT_EXTRA[source.setting]} {error}"
                log.warning("%s", self.notices[source.setting])

    def _load_previewer(self, pipeline: StableDiffusionXLControlNetPipeline, folder: Path) -> None:
        try:
            decoder = AutoencoderTiny.from_pretrained(folder, dtype=self.dtype)
        except (OSError, ValueError) as error:
            raise ModelError(f"the decoder in {folder} could not be loaded ({error}).") from error
        self._previewer = TaesdPreviews(decoder.to(self.device).eval(), self.settings.preview_size)

    def _load_draft(self, pipeline: StableDiffusionXLControlNetPipeline, folder: Path) -> None:
        on_cpu = copy_on_cpu(self.settings.draft_copy, self.device)
        weights = load_draft_lora(pipeline, folder, self.settings.draft_lora_file, on_cpu)
        self._draft_weights = weights
        self._draft_gate = AdapterGate(lambda draft: weights.swap())

    def _mode(self, request: GenerationRequest) -> AbstractContextManager[None]:
        """Hold the shared UNet in this request's mode (draft weights in or out) while it denoises."""
        if request.draft and self._draft_gate is None:
            raise ModelError(self.notices.get("draft_lora", "Draft mode is unavailable."))
        return nullcontext() if self._draft_gate is None else self._draft_gate.mode(request.draft)

    def _warm_up(self) -> None:
        """Compile for the default bucket now (1 sample, 2 steps), not on the first user's request. Requests
        of other sizes or sample counts compile once more when they first come."""
        skeleton = np.zeros((WARMUP_SIZE, WARMUP_SIZE, 3), np.uint8)
        skeleton[WARMUP_SIZE // 4 : -WARMUP_SIZE // 4, WARMUP_SIZE // 2] = 255
        started = time.perf_counter()
        self.generate(GenerationRequest(prompt="warm-up", num_inference_steps=2, seed=0), skeleton)
        log.info("Compiled for %d² in %.1f s", WARMUP_SIZE, time.perf_counter() - started)

    def generate(
        self,
        request: GenerationRequest,
        pose: PoseInput,
        progress: ProgressCallback | None = None,
        preview: PreviewCallback | None = None,
        cancel: threading.Event | None = None,
    ) -> GenerationResult:
        """Generate `request.samples` images following `pose`. Raises ValidationError, NoPersonError,
        Cancelled, GenerationError or ModelError."""
        started = time.perf_counter()
        request.validate()
        pose, pose_seconds = self._detect_if_photo(pose)
        drawn = conditioning_for(request, pose)
        conditioning = drawn.image
        height, width = conditioning.shape[:2]
        seed = resolve_seed(request.seed)
        mode = parse_conditioning_mode(request.draw_mode).value  # its plain name, for the metadata
        resolved = dataclasses.replace(request, seed=seed, width=width, height=height, draw_mode=mode)
        if request.draft:  # the distillation's own steps and guidance
            resolved = dataclasses.replace(
                resolved, num_inference_steps=DRAFT.num_inference_steps, guidance_scale=DRAFT.guidance_scale
            )
        seeds = [seed + index for index in range(request.samples)]
        _raise_if_cancelled(cancel, "before it started")

        out_of_memory = None
        try:
            pipeline = self._request_pipeline(request)
            with self._mode(request):
                latents, denoise_seconds = self._timed(
                    self._denoise, pipeline, resolved, conditioning, seeds, progress, preview, cancel
                )
            decoded, decode_seconds = self._timed(self._decode, pipeline, latents)
        except Exception as error:  # every form of out of memory (errors.OUT_OF_MEMORY_FORMS); others go on
            out_of_memory = out_of_memory_kind(error)
            if out_of_memory is None:
                raise
        if out_of_memory is not None:  # outside `except`, so the traceback's tensors are already freed
            self._free_memory()
            raise GenerationError(out_of_memory_message(out_of_memory, request.samples, width, height))
        _raise_if_degenerate(decoded, seeds)
        images = pipeline.image_processor.postprocess(decoded, output_type="pil")
        return GenerationResult(
            images=images,
            seeds=seeds,
            conditioning=Image.fromarray(conditioning),
            timings={
                "pose": pose_seconds,
                "denoise": denoise_seconds,
                "decode": decode_seconds,
                "total": time.perf_counter() - started,
            },
            parameters=_parameters(resolved),
            models=self.models,
            runtime=self.runtime,
            pose=None if drawn.pose is None else to_openpose_json(drawn.pose),
        )

    def _detect_if_photo(self, pose: PoseInput) -> tuple[PoseInput, float]:
        if not isinstance(pose, Photo):
            return pose, 0.0
        started = time.perf_counter()
        estimator = self._estimator()
        detected = estimator.detect(pose.image)
        self._pose_providers = estimator.providers
        return detected, time.perf_counter() - started

    def _estimator(self) -> PoseEstimator:
        if self._pose_estimator is None:
            self._pose_estimator = PoseEstimator.from_settings(self.settings)
        return self._pose_estimator

    def _request_pipeline(self, request: GenerationRequest) -> StableDiffusionXLControlNetPipeline:
        """A pipeline object of this request alone: the shared weights, its own scheduler (the draft's in
        Draft mode) and call state.
        (Built directly rather than with `from_pipe`, which in diffusers 0.42 re-casts every shared model,
        to float32 unless told otherwise, and logs a warning per model per request.)"""
        shared = self.pipeline
        spec = DRAFT.scheduler if request.draft else SCHEDULERS[request.scheduler]
        pipeline = RequestPipeline(
            **{**shared.components, "scheduler": spec.build(shared.scheduler.config)}, add_watermarker=False
        )
        pipeline.placed_on = self._execution_device
        pipeline.set_progress_bar_config(disable=True)
        return pipeline

    def _timed(self, step: Callable[..., Any], *args: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        value = step(*args)
        SYNCHRONIZE.get(self.device.type, lambda: None)()
        return value, time.perf_counter() - started

    def _denoise(
        self,
        pipeline: StableDiffusionXLControlNetPipeline,
        request: GenerationRequest,
        conditioning: np.ndarray,
        seeds: list[int],
        progress: ProgressCallback | None,
        preview: PreviewCallback | None,
        cancel: threading.Event | None,
    ) -> torch.Tensor:
        """Run the sampler to the final latents (no decode). Seeds drive CPU generators, one per sample, so
        a sample's image is the same alone or in a batch, and on any GPU."""
        preview_every = max(1, self.settings.preview_every)
        cuda_graphs = speed.uses_cuda_graphs(self.settings, self.device)

        def on_step_end(
            pipe: StableDiffusionXLControlNetPipeline, index: int, timestep: Any, tensors: dict[str, Any]
        ) -> dict[str, Any]:
            step, total = index + 1, pipe.num_timesteps
            if progress is not None:
                progress(step, total)
            if preview is not None and step % preview_every == 0 and step < total:
                preview(self._previewer(tensors["latents"]), step, total)
            _raise_if_cancelled(cancel, f"at step {step} of {total}")
            if cuda_graphs:
                speed.mark_step()
            return tensors

        with self._text_lock, torch.no_grad():
            embeds, negative_embeds, pooled, negative_pooled = pipeline.encode_prompt(
                prompt=request.prompt,
                device=pipeline._execution_device,
                num_images_per_prompt=1,  # the pipeline repeats the embeddings per sample
                do_classifier_free_guidance=request.guidance_scale > 1,
                negative_prompt=request.negative_prompt or None,
            )
        if cuda_graphs:
            speed.mark_step()
        with speed.running(self.settings, self.device):
            output = pipeline(
                prompt_embeds=embeds,
                negative_prompt_embeds=negative_embeds,
                pooled_prompt_embeds=pooled,
                negative_pooled_prompt_embeds=negative_pooled,
                image=Image.fromarray(conditioning),
                width=request.width,
                height=request.height,
                num_inference_steps=request.num_inference_steps,
                guidance_scale=request.guidance_scale,
                **_controlnet_schedule(request),
                num_images_per_prompt=request.samples,
                generator=[torch.Generator("cpu").manual_seed(seed) for seed in seeds],
                output_type="latent",
                callback_on_step_end=on_step_end,
            )
        return output.images

    @torch.no_grad()
    def _decode(self, pipeline: StableDiffusionXLControlNetPipeline, latents: torch.Tensor) -> torch.Tensor:
        """Latents -> images in [-1, 1], as the pipeline would decode them, upcasting a VAE that overflows
        in fp16 (the stock SDXL VAE; the fp16-fix VAE does not need it)."""
        vae = pipeline.vae
        needs_upcast = vae.dtype == torch.float16 and vae.config.force_upcast
        with self._vae_lock:
            if needs_upcast:
                vae.to(dtype=torch.float32)
            try:
                latents = latents.to(vae.dtype)
                if vae.config.get("latents_mean") is not None and vae.config.get("latents_std") is not None:
                    mean = torch.tensor(vae.config.latents_mean).view(1, 4, 1, 1).to(latents)
                    std = torch.tensor(vae.config.latents_std).view(1, 4, 1, 1).to(latents)
                    latents = latents * std / vae.config.scaling_factor + mean
                else:
                    latents = latents / vae.config.scaling_factor
                with speed.running(self.settings, self.device):
                    return vae.decode(latents, return_dict=False)[0]
            finally:
                if needs_upcast:
                    vae.to(dtype=torch.float16)

    def _free_memory(self) -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def out_of_memory_message(kind: str, samples: int, width: int, height: int) -> str:
    """The advice for every form of out of memory (`kind`: which memory, from errors.out_of_memory_kind)."""
    return (
        f"Out of {kind} memory generating {samples} x {width}x{height}. Try fewer samples or a smaller "
        f"size, or set {ENV_PREFIX}CPU_OFFLOAD=1 or {ENV_PREFIX}VAE_TILING=1."
    )


def _providers_text(providers: dict[str, list[str]]) -> str:
    """The onnxruntime provider each DWPose model runs on (the first of its session's list)."""
    return ", ".join(f"{name}: {used[0]}" for name, used in providers.items())


def _parameters(resolved: GenerationRequest) -> dict[str, Any]:
    """The request as it ran: a draft records the sampler it used, not the one the panel had."""
    parameters = dataclasses.asdict(resolved)
    if resolved.draft:
        parameters["scheduler"] = DRAFT.scheduler_name
    return parameters


def _controlnet_schedule(request: GenerationRequest) -> dict[str, float]:
    """The ControlNet's scale, start and end as diffusers takes them. Diffusers refuses an end of 0 (it must
    come after the start), yet the hosted API allows it: guidance ending before the first step is none."""
    if request.control_guidance_end == 0:
        return {
            "controlnet_conditioning_scale": 0.0,
            "control_guidance_start": 0.0,
            "control_guidance_end": 1.0,
        }
    return {
        "controlnet_conditioning_scale": request.controlnet_scale,
        "control_guidance_start": request.control_guidance_start,
        "control_guidance_end": request.control_guidance_end,
    }


def _raise_if_cancelled(cancel: threading.Event | None, when: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"Generation cancelled {when}; nothing was decoded.")


def _raise_if_degenerate(decoded: torch.Tensor, seeds: list[int]) -> None:
    """NaN or all-black output is a failed run (typically fp16 overflow), never an image to show."""
    values = decoded.detach().float()
    for sample, seed in zip(values, seeds, strict=True):
        if torch.isnan(sample).any():
            raise GenerationError(
                f"The model produced NaN values (seed {seed}). This usually means fp16 overflow: use the "
                f"fp16-fix VAE or set {ENV_PREFIX}DTYPE=bf16 or fp32."
            )
        if (sample.max().item() + 1) / 2 < BLACK_LEVEL:
            raise GenerationError(
                f"The model produced an all-black image (seed {seed}). Try another seed or scheduler, or set "
                f"{ENV_PREFIX}DTYPE=bf16 or fp32."
            )
