"""Draft mode: a few-step distilled LoRA (SDXL-Lightning, 4 steps) on the shared UNet, for a quick look at a
pose, prompt and seed before the full-quality run (the same request with `draft` off).

The LoRA is loaded once, through diffusers' own loader (peft), as a named adapter that is off by default.
Requests switch it on or off through `AdapterGate`: any number of requests of one mode run together, and a
request of the other mode waits for them to finish before switching, so a full-quality request never runs
with the adapter on (or a draft with it off). It costs no second copy of the UNet, only the LoRA's weights;
the price is that a draft waits for a running full-quality request (GPU jobs run one at a time by default,
so nothing waits that would not have waited anyway). Why SDXL-Lightning: see benchmarks/README.md.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from diffusers import StableDiffusionXLControlNetPipeline
from diffusers.models.attention_processor import AttnProcessor2_0

from pipelines.errors import ModelError
from pipelines.generation.schedulers import SchedulerSpec
from pipelines.settings import ENV_PREFIX

ADAPTER = "draft"


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


def load_draft_lora(pipeline: StableDiffusionXLControlNetPipeline, folder: Path, weight_name: str) -> int:
    """Load the LoRA file `folder/weight_name` as the (disabled) draft adapter; returns its size in bytes."""
    if not (folder / weight_name).is_file():
        raise ModelError(
            f"The draft LoRA file {weight_name} is not in {folder}. Set {ENV_PREFIX}DRAFT_LORA_FILE to the "
            f"LoRA's file name, or {ENV_PREFIX}DRAFT_LORA to the folder or Hub repo holding it."
        )
    before = _parameter_bytes(pipeline)
    try:
        pipeline.load_lora_weights(str(folder), weight_name=weight_name, adapter_name=ADAPTER)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ModelError(f"The draft LoRA {folder / weight_name} could not be loaded ({error}).") from error
    pipeline.disable_lora()
    return _parameter_bytes(pipeline) - before


def _parameter_bytes(pipeline: StableDiffusionXLControlNetPipeline) -> int:
    models = (pipeline.unet, pipeline.text_encoder, pipeline.text_encoder_2)
    unique = {id(p): p for model in models if model is not None for p in model.parameters()}
    return sum(p.numel() * p.element_size() for p in unique.values())


class AdapterGate:
    """Requests of one mode (draft or full) run together; one of the other mode waits until they are done,
    then switches the shared weights. `switch(draft)` must put the models into that mode."""

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


def adapter_switch(pipeline: StableDiffusionXLControlNetPipeline) -> Callable[[bool], None]:
    """The switch of `pipeline`'s draft adapter. peft wraps q, k and v one by one, so a draft runs the UNet's
    attention unfused; full mode gets back the processors it had (fused when that lever is on)."""
    unet = pipeline.unet
    full_processors = unet.attn_processors

    def switch(draft: bool) -> None:
        if draft:
            pipeline.enable_lora()
            unet.set_attn_processor(AttnProcessor2_0())
        else:
            pipeline.disable_lora()
            unet.set_attn_processor(dict(full_processors))

    return switch


def lora_megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"
