"""The text saved with each PNG, in the "parameters" layout of AUTOMATIC1111's web UI, which image viewers,
Civitai and most SD tools parse: prompt, "Negative prompt: ...", then one line of "Key: value" pairs."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from PIL.PngImagePlugin import PngInfo

PNG_TEXT_KEY = "parameters"


def model_name(model_id: str) -> str:
    """`stabilityai/stable-diffusion-xl-base-1.0` or `/models/sdxl-base` -> the last part."""
    return PurePosixPath(model_id.rstrip("/")).name or model_id


def infotext(parameters: dict[str, Any], seed: int, models: dict[str, str]) -> str:
    """The text of one sample: `parameters` is the resolved request, `seed` this sample's own seed."""
    controlnet = ", ".join(
        [
            "Module: none",
            f"Model: {model_name(models.get('controlnet_model', models['preset']))}",
            f"Weight: {parameters['controlnet_scale']}",
            "Guidance Start: 0.0",
            f"Guidance End: {parameters['control_guidance_end']}",
        ]
    )
    settings = {
        "Steps": parameters["num_inference_steps"],
        "Sampler": parameters["scheduler"],
        "CFG scale": parameters["guidance_scale"],
        "Seed": seed,
        "Size": f"{parameters['width']}x{parameters['height']}",
        "Model": model_name(models.get("base_model", models["preset"])),
        "VAE": model_name(models["vae_model"]) if "vae_model" in models else None,
        "ControlNet 0": f'"{controlnet}"',
        "Version": "pose-studio",
    }
    lines = [parameters["prompt"]]
    if parameters["negative_prompt"]:
        lines.append(f"Negative prompt: {parameters['negative_prompt']}")
    lines.append(", ".join(f"{key}: {value}" for key, value in settings.items() if value is not None))
    return "\n".join(lines)


def png_text(parameters: dict[str, Any], seed: int, models: dict[str, str]) -> PngInfo:
    """The PNG text chunk of one sample, for `Image.save(..., pnginfo=...)`; every saved image uses it."""
    text = PngInfo()
    text.add_text(PNG_TEXT_KEY, infotext(parameters, seed, models))
    return text
