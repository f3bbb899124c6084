"""Where the pipeline's weights come from: the real SDXL models (Hub or local folders) or the tiny stand-in.

The model ids themselves live in `Settings` (base_model, controlnet_model, vae_model, preview_model,
draft_lora), so env vars and CLI flags can point any of them at another repo or a local folder; this table
says which files each one needs. `sources` are required; `extras` are optional (live previews, Draft mode):
the app runs without them and says what is missing.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from pipelines.errors import ModelError
from pipelines.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:  # torch, diffusers and huggingface_hub load when a model does, not with this table
    import torch
    from diffusers import StableDiffusionXLControlNetPipeline

log = logging.getLogger(__name__)

DOWNLOAD_COMMAND = "python app.py --download"
# Single-folder models (ControlNet, VAE): the config and the safetensors weights, nothing else in the repo.
SINGLE_MODEL_FILES = ("config.json", "diffusion_pytorch_model.safetensors")


@dataclass(frozen=True)
class ModelSource:
    """One model of a preset: which setting names it, and which of its repo's files the pipeline reads."""

    role: str  # how messages name it
    setting: str  # the Settings field holding its Hub id or local folder
    files: tuple[str, ...]  # exact names: the download's allow-patterns, the Space's preload list
    variant: str | None = None
    file_setting: str | None = None  # a Settings field naming one more file (the LoRA's weight file)

    def patterns(self, settings: Settings) -> tuple[str, ...]:
        """Every file of the repo this model needs, under `settings`."""
        return self.files + ((getattr(settings, self.file_setting),) if self.file_setting else ())


TOKENIZER_FILES = ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json")
SDXL_BASE_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    *(f"{folder}/{name}" for folder in ("tokenizer", "tokenizer_2") for name in TOKENIZER_FILES),
    "text_encoder/config.json",
    "text_encoder/model.fp16.safetensors",
    "text_encoder_2/config.json",
    "text_encoder_2/model.fp16.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.fp16.safetensors",
)  # no vae/: the fp16-fix VAE replaces it


# Optional models: the live-preview decoder (TAESD for SDXL) and Draft mode's few-step LoRA.
PREVIEW_SOURCE = ModelSource("live-preview decoder (TAESD)", "preview_model", SINGLE_MODEL_FILES)
DRAFT_SOURCE = ModelSource("draft LoRA", "draft_lora", (), file_setting="draft_lora_file")
EXTRAS = (PREVIEW_SOURCE, DRAFT_SOURCE)
StandIn = Callable[[Path, Settings], None]  # writes a stand-in model into a folder


@dataclass(frozen=True)
class Preset:
    is_stand_in: bool  # outputs are noise; the UI says so
    sources: tuple[ModelSource, ...]  # empty: built in code, nothing to download
    build: Callable[[Preset, Settings, torch.dtype], StableDiffusionXLControlNetPipeline]
    extras: tuple[ModelSource, ...] = EXTRAS
    # setting -> writer of a stand-in used instead of a Hub id (a local folder in the setting still wins)
    stand_ins: dict[str, StandIn] = field(default_factory=dict)


def load_pretrained(
    preset: Preset, settings: Settings, dtype: torch.dtype
) -> StableDiffusionXLControlNetPipeline:
    """Load base + ControlNet + VAE from the Hub cache or local folders, in `dtype`, on the CPU."""
    from diffusers import AutoencoderKL, ControlNetModel, StableDiffusionXLControlNetPipeline

    base, controlnet, vae = (resolve_source(source, settings) for source in preset.sources)
    base_source = preset.sources[0]
    try:
        return StableDiffusionXLControlNetPipeline.from_pretrained(
            base,
            controlnet=ControlNetModel.from_pretrained(controlnet, dtype=dtype),
            vae=AutoencoderKL.from_pretrained(vae, dtype=dtype),
            dtype=dtype,
            variant=base_source.variant,
            add_watermarker=False,
        )
    except (OSError, ValueError) as error:
        raise ModelError(
            f"The SDXL weights in {base}, {controlnet} or {vae} could not be loaded ({error}). "
            f"Delete the broken files and run `{DOWNLOAD_COMMAND}` again, or point "
            f"{ENV_PREFIX}BASE_MODEL / CONTROLNET_MODEL / VAE_MODEL at complete local folders."
        ) from error


def build_tiny(preset: Preset, settings: Settings, dtype: torch.dtype) -> StableDiffusionXLControlNetPipeline:
    import torch

    from pipelines.generation.tiny import build_tiny_pipeline

    pipeline = build_tiny_pipeline()
    return pipeline if dtype == torch.float32 else pipeline.to(dtype=dtype)


PRESETS: dict[str, Preset] = {
    "sdxl": Preset(
        is_stand_in=False,
        sources=(
            ModelSource("SDXL base model", "base_model", SDXL_BASE_FILES, variant="fp16"),
            ModelSource("OpenPose ControlNet", "controlnet_model", SINGLE_MODEL_FILES),
            ModelSource("VAE", "vae_model", SINGLE_MODEL_FILES),
        ),
        build=load_pretrained,
    ),
    "tiny": Preset(
        is_stand_in=True,
        sources=(),
        build=build_tiny,
        stand_ins={
            "preview_model": lambda folder, settings: _tiny().save_tiny_taesd(folder),
            "draft_lora": lambda folder, settings: _tiny().save_tiny_lora(folder, settings.draft_lora_file),
        },
    ),
}


def _tiny() -> ModuleType:
    """The stand-ins' module, imported when a stand-in is first written."""
    from pipelines.generation import tiny

    return tiny


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ModelError(f"Unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


def resolve_source(source: ModelSource, settings: Settings) -> Path:
    """The local folder holding `source`: the configured path itself, or its Hub snapshot (downloaded
    unless it is cached or downloads are off). Raises ModelError saying how to provide missing weights."""
    import huggingface_hub
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    model = getattr(settings, source.setting)
    if Path(model).expanduser().is_dir():
        return Path(model).expanduser()
    try:
        folder = huggingface_hub.snapshot_download(model, allow_patterns=list(source.patterns(settings)))
    except (LocalEntryNotFoundError, RepositoryNotFoundError, GatedRepoError, HFValidationError) as error:
        raise ModelError(_missing_message(source, model, error)) from error
    except HfHubHTTPError as error:
        raise ModelError(f"Downloading the {source.role} {model!r} failed: {error}") from error
    return Path(folder)


def _missing_message(source: ModelSource, model: str, error: Exception) -> str:
    variable = f"{ENV_PREFIX}{source.setting.upper()}"
    return (
        f"The {source.role} {model!r} is neither a local folder nor in the Hugging Face cache, and it could "
        f"not be downloaded ({type(error).__name__}). Provide it one of three ways: run `{DOWNLOAD_COMMAND}` "
        f"while online (then HF_HUB_OFFLINE=1 works); set {variable} to a local folder holding the model; or "
        f"leave HF_HUB_OFFLINE unset so the first run downloads it."
    )


def resolve_extra(preset: Preset, source: ModelSource, settings: Settings) -> Path | None:
    """The folder of an optional model, or None when its setting is empty (turned off). A stand-in preset
    writes its tiny random model under the cache folder unless the setting names a local folder."""
    model = getattr(settings, source.setting)
    if not model:
        return None
    writer = preset.stand_ins.get(source.setting)
    if writer is None or Path(model).expanduser().is_dir():
        return resolve_source(source, settings)
    folder = Path(settings.cache_dir) / "tiny-generation" / source.setting
    if not all((folder / pattern).is_file() for pattern in source.patterns(settings)):
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder) as scratch:  # files appear whole: processes may race
            writer(Path(scratch), settings)
            for path in Path(scratch).iterdir():
                os.replace(path, folder / path.name)
    return folder


def hub_files(settings: Settings) -> dict[str, tuple[str, ...]]:
    """Hub repo -> the files the configured preset reads from it: the required models, then the optional ones
    that are not turned off (local folders and the stand-in preset: none). The Space's `preload_from_hub`
    lists exactly these (tests/test_deploy.py checks it), as `download_models` fetches them."""
    preset = get_preset(settings.preset)
    extras = () if preset.stand_ins else preset.extras
    return {
        getattr(settings, source.setting): source.patterns(settings)
        for source in (*preset.sources, *extras)
        if getattr(settings, source.setting)
        and not Path(getattr(settings, source.setting)).expanduser().is_dir()
    }


def download_models(settings: Settings) -> dict[str, Path]:
    """Fetch every file the configured preset needs into the Hugging Face cache, ahead of time (Space
    builds, offline use): the required models, then the optional ones that are not turned off. Local folders
    are left as they are. Returns role -> folder."""
    preset = get_preset(settings.preset)
    folders = {}
    extras = () if preset.stand_ins else preset.extras  # a stand-in preset writes its own
    for source in (*preset.sources, *extras):
        if getattr(settings, source.setting):
            log.info("Fetching the %s (%s)", source.role, getattr(settings, source.setting))
            folders[source.role] = resolve_source(source, settings)
    return folders
