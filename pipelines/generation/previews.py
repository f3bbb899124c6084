"""Live previews straight from the latents: a fixed linear map from SDXL's four latent channels to RGB.

It costs one tiny matrix product per step and no extra model (no TAESD), at 1/8 of the output size.
"""

from __future__ import annotations

import torch
from PIL import Image

# Least-squares fit of RGB on scaled SDXL latents (ComfyUI's `latent_formats.SDXL`); rows are latent channels.
SDXL_LATENT_RGB_FACTORS = torch.tensor(
    [
        [0.3651, 0.4232, 0.4341],
        [-0.2533, -0.0042, 0.1068],
        [0.1076, 0.1111, -0.0362],
        [-0.3165, -0.2492, -0.2188],
    ]
)
SDXL_LATENT_RGB_BIAS = torch.tensor([0.1084, -0.0175, -0.0011])


def latent_previews(latents: torch.Tensor) -> list[Image.Image]:
    """One RGB image per sample of a (B, 4, h, w) latent batch, at the latent's own h x w."""
    rgb = torch.einsum("bchw,cr->bhwr", latents.detach().float().cpu(), SDXL_LATENT_RGB_FACTORS)
    rgb = ((rgb + SDXL_LATENT_RGB_BIAS + 1) / 2).clamp(0, 1)
    pixels = (rgb * 255).round().to(torch.uint8).numpy()
    return [Image.fromarray(sample) for sample in pixels]
