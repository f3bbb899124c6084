"""Live previews of the latents while denoising: TAESD (a tiny VAE decoder, `AutoencoderTiny`) when its
weights load, else a fixed linear map from SDXL's four latent channels to RGB.

The colour map costs one tiny matrix product and no model, at 1/8 of the output size, but shows only blobs of
colour. TAESD decodes real pictures at display size; `benchmarks/bench_previews.py` measures what it costs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from diffusers import AutoencoderTiny
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
TAESD_UPSCALE = 8  # TAESD decodes a latent pixel into 8x8 image pixels, like the SDXL VAE

Previewer = Callable[[torch.Tensor], list[Image.Image]]  # (B, 4, h, w) latents -> one image per sample


def latent_previews(latents: torch.Tensor) -> list[Image.Image]:
    """One RGB image per sample of a (B, 4, h, w) latent batch, at the latent's own h x w."""
    rgb = torch.einsum("bchw,cr->bhwr", latents.detach().float().cpu(), SDXL_LATENT_RGB_FACTORS)
    rgb = ((rgb + SDXL_LATENT_RGB_BIAS + 1) / 2).clamp(0, 1)
    return _images(rgb)


class TaesdPreviews:
    """Decodes the latents with TAESD at most `size` pixels on the longest side: larger latents are first
    averaged down, so a 1024² request decodes a 512² preview (a quarter of the work of a full-size decode).
    Stateless apart from the weights, so concurrent requests share one."""

    def __init__(self, decoder: AutoencoderTiny, size: int) -> None:
        self.decoder = decoder
        self.size = size

    @torch.no_grad()
    def __call__(self, latents: torch.Tensor) -> list[Image.Image]:
        height, width = latents.shape[-2:]
        scale = min(1.0, self.size / (TAESD_UPSCALE * max(height, width)))
        if scale < 1:
            target = (max(1, round(height * scale)), max(1, round(width * scale)))
            latents = F.interpolate(latents, size=target, mode="area")
        # SDXL's latents are in the UNet's scaled space, which is what TAESD (scaling_factor 1) decodes.
        latents = latents.to(self.decoder.device, self.decoder.dtype) / self.decoder.config.scaling_factor
        decoded = self.decoder.decode(latents, return_dict=False)[0]  # [-1, 1]
        return _images(((decoded.float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).cpu())


def _images(rgb: torch.Tensor) -> list[Image.Image]:
    """(B, h, w, 3) floats in [0, 1] -> PIL images."""
    pixels = (rgb * 255).round().to(torch.uint8).numpy()
    return [Image.fromarray(sample) for sample in pixels]
