"""Issue 10, pipelines side: every crash measured in adversarial testing, reproduced, now a UserError with a
message a person understands or a correct result (image loader, pose JSON reader, drawing, request
validation, out-of-memory forms)."""

from __future__ import annotations

import functools
import io
import json
import struct
import time

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from pipelines.errors import (
    GenerationError,
    ImageError,
    ValidationError,
    out_of_memory_kind,
    unexpected_error_line,
)
from pipelines.generation.engine import GenerationEngine, GenerationRequest
from pipelines.images import STRIP_PIXELS, display_copy, fit_within, load_image, save_png
from pipelines.pose import PoseEstimator, PoseResult, draw_overlay, draw_pose, from_openpose_json
from pipelines.pose.draw import BODY_COLORS, LIMB_COLORS
from pipelines.pose.keypoints import nesting_depth
from pipelines.settings import MAX_JSON_DEPTH, Settings
from tests.pose_samples import standing_result

# The bytes of the issue: a PNG whose IHDR chunk claims 4 bytes (Pillow: "Truncated IHDR chunk").
SHORT_IHDR_PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x04IHDR\x00\x00\x00\x01\x85\x09\xd9\xf6"
BODY_18_ZEROS = ",0,0,0" * 17


def _png(size: tuple[int, int], color=(200, 100, 50)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def _tiff_with_rational_length() -> bytes:
    """A 4x4 TIFF whose ImageLength (tag 257) is stored as a RATIONAL (Pillow: "Invalid dimensions")."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    for index in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
        entry = ifd + 2 + 12 * index
        if struct.unpack("<H", data[entry : entry + 2])[0] == 257:
            data[entry + 2 : entry + 4] = struct.pack("<H", 5)  # type 5: RATIONAL
            data[entry + 8 : entry + 12] = struct.pack("<I", len(data))
            data += struct.pack("<II", 4, 3)
    return bytes(data)


@pytest.fixture(scope="module")
def tiny_estimator(tmp_path_factory) -> PoseEstimator:
    cache = tmp_path_factory.mktemp("cache")
    return PoseEstimator.from_settings(Settings().replace(pose_models="tiny", cache_dir=str(cache)))


# --- Images ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [(1, 641), (641, 1), (1, 10000), (10000, 1), (2, 2000), (1, 33026), (40000, 1)]
)
def test_very_thin_images_are_detected_not_crashed_on(tiny_estimator, size):
    """Longer side > 640 x the shorter: the detector's letterbox used to round the short side to 0 pixels
    (cv2.error in resize). A side of 32767 or more (the fuzzer's 1x33026 GIF) failed OpenCV's warpAffine in
    the crops. The stand-in detector boxes the content, so each holds one person."""
    image = load_image(_png(size))
    result = tiny_estimator.detect(image)
    assert (result.width, result.height) == size
    assert len(result.people) == 1
    body = result.people[0].body
    centre_x, centre_y = (np.median(body[:, axis]) for axis in (0, 1))
    detector_pixel = max(size) / 640  # one pixel of the detector's input, in image pixels
    assert abs(centre_x - size[0] / 2) <= max(detector_pixel, size[0] * 0.1)  # standing in the middle
    assert -detector_pixel <= centre_y <= size[1] + detector_pixel


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (SHORT_IHDR_PNG, r"^The upload is truncated and could not be read \(Truncated IHDR chunk\)\.$"),
        (
            _tiff_with_rational_length(),
            r"^The upload is corrupt and could not be read \(Invalid dimensions\)\.$",
        ),
    ],
    ids=["short-ihdr", "rational-tiff-length"],
)
def test_header_parse_errors_are_image_errors(data, message):
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_a_tiff_whose_tag_data_lies_past_the_end_is_truncated_not_half_read():
    """Found by the fuzzer: Pillow only warns ("Truncated File Read"), skips the rest of the directory and
    decodes with what it has; the tags it skipped could change the pixels, so the file is refused."""
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    ifd = struct.unpack("<I", data[4:8])[0]
    last = ifd + 2 + 12 * (struct.unpack("<H", data[ifd : ifd + 2])[0] - 1)  # PlanarConfiguration
    data[last + 4 : last + 12] = struct.pack("<II", 100, len(data) + 10)  # 100 values, stored past the end
    with pytest.raises(
        ImageError, match=r"^The upload is truncated and could not be read \(Truncated File Read\)"
    ):
        load_image(bytes(data))


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (struct.error("unpack requires a buffer of 4 bytes"), r"is corrupt .*\(unpack requires a buffer"),
        (IndexError("list index out of range"), r"is corrupt .*\(list index out of range\)"),
        (ZeroDivisionError(), r"is corrupt and could not be read \(ZeroDivisionError\)"),
        (MemoryError(), "too large to decode in the memory available"),
    ],
)
def test_any_decoder_failure_is_an_image_error_naming_it(monkeypatch, failure, message):
    def load(self):
        raise failure

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", load)
    with pytest.raises(ImageError, match=message):
        load_image(_png((8, 8)))


def test_save_png_writes_exact_pixels_and_leaves_the_array_as_it_was(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (31, 17, 3), dtype=np.uint8)
    before = image.copy()
    save_png(tmp_path / "out.png", image)
    assert np.array_equal(image, before)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png").convert("RGB")), before)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out.png"]  # no temporary left


def test_display_copy_bounds_the_longer_side_and_keeps_small_images():
    assert fit_within(6300, 4200, 2048) == (2048, 1365)
    assert fit_within(1, 10000, 2048) == (1, 2048)
    assert fit_within(300, 200, 2048) == (300, 200)
    small = np.zeros((200, 300, 3), np.uint8)
    assert display_copy(small, 2048) is small
    big = np.full((4200, 6300, 3), 77, np.uint8)
    shown = display_copy(big, 2048)
    assert shown.shape == (1365, 2048, 3) and (shown == 77).all()


# --- Pose JSON --------------------------------------------------------------------------------------------


def _one_body(first: str) -> str:
    body = f"[{first},100,1{BODY_18_ZEROS}]"
    return '{"canvas_width":512,"canvas_height":512,"people":[{"pose_keypoints_2d":' + body + "}]}"


def _canvas(width: str, height: str = "512") -> str:
    return f'{{"canvas_width":{width},"canvas_height":{height},"people":[]}}'


def _small_body(values: str) -> str:
    return '{"canvas_width":8,"canvas_height":8,"people":[{"pose_keypoints_2d":' + values + "}]}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_one_body("NaN"), r"^The pose JSON contains NaN; every number must be finite\.$"),
        (_one_body("Infinity"), r"^The pose JSON contains Infinity; every number must be finite\.$"),
        (_one_body("-Infinity"), r"^The pose JSON contains -Infinity; every number must be finite\.$"),
        (_one_body("1e400"), r"^The pose JSON contains 1e400, which overflows; numbers must be finite\.$"),
        (
            _one_body("1e40"),
            r"^people\[0\]\.pose_keypoints_2d\[0\] is 1e\+40; keypoint values must be finite numbers between "
            r"-1,000,000,000 and 1,000,000,000\.$",
        ),
        (_one_body("1e30"), r"^people\[0\]\.pose_keypoints_2d\[0\] is 1e\+30; keypoint values must be"),
        (_one_body("1" + "0" * 400), r"^The pose JSON contains a 401-digit integer; numbers may"),
        (_canvas("1" + "0" * 4999), r"^The pose JSON contains a 5000-digit integer"),
        (_canvas("Infinity"), r"^The pose JSON contains Infinity"),
        (_canvas("true"), r"^canvas_width must be a whole number, got True\.$"),
        (_canvas("512.9"), r"^canvas_width must be a whole number, got 512\.9\.$"),
        (_canvas('"512"'), r"^canvas_width must be a whole number, got '512'\.$"),
        (_canvas("512", "null"), r"^canvas_height must be a whole number, got None\.$"),
        (_canvas("-5"), r"^The pose canvas must be positive, got -5x512\.$"),
        (
            _canvas("1000000000"),
            r"^The pose canvas is 1000000000x512, above the 40 MP limit for images and canvases "
            r"\(POSE_STUDIO_MAX_PIXELS\)\.$",
        ),
        (_canvas("1000000000000000000", "1000000000000000000"), r"^The pose canvas is 10{18}x10{18}, above"),
        (_canvas("20000", "20000"), r"^The pose canvas is 20000x20000, above the 40 MP limit"),
        ("[" * 5000 + "]" * 5000, r"^The pose JSON nests 5000 levels deep; OpenPose JSON needs 4"),
        ('{"people": [], "x": ' + "[" * 100000 + "]" * 100000 + "}", r"nests 100001 levels deep"),
        (
            _small_body('["1",' + "2," * 52 + "3]"),
            r"^people\[0\]\.pose_keypoints_2d\[0\] is '1'; keypoint values must be finite numbers",
        ),
        (
            _small_body("[" + "1," * 53 + "true]"),
            r"^people\[0\]\.pose_keypoints_2d\[53\] is True; keypoint values must be finite numbers",
        ),
        (
            _small_body("5"),
            r"^people\[0\]\.pose_keypoints_2d must be a list of numbers, got 5\.$",
        ),
    ],
    ids=[
        "nan", "inf", "-inf", "1e400", "1e40", "1e30", "10^400-int", "5000-digits", "canvas-inf",
        "canvas-true", "canvas-512.9", "canvas-string", "canvas-null", "canvas-negative", "canvas-1e9",
        "canvas-1e18",
        "canvas-20000^2", "nesting-5000", "nesting-100001", "string-coordinate", "bool-score", "scalar-part",
    ],
)  # fmt: skip
def test_hostile_pose_json_is_refused_with_a_reason(text, message):
    with pytest.raises(ValidationError, match=message):
        from_openpose_json(text)


def test_whole_float_sizes_are_whole_numbers_and_brackets_in_strings_do_not_nest():
    """JSON has one number type: 512.0 is the integer 512. Brackets inside strings are text, not nesting."""
    name = "[" * (MAX_JSON_DEPTH * 4)
    text = '{"canvas_width":512.0,"canvas_height":768,"name":"' + name + ' \\" ]]","people":[]}'
    assert nesting_depth(text.encode()) == 2  # the object and its people list
    result = from_openpose_json(text)
    assert (result.width, result.height) == (512, 768) and isinstance(result.width, int)


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (rb'["\\",[[]]]', 3),  # an escaped backslash does not escape the closing quote
        (rb'["\"[[",[]]', 2),  # an escaped quote does not end the string
        (rb'{"a":"\\\"]]]"}', 1),
        (b'"' + b'\\"' * 200_000, 0),  # one unterminated string: a regex over strings took minutes here
        (b"[" * 40 + b'"' + b"[" * 100_000, 40),  # brackets in an unterminated string
    ],
)
def test_nesting_depth_counts_brackets_outside_strings_in_one_pass(text, depth):
    assert nesting_depth(text) == depth


def test_text_with_a_lone_surrogate_is_not_valid_json():
    """Found by the fuzzer (tests/fuzz): str.encode() raised UnicodeEncodeError on a lone surrogate."""
    with pytest.raises(
        ValidationError, match=r"^The pose JSON file is not valid JSON: Expecting value: line 1 column 1"
    ):
        from_openpose_json('\ud800[{"name":""}]')


def test_python_values_are_held_to_the_same_rules():
    """The engine and the API hand dicts, not text: NaN and huge integers arrive as Python values."""
    body = [0.0] * 54
    body[0] = float("nan")
    with pytest.raises(
        ValidationError, match=r"pose_keypoints_2d\[0\] is nan; keypoint values must be finite"
    ):
        from_openpose_json({"canvas_width": 8, "canvas_height": 8, "people": [{"pose_keypoints_2d": body}]})
    with pytest.raises(ValidationError, match=r"^canvas_width must be a whole number, got inf\.$"):
        from_openpose_json({"canvas_width": float("inf"), "canvas_height": 8, "people": []})
    with pytest.raises(ValidationError, match=r"^The pose canvas is an integer of about 10\^4999x8, above"):
        from_openpose_json({"canvas_width": 10**4999, "canvas_height": 8, "people": []})


def test_people_and_file_size_are_capped(monkeypatch):
    person = {"pose_keypoints_2d": [1.0, 1.0, 1.0] * 18}
    crowd = {"canvas_width": 64, "canvas_height": 64, "people": [person] * 101}
    with pytest.raises(
        ValidationError,
        match=r"^The pose has 101 people; at most 100 are allowed \(POSE_STUDIO_MAX_POSE_PEOPLE\)\.$",
    ):
        from_openpose_json(json.dumps(crowd))
    assert len(from_openpose_json(json.dumps({**crowd, "people": [person] * 100})).people) == 100
    monkeypatch.setenv("POSE_STUDIO_MAX_POSE_JSON_MB", "1")
    padded = json.dumps({"canvas_width": 8, "canvas_height": 8, "people": [], "pad": " " * 1_000_000})
    with pytest.raises(
        ValidationError,
        match=r"^The pose JSON file is 1\.0 MB; at most 1 MB are allowed \(POSE_STUDIO_MAX_POSE_JSON_MB\)",
    ):
        from_openpose_json(padded)


# --- Drawing ----------------------------------------------------------------------------------------------


def test_far_off_points_draw_the_visible_part_of_their_limb():
    """A shoulder a billion pixels to the right (within the keypoint cap): the neck-shoulder limb runs
    horizontally to the canvas edge, quickly, instead of overflowing OpenCV's int32 coordinates."""
    body = [0.0] * 54
    body[3:6] = [100.0, 100.0, 1.0]  # neck
    body[6:9] = [1e9, 100.0, 1.0]  # right shoulder
    result = from_openpose_json(
        {"canvas_width": 512, "canvas_height": 256, "people": [{"pose_keypoints_2d": body}]}
    )
    started = time.perf_counter()
    drawing = draw_pose(result, "body-pose")
    assert time.perf_counter() - started < 5
    limb = LIMB_COLORS[0].tolist()  # (1, 2): neck to right shoulder
    assert (drawing[100, 110:512] == limb).all()
    assert not drawing[106:, 110:].any() and not drawing[:95, 110:].any()  # 4 px half-width
    assert drawing[100, 100].tolist() == BODY_COLORS[1].tolist()  # the neck joint on top


def test_a_tiny_canvas_scaled_up_keeps_its_one_visible_joint():
    body = [0.0] * 54
    body[0:3] = [0.5, 0.5, 1.0]  # nose at the centre of a 1x1 canvas
    body[6:9] = [1e9, -1e9, 1.0]  # right shoulder: a billion canvases away
    result = from_openpose_json(
        {"canvas_width": 1, "canvas_height": 1, "people": [{"pose_keypoints_2d": body}]}
    )
    drawing = draw_pose(result, "body-pose", size=(1024, 1024))
    assert drawing[512, 512].tolist() == BODY_COLORS[0].tolist()
    nose_only = draw_pose(
        PoseResult(1, 1, [result.people[0].__class__(**{**result.people[0].parts(), "body": _nose(result)})]),
        "body-pose",
        size=(1024, 1024),
    )
    assert np.array_equal(drawing, nose_only)  # the far shoulder draws nothing


def _nose(result: PoseResult) -> np.ndarray:
    body = result.people[0].body.copy()
    body[1:, 2] = 0
    return body


@pytest.mark.parametrize("mode", ["full-pose", "face-hand-mask"])
def test_overlay_blends_only_drawn_pixels_exactly_as_before(mode):
    """draw_overlay no longer blends the whole photo in float64 (8 bytes per sample): same pixels."""
    photo = np.random.default_rng(1).integers(0, 256, (800, 640, 3), dtype=np.uint8)
    pose = standing_result()
    from pipelines.pose.draw import MODES, Widths, _at_size, _render, parse_mode

    spec = MODES[parse_mode(mode)]
    drawing = _render(_at_size(pose, (640, 800)), spec.layers, Widths())
    blended = photo * (1.0 - spec.overlay_opacity) + drawing * spec.overlay_opacity
    expected = np.where(drawing.any(axis=2, keepdims=True), blended.astype(np.uint8), photo)
    assert np.array_equal(draw_overlay(photo, pose, mode), expected)


# --- Generation requests ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"num_inference_steps": 2.5}, r"^num_inference_steps must be an integer between 1 and 100 .got 2.5"),
        ({"samples": "abc"}, r"^samples must be an integer between 1 and 4 \(got 'abc'\)$"),
        ({"samples": "2"}, r"^samples must be an integer between 1 and 4 \(got '2'\)$"),
        ({"samples": True}, r"^samples must be an integer between 1 and 4 \(got True\)$"),
        ({"guidance_scale": True}, r"^guidance_scale must be a number between 1 and 25 \(got True\)$"),
        ({"guidance_scale": float("nan")}, r"^guidance_scale must be a number between 1 and 25 \(got nan\)$"),
        ({"controlnet_scale": float("inf")}, r"^controlnet_scale must be a number between 0 and 1 \(got inf"),
        ({"seed": 1.5}, r"^seed must be -1 \(random\) or an integer between 0 and 999999999999999 \(got 1"),
        ({"width": 10**400, "height": 512}, r"^width must be an integer between 64 and 2048 \(got an"),
        ({"draw_mode": 3}, r"^draw_mode must be one of: full-pose, body-pose, face-pose, hand-pose \(got 3"),
        ({"thick_lines": "yes"}, r"^thick_lines must be true or false \(got 'yes'\)$"),
        ({"thick_lines": 1}, r"^thick_lines must be true or false \(got 1\)$"),
        ({"prompt": 5}, r"^prompt must not be empty$"),
        ({"steps": 30}, r"^unknown request parameter\(s\): steps$"),
    ],
)  # fmt: skip
def test_request_values_are_refused_by_type_with_the_engines_messages(values, message):
    with pytest.raises(ValidationError, match=message):
        GenerationRequest.from_values({"prompt": "a dancer", **values})


def test_request_values_in_json_number_form_are_taken_without_loss():
    request = GenerationRequest.from_values(
        {"prompt": "a dancer", "num_inference_steps": 30.0, "guidance_scale": 7, "seed": -1.0, "width": 512.0,
         "height": 768, "controlnet_scale": 1, "control_guidance_start": 0, "draw_mode": "full-pose"}
    )  # fmt: skip
    assert (request.num_inference_steps, request.seed, request.width, request.height) == (30, -1, 512, 768)
    assert all(type(value) is int for value in (request.num_inference_steps, request.seed, request.width))
    assert type(request.guidance_scale) is float and request.guidance_scale == 7.0
    assert type(request.controlnet_scale) is float and request.draw_mode == "full-pose"
    assert type(request.control_guidance_start) is float and request.control_guidance_start == 0.0


# --- Out of memory ----------------------------------------------------------------------------------------


class Fail(Exception):  # onnxruntime's class name
    pass


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (RuntimeError("CUDA error: out of memory"), "GPU"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "GPU"),
        (RuntimeError("MPS backend out of memory (MPS allocated: 8 GB)"), "GPU"),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)"), "GPU"),
        (Fail("Failed to allocate memory for requested buffer of size 1073741824"), "GPU"),
        (MemoryError(), "system"),
        (RuntimeError("Expected all tensors to be on the same device"), None),
        (ValueError("out of memory"), None),
    ],
)
def test_out_of_memory_forms(error, kind):
    assert out_of_memory_kind(error) == kind


def test_an_unexpected_error_is_one_line_naming_it():
    assert unexpected_error_line(KeyError("x")) == "internal error, please report it (KeyError: 'x')"
    assert unexpected_error_line(MemoryError()) == "ran out of system memory (MemoryError: )"
    denied = PermissionError(13, "Permission denied", "/out/pose.png")
    assert unexpected_error_line(denied) == "could not use /out/pose.png: Permission denied"


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (
            RuntimeError("CUDA error: out of memory"),
            r"^Out of GPU memory generating 1 x 64x64\. Try fewer samples",
        ),
        (
            MemoryError(),
            r"^Out of system memory generating 1 x 64x64\. Try fewer samples or a smaller size, or set ",
        ),
    ],
)
def test_every_out_of_memory_form_gets_the_advice_and_the_next_run_works(failure, message, monkeypatch):
    engine = _tiny_engine()
    unet = engine.pipeline.unet
    original = unet.forward

    def fail_once(*args, **kwargs):
        monkeypatch.setattr(unet, "forward", original)
        raise failure

    monkeypatch.setattr(unet, "forward", fail_once)
    request = GenerationRequest(prompt="a dancer", num_inference_steps=1, seed=1, width=64, height=64)
    with pytest.raises(GenerationError, match=message):
        engine.generate(request, standing_result())
    assert len(engine.generate(request, standing_result()).images) == 1


def test_other_runtime_errors_are_not_taken_for_out_of_memory(monkeypatch):
    engine = _tiny_engine()

    def fail(*args, **kwargs):
        raise RuntimeError("Expected all tensors to be on the same device")

    monkeypatch.setattr(engine.pipeline.unet, "forward", fail)
    request = GenerationRequest(prompt="a dancer", num_inference_steps=1, seed=1, width=64, height=64)
    with pytest.raises(RuntimeError, match="same device"):
        engine.generate(request, standing_result())


@functools.cache
def _tiny_engine() -> GenerationEngine:
    return GenerationEngine.from_settings(Settings(preset="tiny"))


def test_decoding_allocates_the_output_and_one_strip_not_whole_image_copies():
    """Python-side allocations while decoding a 12 MP PNG (tracemalloc sees NumPy's and Python's, not
    Pillow's own decode buffer): the output array plus one strip, where convert / tobytes / np.array made
    three more full-size copies."""
    import tracemalloc

    buffer = io.BytesIO()
    Image.new("RGB", (4000, 3000), (120, 80, 40)).save(buffer, "PNG")
    data = buffer.getvalue()
    tracemalloc.start()
    try:
        image = load_image(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert image.shape == (3000, 4000, 3) and (image == (120, 80, 40)).all()
    strip = STRIP_PIXELS * 3
    assert image.nbytes < peak <= image.nbytes + 2 * strip + 1_000_000
