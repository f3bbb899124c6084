"""Loading user images safely, and fitting images to SDXL sizes.

Uploads are decoded here rather than by the UI framework, so every path (app, CLI, tests) gets the same
format allow-list, the same decompression-bomb check (from the header, before decoding) and the same
conversion of odd modes to 8-bit RGB.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pipelines.errors import ImageError
from pipelines.files import atomic_path
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


# Pillow's parsers and decoders raise ValueError, SyntaxError, struct.error, IndexError, ... on hostile data.
DECODE_FAILURES = (Exception,)
STRIP_PIXELS = 1 << 20  # the image is converted to the output array this many pixels at a time


def _failure(name: str, error: BaseException) -> ImageError:
    """A decoder's exception as a message: what went wrong in Pillow's words, and which kind it was."""
    if isinstance(error, MemoryError):
        return ImageError(f"{name} is too large to decode in the memory available.")
    detail = str(error).strip() or type(error).__name__
    reason = "is truncated" if "truncated" in detail.lower() else "is corrupt"
    return ImageError(f"{name} {reason} and could not be read ({detail}).")


@contextmanager
def _pillow_warnings() -> Iterator[None]:
    """Pillow's bomb warning is noise (our own cap is checked from the header). A TIFF that ends early only
    warns ("Truncated File Read") and keeps what it read: that is a truncated file, so an error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("error", message="Truncated File Read", category=UserWarning)
        yield


def _open(source: str | Path | bytes) -> Image.Image:
    name = _name(source)
    if isinstance(source, bytes):
        if not source:
            raise ImageError("The file is empty.")
        stream: io.BytesIO | Path = io.BytesIO(source)
    else:
        stream = Path(source)
        if stream.is_dir():
            raise ImageError(f"{name} is a folder, not an image file.")
        if not stream.is_file():
            raise ImageError(f"{name} does not exist.")
        if stream.stat().st_size == 0:
            raise ImageError(f"{name} is empty.")
    try:
        with _pillow_warnings():
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
    except DECODE_FAILURES as error:  # a header Pillow recognised but could not parse
        raise _failure(name, error) from None


def _full_scale(image: Image.Image, rows: int) -> float:
    """The full-scale value of 16-bit, 32-bit or float samples: the first range that holds their maximum."""
    width, height = image.size
    peak = 0.0
    for top in range(0, height, rows):
        strip = np.asarray(image.crop((0, top, width, min(height, top + rows))), dtype=np.float64)
        peak = max(peak, float(np.nan_to_num(strip).max(initial=0.0)))
    ranges = SAMPLE_RANGES["I;16" if image.mode.startswith("I;16") else image.mode]
    return next((limit for limit in ranges if peak <= limit), peak)


def _scaled_gray(strip: Image.Image, full_scale: float) -> np.ndarray:
    """HxWx3 uint8 from 16-bit, 32-bit or float samples, scaled by their full-scale value."""
    values = np.nan_to_num(np.asarray(strip, dtype=np.float64))
    gray = np.clip(np.rint(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)
    return gray[..., None]  # broadcast over the three channels on assignment


def _plain_rgb(strip: Image.Image) -> np.ndarray:
    return np.asarray(strip.convert("RGB"))


def _over_white(strip: Image.Image) -> np.ndarray:
    rgba = strip.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """8-bit RGB from any Pillow mode: transparency over white, 16-bit and float data scaled, not clipped.

    Converted a strip at a time into one preallocated array, so a large image costs Pillow's decoded copy
    plus the output, not the several full-size intermediates of convert / tobytes / np.array.
    """
    width, height = image.size
    rows = max(1, STRIP_PIXELS // width)
    mode = image.mode
    convert: Callable[[Image.Image], np.ndarray] = _plain_rgb
    if mode.startswith("I;16") or mode in SAMPLE_RANGES:
        convert = partial(_scaled_gray, full_scale=_full_scale(image, rows))
    elif mode in {"RGBA", "LA", "PA", "RGBa", "La"} or "transparency" in image.info:
        convert = _over_white
    pixels = np.empty((height, width, 3), np.uint8)
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        pixels[top:bottom] = convert(image.crop((0, top, width, bottom)))
    return pixels


def load_image(source: str | Path | bytes | Image.Image, max_pixels: int | None = None) -> np.ndarray:
    """Decode to HxWx3 uint8 RGB with EXIF orientation applied; any problem raises ImageError."""
    max_pixels = Settings.from_env().max_pixels if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        return _decode(source, max_pixels, owned=False)
    with _open(source) as image:  # closes the file, even for multi-frame GIF/TIFF
        name = "The image" if isinstance(source, bytes) else _name(source)
        return _decode(image, max_pixels, owned=True, name=name)


def _name(source: str | Path | bytes) -> str:
    return "The upload" if isinstance(source, bytes) else f"'{Path(source).name}'"


def _decode(image: Image.Image, max_pixels: int, owned: bool, name: str = "The image") -> np.ndarray:
    """`owned`: the image is ours, so EXIF orientation may be applied in place (no extra copy)."""
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
        with _pillow_warnings():
            image.seek(0)  # animated GIF/WebP/TIFF: the first frame
            image.load()
        if owned:
            ImageOps.exif_transpose(image, in_place=True)
        else:
            image = ImageOps.exif_transpose(image)
        return _to_rgb_array(image)
    except DECODE_FAILURES as error:
        raise _failure(name, error) from None


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size of width x height scaled down (never up) so its longer side is at most `max_side`."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def display_copy(image: np.ndarray, max_side: int) -> np.ndarray:
    """The image itself when it fits in `max_side`, else a smaller copy (area-averaged) for previews."""
    height, width = image.shape[:2]
    size = fit_within(width, height, max_side)
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


PNG_COMPRESSION = 6  # Pillow's default level, so files are the size they were


def save_png(path: str | Path, image: np.ndarray) -> None:
    """Write RGB uint8 as a PNG, atomically (a temporary name, then a rename) and without a full-size copy:
    the channels are swapped in place for OpenCV's encoder and swapped back, so `image` is unchanged after."""
    path = Path(path)
    cv2.cvtColor(image, cv2.COLOR_RGB2BGR, dst=image)
    try:
        encoded, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    finally:
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    if not encoded:
        raise ImageError(f"Could not encode {path.name} as PNG.")
    with atomic_path(path) as temporary:
        temporary.write_bytes(memoryview(data))


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
