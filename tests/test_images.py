"""The image loader against a corpus of odd files made here, plus SDXL buckets and letterboxing."""

import gc
import io
import struct
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image

from pipelines.errors import ImageError
from pipelines.images import SDXL_BUCKETS, letterbox, load_image, sdxl_bucket


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _rgb(color=(200, 40, 10), size=(16, 8)) -> Image.Image:
    return Image.new("RGB", size, color)


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_formats_decode_exactly(fmt):
    options = {"lossless": True} if fmt == "WEBP" else {}
    pixels = load_image(_encode(_rgb(), fmt, **options))
    assert pixels.shape == (8, 16, 3) and pixels.dtype == np.uint8
    assert (pixels == (200, 40, 10)).all()


def test_jpeg_decodes_close_to_the_source():
    pixels = load_image(_encode(_rgb(size=(32, 32)), "JPEG", quality=95))
    assert np.abs(pixels.astype(int) - (200, 40, 10)).max() <= 4


def test_gif_gives_the_first_frame():
    frames = [_rgb((255, 0, 0)).convert("P"), _rgb((0, 0, 255)).convert("P")]
    data = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert (load_image(data) == (255, 0, 0)).all()


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was rotated: display rotated 90° clockwise
    pixels = load_image(_encode(image, "JPEG", exif=exif, quality=100))
    assert pixels.shape == (40, 20, 3)
    assert pixels[:8].mean() > 200 and pixels[-8:].mean() < 50  # the left edge is now on top


def test_grey_and_palette_modes_become_rgb():
    assert (load_image(_encode(Image.new("L", (4, 4), 77), "PNG")) == 77).all()
    assert (load_image(_encode(Image.new("1", (4, 4), 1), "PNG")) == 255).all()
    palette = _rgb((10, 200, 30)).quantize(colors=2)
    assert (load_image(_encode(palette, "PNG")) == (10, 200, 30)).all()


def test_transparency_is_composited_on_white():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.putpixel((1, 0), (0, 0, 0, 128))
    pixels = load_image(_encode(rgba, "PNG"))
    assert tuple(pixels[0, 0]) == (255, 0, 0)
    assert tuple(pixels[1, 1]) == (255, 255, 255)
    assert tuple(pixels[0, 1]) == (127, 127, 127)
    grey_alpha = Image.new("LA", (2, 2), (0, 0))
    assert (load_image(_encode(grey_alpha, "PNG")) == 255).all()
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 9, 9, 9] + [0] * 762)
    assert (load_image(_encode(palette, "PNG", transparency=1)) == 255).all()


def test_cmyk_converts_to_rgb():
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # pure red in CMYK
    assert (load_image(_encode(cmyk, "TIFF")) == (255, 0, 0)).all()


def test_16_bit_values_are_scaled_not_clipped():
    values = np.array([[0, 1000, 32896, 65535]], np.uint16)
    pixels = load_image(_encode(Image.fromarray(values), "PNG"))
    assert pixels[0, :, 0].tolist() == [0, 4, 128, 255]
    assert (pixels[..., 0] == pixels[..., 2]).all()


def test_float_images_in_0_1_are_scaled():
    values = np.array([[0.0, 0.5, 1.0]], np.float32)
    assert load_image(_encode(Image.fromarray(values), "TIFF"))[0, :, 0].tolist() == [0, 128, 255]


def test_pil_images_and_paths_are_accepted(tmp_path):
    path = tmp_path / "photo.png"
    _rgb().save(path)
    assert (load_image(path) == load_image(Image.open(path))).all()
    assert (load_image(str(path)) == (200, 40, 10)).all()


def _with_header_size(png: bytes, width: int, height: int) -> bytes:
    """The same PNG with IHDR claiming another size (the CRC is fixed so only the size is a lie)."""
    ihdr = b"IHDR" + struct.pack(">II", width, height) + png[24:29]
    return png[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + png[33:]


def test_pixel_cap_is_checked_from_the_header_before_decoding():
    png = _encode(_rgb(), "PNG")  # the data stays 16x8: decoding would fail as truncated, not as too large
    with pytest.raises(ImageError, match=r"8000x6000 = 48\.0 MP, above the 40 MP limit"):
        load_image(_with_header_size(png, 8000, 6000))
    with pytest.raises(ImageError, match="too large to decode safely"):
        load_image(_with_header_size(png, 30_000, 30_000))
    with pytest.raises(ImageError, match=r"16x8 = 0\.0 MP, above the 0\.0001 MP limit"):
        load_image(_encode(_rgb(), "PNG"), max_pixels=100)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: b"", "empty"),
        (lambda: b"name,score\nada,3\n", "not an image"),
        (lambda: _encode(_rgb(size=(64, 64)), "PNG")[:80], "truncated|corrupt"),
        (lambda: _encode(_rgb(size=(64, 64)), "JPEG")[:300], "truncated|corrupt"),
        (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(200)), "not an image|corrupt|could not be read"),
        (lambda: _encode(_rgb(), "PPM"), "not supported"),
    ],
    ids=["empty", "csv", "truncated-png", "truncated-jpeg", "garbage-png", "ppm"],
)
def test_bad_files_raise_readable_image_errors(make, message):
    with pytest.raises(ImageError, match=message):
        load_image(make())


def test_missing_and_empty_paths(tmp_path):
    with pytest.raises(ImageError, match="does not exist"):
        load_image(tmp_path / "nope.png")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageError, match=r"'empty\.jpg' is empty"):
        load_image(tmp_path / "empty.jpg")


@pytest.mark.parametrize(
    ("size", "bucket"),
    [((1920, 1080), (1344, 768)), ((1080, 1920), (768, 1344)), ((1000, 1000), (1024, 1024)),
     ((600, 800), (896, 1152)), ((3000, 1000), (1536, 640)), ((832, 1216), (832, 1216))],
)  # fmt: skip
def test_sdxl_bucket_picks_the_nearest_aspect(size, bucket):
    assert sdxl_bucket(*size) == bucket


def test_sdxl_buckets_are_about_a_megapixel_in_multiples_of_64():
    for width, height in SDXL_BUCKETS:
        assert width % 64 == 0 and height % 64 == 0
        assert 0.9e6 <= width * height <= 1.1e6


def test_letterbox_fits_and_centres_without_stretching():
    image = np.full((100, 200, 3), 200, np.uint8)
    boxed = letterbox(image, 100, 100, fill=7)
    assert boxed.shape == (100, 100, 3)
    assert (boxed[25:75] == 200).all()
    assert (boxed[:25] == 7).all() and (boxed[75:] == 7).all()
    assert (letterbox(image, 400, 200) == 200).all()  # same aspect: just scaled


@pytest.mark.parametrize("mode", ["I;16", "I;16B"])
def test_16_bit_modes_of_either_byte_order_are_scaled(mode):
    image = Image.new(mode, (4, 1))
    for x, value in enumerate([0, 257, 32896, 65535]):
        image.putpixel((x, 0), value)
    assert load_image(_encode(image, "TIFF"))[0, :, 1].tolist() == [0, 1, 128, 255]


def test_32_bit_integer_samples_are_scaled_by_their_range():
    sixteen = np.array([[0, 65535]], np.int32)  # Pillow's I mode for 16-bit data
    assert load_image(_encode(Image.fromarray(sixteen), "TIFF"))[0, :, 0].tolist() == [0, 255]
    wide = np.array([[0, 2**30, 2**31 - 1]], np.int32)
    assert load_image(_encode(Image.fromarray(wide), "TIFF"))[0, :, 0].tolist() == [0, 128, 255]


def test_float_samples_in_0_255_and_0_65535_are_kept_in_range():
    assert load_image(Image.fromarray(np.array([[0.0, 100.0, 255.0]], np.float32)))[0, :, 0].tolist() == [
        0, 100, 255,
    ]  # fmt: skip
    wide = Image.fromarray(np.array([[0.0, 32767.5, 65535.0]], np.float32))
    assert load_image(_encode(wide, "TIFF"))[0, :, 0].tolist() == [0, 128, 255]


def test_cmyk_jpeg_converts_to_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))
    assert np.abs(load_image(_encode(cmyk, "JPEG", quality=100)).astype(int) - (255, 0, 0)).max() <= 3


def test_multi_frame_tiff_gives_the_first_page():
    pages = [_rgb((0, 255, 0)), _rgb((0, 0, 255))]
    assert (
        load_image(_encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])) == (0, 255, 0)
    ).all()


def test_result_is_writable_and_files_are_closed(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [_rgb((255, 0, 0)).convert("P"), _rgb((0, 0, 255)).convert("P")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        pixels = load_image(path)
        gc.collect()
    pixels[0, 0] = 0  # callers may draw on it
    path.unlink()  # nothing holds the file open


def test_pillows_own_bomb_check_becomes_our_message():
    png = _encode(_rgb(), "PNG")
    # 14000 x 14000 is under a raised cap but over Pillow's hard limit (2 x 89 MP): refused, in our words.
    with pytest.raises(ImageError, match=r"too large to decode safely \(over Pillow's 179 MP"):
        load_image(_with_header_size(png, 14_000, 14_000), max_pixels=200_000_000)
    # 10000 x 10000 passes a raised cap: Pillow's 89 MP warning does not overrule it, so decoding is tried
    # (and this forged header has no pixel data behind it).
    with pytest.raises(ImageError, match=r"truncated|corrupt"):
        load_image(_with_header_size(png, 10_000, 10_000), max_pixels=200_000_000)
