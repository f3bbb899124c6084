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
    # How AUTOMATIC1111's web UI names it in infotext: `Sampler:` and, where it has one, `Schedule type:`.
    # None: A1111 has no such sampler, so infotext keeps our name.
    a1111_sampler: str | None = None
    a1111_schedule: str | None = None

    def build(self, base_config: dict[str, Any]) -> SchedulerMixin:
        """A new scheduler of this kind on the pipeline's noise schedule (`base_config`)."""
        scheduler_class = getattr(importlib.import_module("diffusers"), self.scheduler_class)
        return scheduler_class.from_config(base_config, **self.overrides)


SCHEDULERS: dict[str, SchedulerSpec] = {
    "DDIM": SchedulerSpec("DDIMScheduler", a1111_sampler="DDIM"),
    # diffusers' default multistep algorithm is DPM-Solver++ of order 2: A1111's "DPM++ 2M".
    "DPM Multi": SchedulerSpec("DPMSolverMultistepScheduler", a1111_sampler="DPM++ 2M"),
    # It ends on sigma 0 only with a lower-order final step; saying so up front saves a warning per request.
    # (A1111 has only the ancestral "DPM++ 2S a", a different sampler.)
    "DPM Single": SchedulerSpec("DPMSolverSinglestepScheduler", {"lower_order_final": True}),
    "Euler a": SchedulerSpec("EulerAncestralDiscreteScheduler", a1111_sampler="Euler a"),
    "Euler": SchedulerSpec("EulerDiscreteScheduler", a1111_sampler="Euler"),
    "Heun": SchedulerSpec("HeunDiscreteScheduler", a1111_sampler="Heun"),
    "DPM2 a Karras": SchedulerSpec("KDPM2AncestralDiscreteScheduler", KARRAS, "DPM2 a", "Karras"),
    "DPM2 Karras": SchedulerSpec("KDPM2DiscreteScheduler", KARRAS, "DPM2", "Karras"),
    "LMS": SchedulerSpec("LMSDiscreteScheduler", a1111_sampler="LMS"),
    # PNDM without its Runge-Kutta warm-up is PLMS, A1111's name for it.
    "PNDM": SchedulerSpec("PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    "DDPM": SchedulerSpec("DDPMScheduler"),
    "UniPC": SchedulerSpec("UniPCMultistepScheduler", a1111_sampler="UniPC"),
}
DEFAULT_SCHEDULER = "Euler a"

# A1111 samplers whose "Automatic" schedule is not the plain one (its sampler table's `scheduler` option).
A1111_DEFAULT_SCHEDULES = {"DPM2": "Karras", "DPM2 a": "Karras"}
# A1111's schedule types (sd_schedulers.py labels); "Automatic" means the sampler's own default.
A1111_SCHEDULES = (
    "Automatic",
    "Uniform",
    "Karras",
    "Exponential",
    "Polyexponential",
    "SGM Uniform",
    "KL Optimal",
    "Align Your Steps",
    "Simple",
    "Normal",
    "DDIM",
    "Beta",
)


def a1111_name(name: str) -> tuple[str, str | None]:
    """Our scheduler as A1111 writes it: (Sampler, Schedule type or None). A name outside the table (the draft
    recipe's "Euler trailing") is written as it is."""
    spec = SCHEDULERS.get(name)
    return (name, None) if spec is None else (spec.a1111_sampler or name, spec.a1111_schedule)


def build_scheduler(name: str, base_config: dict[str, Any]) -> SchedulerMixin:
    """A new scheduler of the named kind on the pipeline's noise schedule (`base_config`)."""
    return SCHEDULERS[name].build(base_config)
