"""SDXL + ControlNet OpenPose generation, in-process: presets, schedulers, seeds, progress, cancel."""

from pipelines.generation.engine import (
    MAX_SEED,
    GenerationEngine,
    GenerationRequest,
    GenerationResult,
    Photo,
    PoseInput,
    PreviewCallback,
    ProgressCallback,
    resolve_seed,
)
from pipelines.generation.metadata import PNG_TEXT_KEY, Infotext, infotext, parse_infotext, read_png_infotext
from pipelines.generation.presets import PRESETS, download_models
from pipelines.generation.schedulers import DEFAULT_SCHEDULER, SCHEDULERS

__all__ = [
    "DEFAULT_SCHEDULER",
    "MAX_SEED",
    "PNG_TEXT_KEY",
    "PRESETS",
    "SCHEDULERS",
    "GenerationEngine",
    "GenerationRequest",
    "GenerationResult",
    "Infotext",
    "Photo",
    "PoseInput",
    "PreviewCallback",
    "ProgressCallback",
    "download_models",
    "infotext",
    "parse_infotext",
    "read_png_infotext",
    "resolve_seed",
]
