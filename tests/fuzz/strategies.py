"""Hypothesis strategies for hostile uploads: encoded images (every allowed format and mode, odd and very
thin sizes) put through byte-level mutations, and pose JSON documents with hostile values in every place.

The example count comes from POSE_STUDIO_FUZZ_EXAMPLES: unset, the short run of CI (fixed seed, so it is
repeatable); set, a long run with fresh random cases (see tests/fuzz/README.md).
"""

from __future__ import annotations

import io
import json
import os
import struct
import zlib

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.pose.keypoints import JSON_FIELDS

EXAMPLES_VARIABLE = "POSE_STUDIO_FUZZ_EXAMPLES"
SHORT_RUN_EXAMPLES = {"images": 150, "pose_json": 300}  # per test: well under 60 s on 2 busy cores


def fuzz_settings(kind: str) -> settings:
    """The short CI run (derandomised) unless POSE_STUDIO_FUZZ_EXAMPLES asks for a long random one."""
    requested = os.environ.get(EXAMPLES_VARIABLE)
    return settings(
        max_examples=int(requested) if requested else SHORT_RUN_EXAMPLES[kind],
        derandomize=requested is None,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        print_blob=True,  # a failure prints @reproduce_failure, to paste into a regression test
    )


# --- Images -----------------------------------------------------------------------------------------------

# (format, save options) per mode that format can hold; Pillow writes each of these.
FORMAT_MODES = {
    "PNG": ("RGB", "RGBA", "L", "LA", "P", "1", "I;16", "I"),
    "JPEG": ("RGB", "L", "CMYK"),
    "WEBP": ("RGB", "RGBA"),
    "BMP": ("RGB", "L", "P", "1"),
    "GIF": ("P", "L"),
    "TIFF": ("RGB", "RGBA", "L", "CMYK", "I;16", "I", "F", "1"),
}


@st.composite
def sizes(draw: st.DrawFn) -> tuple[int, int]:
    """Small and odd sizes, and very thin ones (longer side > 640 x the shorter) either way round."""
    kind = draw(st.sampled_from(["small", "small", "odd", "thin"]))
    if kind == "small":
        return draw(st.integers(1, 48)), draw(st.integers(1, 48))
    if kind == "odd":
        return draw(st.sampled_from([63, 64, 65, 127, 129, 257])), draw(st.sampled_from([1, 7, 64, 65, 255]))
    short, long = draw(st.integers(1, 3)), draw(st.sampled_from([641, 642, 1281, 1500, 2000]))
    return (short, long) if draw(st.booleans()) else (long, short)


def _pixels(draw: st.DrawFn, mode: str, size: tuple[int, int]) -> Image.Image:
    width, height = size
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if mode in ("I", "I;16"):
        values = rng.integers(0, draw(st.sampled_from([2, 256, 65536])), (height, width)).astype(np.int32)
        image = Image.fromarray(values.astype(np.uint16) if mode == "I;16" else values)
        return image
    if mode == "F":
        scale = draw(st.sampled_from([1.0, 255.0, 65535.0, 1e30]))
        return Image.fromarray((rng.random((height, width)) * scale).astype(np.float32))
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    if draw(st.booleans()):  # flat areas compress and quantise differently from noise
        rgb[:] = rng.integers(0, 256, 3, dtype=np.uint8)
    image = Image.fromarray(rgb)
    if mode == "P":
        return image.quantize(colors=draw(st.integers(2, 256)))
    return image.convert(mode)


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk CRC, so mutations reach the decoder instead of failing the checksum."""
    out, position = bytearray(data[:8]), 8
    while position + 8 <= len(data):
        length = struct.unpack(">I", data[position : position + 4])[0]
        end = position + 8 + length
        if end + 4 > len(data):
            out += data[position:]
            return bytes(out)
        body = data[position + 4 : end]
        out += data[position:end] + struct.pack(">I", zlib.crc32(body))
        position = end + 4
    return bytes(out + data[position:])


MUTATIONS = ("truncate", "flip", "insert", "delete", "header_size", "repeat")


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    """0-3 byte-level mutations; the header's size fields are favourite targets."""
    data = bytearray(data)
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), max_size=3)):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if mutation == "truncate":
            del data[at:]
        elif mutation == "flip":
            data[at] = draw(st.integers(0, 255))
        elif mutation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif mutation == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif mutation == "repeat":
            data[at:at] = data[at : at + 64] * draw(st.integers(1, 8))
        elif mutation == "header_size" and len(data) >= 24:  # PNG IHDR's width/height, other formats' header
            field = draw(st.sampled_from([16, 20, 6, 18, 22]))
            value = draw(st.sampled_from([0, 1, 641, 65535, 2**31 - 1, 2**32 - 1]))
            data[field : field + 4] = struct.pack(">I", value)
    if bytes(data[:8]) == b"\x89PNG\r\n\x1a\n" and draw(st.booleans()):
        return _fix_png_crcs(bytes(data))
    return bytes(data)


@st.composite
def image_files(draw: st.DrawFn) -> bytes:
    """An encoded image in an allowed format, often mutated; sometimes pure noise or a known-bad header."""
    kind = draw(st.sampled_from(["image"] * 8 + ["noise", "issue"]))
    if kind == "noise":
        return draw(st.binary(max_size=256))
    if kind == "issue":  # the short IHDR and friends, mutated further
        return draw(mutated(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x04IHDR\x00\x00\x00\x01\x85\x09\xd9\xf6"))
    fmt = draw(st.sampled_from(sorted(FORMAT_MODES)))
    mode = draw(st.sampled_from(FORMAT_MODES[fmt]))
    image = _pixels(draw, mode, draw(sizes()))
    buffer = io.BytesIO()
    options = {"lossless": True} if fmt == "WEBP" and draw(st.booleans()) else {}
    if fmt == "JPEG" and draw(st.booleans()):
        exif = Image.Exif()
        exif[0x0112] = draw(st.integers(0, 9))  # orientation, including invalid values
        options["exif"] = exif
    image.save(buffer, format=fmt, **options)
    return draw(mutated(buffer.getvalue()))


# --- Pose JSON --------------------------------------------------------------------------------------------

# Number tokens as text, so the hostile ones JSON forbids or Python cannot hold reach the parser as such.
HOSTILE_NUMBERS = (
    "NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1e40", "1e30", "1e9", "-1e9", "1000000001", "0", "-0",
    "0.0", "512.0", "512.9", "1e-400", "1" + "0" * 400, "9" * 5000, "-1", "2147483648", "true", "false",
    "null", '"512"', '""', "[]", "{}",
)  # fmt: skip
PLAIN_NUMBERS = st.one_of(
    st.integers(-(2**40), 2**40).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.integers(0, 2048).map(str),
)
NUMBER_TOKENS = st.one_of(PLAIN_NUMBERS, PLAIN_NUMBERS, st.sampled_from(HOSTILE_NUMBERS))
POINT_COUNTS = (0, 1, 2, 6, 18, 21, 25, 68, 70, 71)


SCORE_TOKENS = ("0", "0.2", "0.3", "0.9", "1")


@st.composite
def keypoint_lists(draw: st.DrawFn) -> str:
    """x, y, score triples: plain numbers from a seeded generator (cheap to draw), a few hostile tokens."""
    count = draw(st.sampled_from(POINT_COUNTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    xy = rng.uniform(-200.0, 4000.0, (count, 2))
    if draw(st.booleans()):
        xy = np.rint(xy)
    tokens = [
        token
        for (x, y), score in zip(xy.tolist(), rng.choice(SCORE_TOKENS, count).tolist(), strict=True)
        for token in (repr(x), repr(y), score)
    ]
    for _ in range(draw(st.integers(0, 2)) if tokens else 0):
        tokens[draw(st.integers(0, len(tokens) - 1))] = draw(st.sampled_from(HOSTILE_NUMBERS))
    return "[" + ",".join(tokens) + "]"


@st.composite
def people(draw: st.DrawFn) -> str:
    fields = draw(st.lists(st.sampled_from(sorted(JSON_FIELDS.values())), unique=True, max_size=5))
    parts = [f'"{field}":{draw(keypoint_lists())}' for field in fields]
    if draw(st.integers(0, 9)) == 0:
        parts.append(f'"{draw(st.sampled_from(fields or ["pose_keypoints_2d"]))}":{draw(NUMBER_TOKENS)}')
    return "{" + ",".join(parts) + "}"


@st.composite
def pose_documents(draw: st.DrawFn) -> str:
    """OpenPose-like JSON text with hostile tokens, wrappers and nesting, sometimes cut or spliced."""
    members = []
    if draw(st.integers(0, 5)):
        members.append(f'"canvas_width":{draw(st.one_of(st.integers(1, 4096).map(str), NUMBER_TOKENS))}')
    if draw(st.integers(0, 5)):
        members.append(f'"canvas_height":{draw(st.one_of(st.integers(1, 4096).map(str), NUMBER_TOKENS))}')
    crowd = draw(st.one_of(st.integers(0, 3), st.sampled_from([100, 101])))
    person = draw(people())
    listed = [person] * crowd if crowd > 3 else [draw(people()) for _ in range(crowd)]
    if draw(st.integers(0, 9)):
        members.append('"people":[' + ",".join(listed) + "]")
    if draw(st.integers(0, 4)) == 0:
        depth = draw(st.sampled_from([5, 31, 32, 33, 5000]))
        members.append('"extra":' + "[" * depth + "]" * depth)
    if draw(st.integers(0, 4)) == 0:
        members.append(
            '"name":"'
            + draw(st.text(alphabet='[]{}"\\ab', max_size=20)).replace("\\", "\\\\").replace('"', '\\"')
            + '"'
        )
    text = "{" + ",".join(draw(st.permutations(members))) + "}"
    if draw(st.integers(0, 5)) == 0:
        text = "[" + text + "]"
    if draw(st.integers(0, 9)) == 0:
        cut = draw(st.integers(0, len(text)))
        text = (
            text[:cut]
            + draw(st.sampled_from(["", "[", "]", "{", "}", ",", '"', "\\", "\x00", "\ud800"]))
            + text[cut:]
        )
    return text


JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from([10**400, -(10**400), float("nan"), float("inf")]),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=8,
)


HOSTILE_VALUES = (float("nan"), float("inf"), -float("inf"), 1e40, 10**400, True, None, "1", [], {})


@st.composite
def point_values(draw: st.DrawFn) -> list:
    """A part's flat list as Python values: seeded numbers (cheap to draw) with a few hostile ones."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.uniform(-200.0, 4000.0, 3 * draw(st.sampled_from(POINT_COUNTS))).tolist()
    for _ in range(draw(st.integers(0, 2)) if values else 0):
        values[draw(st.integers(0, len(values) - 1))] = draw(st.sampled_from(HOSTILE_VALUES))
    return values


@st.composite
def pose_objects(draw: st.DrawFn) -> dict:
    """Python values as the engine and API hand them in: dicts with any value in any field."""
    person = st.dictionaries(
        st.sampled_from(sorted(JSON_FIELDS.values())), st.one_of(point_values(), point_values(), JSON_VALUES)
    )
    fields = {
        "canvas_width": draw(st.one_of(st.integers(1, 4096), JSON_VALUES)),
        "canvas_height": draw(st.one_of(st.integers(1, 4096), JSON_VALUES)),
        "people": draw(st.one_of(st.lists(person, max_size=3), JSON_VALUES)),
    }
    return {key: value for key, value in fields.items() if draw(st.integers(0, 7))}


def json_text_of(value: object) -> str:
    return json.dumps(value, allow_nan=True)
