"""The twelve sampler names users know from the hosted SDXL-OpenPose APIs, mapped to diffusers schedulers.

Every scheduler is built fresh per request with `from_config` on the pipeline's own scheduler config, so it
inherits the model's noise schedule and no two requests share scheduler state. The classes are named, not
imported: the page reads this table before diffusers is loaded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diffusers.schedulers.scheduling_utils import SchedulerMixin

# Karras sigmas only span the model's full noise range when the timesteps do too.
KARRAS = {"use_karras_sigmas": True, "timestep_spacing": "linspace"}


@dataclass(frozen=True)
class SchedulerSpec:
    scheduler_class: str  # a diffusers scheduler class
    overrides: dict[str, Any] = field(default_factory=dict)  # applied on top of the pipeline's config

    def build(self, base_config: dict[str, Any]) -> SchedulerMixin:
        """A new scheduler of this kind on the pipeline's noise schedule (`base_config`)."""
        scheduler_class = getattr(importlib.import_module("diffusers"), self.scheduler_class)
        return scheduler_class.from_config(base_config, **self.overrides)


SCHEDULERS: dict[str, SchedulerSpec] = {
    "DDIM": SchedulerSpec("DDIMScheduler"),
    "DPM Multi": SchedulerSpec("DPMSolverMultistepScheduler"),
    # It ends on sigma 0 only with a lower-order final step; saying so up front saves a warning per request.
    "DPM Single": SchedulerSpec("DPMSolverSinglestepScheduler", {"lower_order_final": True}),
    "Euler a": SchedulerSpec("EulerAncestralDiscreteScheduler"),
    "Euler": SchedulerSpec("EulerDiscreteScheduler"),
    "Heun": SchedulerSpec("HeunDiscreteScheduler"),
    "DPM2 a Karras": SchedulerSpec("KDPM2AncestralDiscreteScheduler", KARRAS),
    "DPM2 Karras": SchedulerSpec("KDPM2DiscreteScheduler", KARRAS),
    "LMS": SchedulerSpec("LMSDiscreteScheduler"),
    "PNDM": SchedulerSpec("PNDMScheduler", {"skip_prk_steps": True}),
    "DDPM": SchedulerSpec("DDPMScheduler"),
    "UniPC": SchedulerSpec("UniPCMultistepScheduler"),
}
DEFAULT_SCHEDULER = "Euler a"


def build_scheduler(name: str, base_config: dict[str, Any]) -> SchedulerMixin:
    """A new scheduler of the named kind on the pipeline's noise schedule (`base_config`)."""
    return SCHEDULERS[name].build(base_config)
