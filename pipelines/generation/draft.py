"""Draft mode: a few-step distilled LoRA (SDXL-Lightning, 4 steps) merged into a copy of the weights it
changes, for a quick look at a pose, prompt and seed before the full-quality run (the same request with
`draft` off).

The LoRA is loaded once, through diffusers' own loader (peft). Its update is then merged into copies of the
layers it touches and peft's layers are removed, so both modes run the plain models: a draft step costs what
a full step costs (peft's per-layer wrappers and unfused attention made it slower), and full mode runs
exactly the weights it had before the LoRA came. `DraftWeights.swap` exchanges the two sets in place
(copies, so the fused q/k/v projections, whose parts are views of one tensor, follow). Requests switch
through `AdapterGate`: any number of requests of one mode run together, and a request of the other mode
waits for them to finish before swapping, so a full-quality request never runs with the draft's weights (or
a draft without them). Memory cost: one copy of the touched weights, beside them, or in CPU memory
(`draft_copy`; pinned on CUDA, and every switch then copies them over). Why SDXL-Lightning: see
benchmarks/README.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import StableDiffusionXLControlNetPipeline

from pipelines.errors import ModelError, ValidationError
from pipelines.generation.schedulers import SchedulerSpec
from pipelines.settings import ENV_PREFIX

ADAPTER = "draft"
DRAFT_COPY_CHOICES = ("auto", "device", "cpu")
# With draft_copy "auto", the copy stays on a GPU with at least this much memory. SDXL + ControlNet take about
# 9.4 GB in fp16 and 4 samples at 1024² several more; the copy adds about 4 GB, too much for a 24 GB card.
DRAFT_COPY_MIN_GPU_GIB = 40


@dataclass(frozen=True)
class DraftRecipe:
    """What the distillation was trained for; a draft request runs with exactly these."""

    name: str  # how results and messages name it
    scheduler_name: str  # the sampler as the metadata records it
    scheduler: SchedulerSpec
    num_inference_steps: int
    guidance_scale: float  # 1 = no classifier-free guidance (the model card's 0): one UNet batch, not two


# ByteDance/SDXL-Lightning's model card: the 4-step LoRA with Euler on "trailing" timesteps and no CFG.
DRAFT = DraftRecipe(
    name="SDXL-Lightning 4-step LoRA",
    scheduler_name="Euler trailing",
    scheduler=SchedulerSpec("EulerDiscreteScheduler", {"timestep_spacing": "trailing"}),
    num_inference_steps=4,
    guidance_scale=1.0,
)


def check_draft_copy(setting: str) -> None:
    if setting not in DRAFT_COPY_CHOICES:
        raise ValidationError(
            f"{ENV_PREFIX}DRAFT_COPY must be one of {', '.join(DRAFT_COPY_CHOICES)} (got {setting!r})"
        )


def copy_on_cpu(setting: str, device: torch.device) -> bool:
    """Whether the draft's copy goes to CPU memory: `draft_copy` as set, or on "auto" whenever the device is a
    GPU with less than DRAFT_COPY_MIN_GPU_GIB (on a CPU the two are the same memory)."""
    check_draft_copy(setting)
    if setting != "auto" or device.type != "cuda":
        return setting == "cpu"
    return torch.cuda.get_device_properties(device).total_memory < DRAFT_COPY_MIN_GPU_GIB * 2**30


def load_draft_lora(
    pipeline: StableDiffusionXLControlNetPipeline, folder: Path, weight_name: str, on_cpu: bool = False
) -> DraftWeights:
    """Load the LoRA file `folder/weight_name` through diffusers' loader, merge it into copies of the weights
    it changes and take peft's layers out again: the models are left as they were (full mode)."""
    if not (folder / weight_name).is_file():
        raise ModelError(
            f"The draft LoRA file {weight_name} is not in {folder}. Set {ENV_PREFIX}DRAFT_LORA_FILE to the "
            f"LoRA's file name, or {ENV_PREFIX}DRAFT_LORA to the folder or Hub repo holding it."
        )
    try:
        pipeline.load_lora_weights(str(folder), weight_name=weight_name, adapter_name=ADAPTER)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelError(f"The draft LoRA {folder / weight_name} could not be loaded ({error}).") from error
    try:
        return DraftWeights.merged(pipeline, folder / weight_name, on_cpu)
    finally:
        pipeline.unload_lora_weights()


class DraftWeights:
    """For each weight the LoRA changes: the model's parameter and the weights of the mode not in use."""

    def __init__(self, pairs: list[tuple[torch.nn.Parameter, torch.Tensor]], on_cpu: bool) -> None:
        self._pairs = pairs
        self.on_cpu = on_cpu  # where the weights of the mode not in use wait

    @classmethod
    @torch.no_grad()
    def merged(
        cls, pipeline: StableDiffusionXLControlNetPipeline, source: Path, on_cpu: bool
    ) -> DraftWeights:
        """The draft's weights, W + the LoRA's update (peft's own `get_delta_weight`, summed in float32), for
        every layer peft wrapped in the UNet and the text encoders; in CPU memory if `on_cpu`."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        pairs = []
        models = (pipeline.unet, pipeline.text_encoder, pipeline.text_encoder_2)
        for model in (model for model in models if model is not None):
            for module in model.modules():
                if not isinstance(module, BaseTunerLayer) or ADAPTER not in getattr(module, "lora_A", {}):
                    continue
                if module.use_dora.get(ADAPTER) or module.lora_bias.get(ADAPTER):
                    raise ModelError(
                        f"The draft LoRA {source} is a DoRA or trains biases; Draft mode takes a plain LoRA."
                    )
                weight = module.get_base_layer().weight
                delta = module.get_delta_weight(ADAPTER).to(device=weight.device, dtype=torch.float32)
                draft = (weight.float() + delta).to(weight.dtype)
                if on_cpu and weight.device.type != "cpu":
                    draft = draft.cpu().pin_memory() if weight.device.type == "cuda" else draft.cpu()
                pairs.append((weight, draft))
        if not pairs:
            raise ModelError(f"The draft LoRA {source} changes no layer of this model.")
        return cls(pairs, on_cpu or all(weight.device.type == "cpu" for weight, _ in pairs))

    @property
    def nbytes(self) -> int:
        """The memory the draft costs: its copy of the weights it changes."""
        return sum(other.numel() * other.element_size() for _, other in self._pairs)

    @torch.no_grad()
    def swap(self) -> None:
        """Put the other mode's weights into the models (bit for bit), keeping this mode's aside."""
        for parameter, other in self._pairs:
            current = parameter.detach().clone()
            parameter.copy_(other, non_blocking=True)
            other.copy_(current, non_blocking=True)
        if torch.cuda.is_available():
            torch.cuda.synchronize()  # the copies into pinned CPU memory are done before anyone reads them


class AdapterGate:
    """Requests of one mode (draft or full) run together; one of the other mode waits until they are done,
    then switches the shared weights. `switch(draft)` must put the models into that mode (it is only called
    with the mode they are not in)."""

    def __init__(self, switch: Callable[[bool], None]) -> None:
        self._switch = switch
        self._condition = threading.Condition()
        self._draft = False
        self._active = 0

    @contextmanager
    def mode(self, draft: bool) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: self._active == 0 or self._draft == draft)
            if self._draft != draft:
                self._switch(draft)
                self._draft = draft
            self._active += 1
        try:
            yield
        finally:
            with self._condition:
                self._active -= 1
                self._condition.notify_all()
