"""Loading user images safely, and fitting images to SDXL sizes.

Uploads are decoded here rather than by the UI framework, so every path (app, CLI, tests) gets the same
format allow-list, the same decompression-bomb check (from the header, before decoding) and the same
conversion of odd modes to 8-bit RGB.
"""

from __future__ import annotations

import io
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.errors import ImageError
from pipelines.settings import Settings

# Pillow format name -> what we call it in messages. MPO is the multi-picture JPEG many cameras write.
ALLOWED_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "MPO": "JPEG", "WEBP": "WebP", "BMP": "BMP", "GIF": "GIF",
                   "TIFF": "TIFF"}  # fmt: skip
ALLOWED_NAMES = ", ".join(dict.fromkeys(ALLOWED_FORMATS.values()))

# The SDXL training resolutions (~1 MP, multiples of 64), as (width, height).
SDXL_BUCKETS: tuple[tuple[int, int], ...] = (
    (1024, 1024),
    (1152, 896), (896, 1152),
    (1216, 832), (832, 1216),
    (1344, 768), (768, 1344),
    (1536, 640), (640, 1536),
)  # fmt: skip

WHITE = (255, 255, 255)
# Full-scale value of single-channel samples wider than 8 bits, so they are scaled to 0-255, never clipped.
# 'I' is 32-bit, but Pillow also opens 16-bit grey that way, so data that fits 16 bits is read as 16-bit;
# float data is taken as 0-1, 0-255 or 0-65535, whichever range holds its maximum.
SAMPLE_RANGES = {"I;16": (65535.0,), "I": (65535.0, 2.0**31 - 1), "F": (1.0, 255.0, 65535.0)}


def _open(source: str | Path | bytes) -> Image.Image:
    if isinstance(source, bytes):
        if not source:
            raise ImageError("The file is empty.")
        stream: io.BytesIO | Path = io.BytesIO(source)
        name = "The upload"
    else:
        stream = Path(source)
        name = f"'{stream.name}'"
        if not stream.is_file():
            raise ImageError(f"{name} does not exist.")
        if stream.stat().st_size == 0:
            raise ImageError(f"{name} is empty.")
    try:
        with warnings.catch_warnings():
            # Our own cap (max_pixels) is checked from the header next; Pillow's warning would only be noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(stream)
    except Image.DecompressionBombError:  # Pillow refuses twice its MAX_IMAGE_PIXELS, whatever our cap
        raise ImageError(
            f"{name} is too large to decode safely (over Pillow's "
            f"{2 * (Image.MAX_IMAGE_PIXELS or 0) / 1e6:.0f} MP decompression-bomb limit)."
        ) from None
    except UnidentifiedImageError:
        raise ImageError(f"{name} is not an image we can read (allowed: {ALLOWED_NAMES}).") from None
    except OSError as error:
        raise ImageError(f"{name} is corrupt or truncated and could not be read ({error}).") from None


def _scaled_gray(image: Image.Image) -> np.ndarray:
    """HxWx3 uint8 from 16-bit, 32-bit or float samples, scaled by their full-scale value."""
    values = np.nan_to_num(np.asarray(image, dtype=np.float64))
    ranges = SAMPLE_RANGES["I;16" if image.mode.startswith("I;16") else image.mode]
    peak = float(values.max(initial=0.0))
    full_scale = next((limit for limit in ranges if peak <= limit), peak)
    gray = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=2)


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """8-bit RGB from any Pillow mode: transparency over white, 16-bit and float data scaled, not clipped."""
    mode = image.mode
    if mode.startswith("I;16") or mode in SAMPLE_RANGES:
        return _scaled_gray(image)
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*WHITE, 255))
        image = Image.alpha_composite(background, rgba)
    return np.array(image.convert("RGB"))  # a writable copy (np.asarray of a Pillow image is read-only)


def load_image(source: str | Path | bytes | Image.Image, max_pixels: int | None = None) -> np.ndarray:
    """Decode to HxWx3 uint8 RGB with EXIF orientation applied; any problem raises ImageError."""
    max_pixels = Settings.from_env().max_pixels if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        return _decode(source, max_pixels)
    with _open(source) as image:  # closes the file, even for multi-frame GIF/TIFF
        return _decode(image, max_pixels)


def _decode(image: Image.Image, max_pixels: int) -> np.ndarray:
    name = "The image"
    if image.format is not None and image.format not in ALLOWED_FORMATS:
        raise ImageError(f"{image.format} images are not supported (allowed: {ALLOWED_NAMES}).")
    width, height = image.size  # from the header: nothing is decoded yet
    if width <= 0 or height <= 0:
        raise ImageError(f"{name} has no pixels ({width}x{height}).")
    if width * height > max_pixels:
        raise ImageError(
            f"{name} is {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"above the {max_pixels / 1e6:g} MP limit."
        )
    try:
        image.seek(0)  # animated GIF/WebP/TIFF: the first frame
        image.load()
        return _to_rgb_array(ImageOps.exif_transpose(image))
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        reason = "is truncated" if "truncated" in str(error) else "is corrupt"
        raise ImageError(f"{name} {reason} and could not be decoded ({error}).") from None


def sdxl_bucket(width: int, height: int) -> tuple[int, int]:
    """The SDXL training size whose aspect ratio is closest to width:height (compared in log space)."""
    aspect = math.log(width / height)
    return min(SDXL_BUCKETS, key=lambda bucket: abs(math.log(bucket[0] / bucket[1]) - aspect))


def letterbox(image: np.ndarray, width: int, height: int, fill: int = 0) -> np.ndarray:
    """Fit inside width x height with a uniform scale and centre it, padding with `fill`; never stretch.

    Uses the same scale and centring as `PoseResult.fit_to`, so a pose and its photo stay aligned.
    """
    source_height, source_width = image.shape[:2]
    scale = min(width / source_width, height / source_height)
    new_width = min(width, max(1, round(source_width * scale)))
    new_height = min(height, max(1, round(source_height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    canvas = np.full((height, width, *image.shape[2:]), fill, dtype=image.dtype)
    left, top = (width - new_width) // 2, (height - new_height) // 2
    canvas[top : top + new_height, left : left + new_width] = resized
    return canvas
