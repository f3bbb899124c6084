"""The whole DWPose pipeline through onnxruntime, with model files whose outputs encode known answers."""

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from pipelines.errors import ModelError, ValidationError
from pipelines.images import load_image
from pipelines.pose.detector import anchor_grid, decode_person_boxes, letterbox_top_left
from pipelines.pose.estimator import PoseEstimator, box_center_scale, crop_people, decode_simcc
from pipelines.pose.keypoints import people_from_wholebody
from pipelines.pose.models import CPU, DETECTOR_FILE, POSE_FILE, create_session, requested_providers
from pipelines.pose.tiny import TEMPLATE_SCORE, ensure_tiny_models, standing_template
from pipelines.settings import Settings
from tests.onnx_builders import box_detector, simcc_pose_model, write_models
from tests.pose_samples import SAMPLE_PHOTO, needs_sample_photo

ROOT = Path(__file__).resolve().parents[1]
IMAGE_W, IMAGE_H = 1280, 960  # detector ratio r = 0.5
# Boxes in image pixels, 288x384 each, so padding 1.25 gives a 360x480 window: image = crop * 1.25 + offset.
BOXES = np.array([[100, 100, 388, 484], [700, 200, 988, 584]], np.float32)
OFFSETS = np.array([[64, 52], [664, 152]], np.float32)  # centre - window / 2
SHIFTED = np.array([10.0, -6.0])  # person 1's template is moved in the crop


def _estimator(folder: Path, **settings) -> PoseEstimator:
    return PoseEstimator.from_settings(
        Settings().replace(dwpose_dir=str(folder), pose_device="cpu", **settings)
    )


def _templates() -> tuple[np.ndarray, np.ndarray]:
    template = standing_template()
    keypoints = np.stack([template, template + SHIFTED])
    scores = np.full(keypoints.shape[:2], TEMPLATE_SCORE, np.float32)
    scores[1, 5:7] = [0.5, 0.2]  # person 1: a weak and an invisible shoulder
    return keypoints, scores


class CountingSession:
    """Wraps an onnxruntime session and records the batch size of every call."""

    def __init__(self, session):
        self.session, self.batches = session, []

    def run(self, outputs, feeds):
        self.batches.append(next(iter(feeds.values())).shape[0])
        return self.session.run(outputs, feeds)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (IMAGE_H, IMAGE_W, 3), dtype=np.uint8)


@pytest.fixture
def two_people(tmp_path) -> Path:
    keypoints, scores = _templates()
    return write_models(
        tmp_path / "models", box_detector(BOXES * 0.5, [0.9, 0.8]), simcc_pose_model(keypoints, scores)
    )


def test_known_boxes_and_keypoints_decode_exactly_in_one_batched_call(two_people, image):
    estimator = _estimator(two_people)
    counter = CountingSession(estimator.models.wholebody.session)
    estimator.models.wholebody.session = counter
    result = estimator.detect(image)
    assert counter.batches == [2]
    assert (result.width, result.height) == (IMAGE_W, IMAGE_H)
    keypoints, scores = _templates()
    expected = people_from_wholebody(keypoints * 1.25 + OFFSETS[:, None], scores)
    for person, want in zip(result.people, expected, strict=True):
        for part, points in person.parts().items():
            np.testing.assert_allclose(points, want.parts()[part], atol=2e-3, err_msg=part)
    # Spelled out: person 0's nose is crop (144, 84) -> (144 * 1.25 + 64, 84 * 1.25 + 52).
    np.testing.assert_allclose(result.people[0].body[0], [244.0, 157.0, 0.9], atol=2e-3)
    np.testing.assert_allclose(
        result.people[1].body[0], [(144 + 10) * 1.25 + 664, (84 - 6) * 1.25 + 152, 0.9], atol=2e-3
    )
    # Person 1's right shoulder scored 0.2: the neck is hidden, the left shoulder (0.5) kept.
    assert result.people[1].body[1, 2] == 0 and result.people[1].body[5, 2] == pytest.approx(0.5)


def test_fixed_batch_model_gets_one_call_per_person(tmp_path, image):
    keypoints, scores = _templates()
    folder = write_models(
        tmp_path,
        box_detector(BOXES * 0.5, [0.9, 0.8]),
        simcc_pose_model(keypoints[:1], scores[:1], dynamic_batch=False),
    )
    estimator = _estimator(folder)
    counter = CountingSession(estimator.models.wholebody.session)
    estimator.models.wholebody.session = counter
    result = estimator.detect(image)
    assert counter.batches == [1, 1]
    np.testing.assert_allclose(result.people[1].body[0, :2], [144 * 1.25 + 664, 84 * 1.25 + 152], atol=2e-3)


def test_no_person_gives_no_people_and_no_pose_call(tmp_path, image):
    keypoints, scores = _templates()
    # A person at 0.2 (kept as a candidate, dropped below 0.3) and a confident non-person (class 2).
    detector = box_detector(BOXES * 0.5, [0.2, 0.95], classes=np.array([0, 2]))
    estimator = _estimator(write_models(tmp_path, detector, simcc_pose_model(keypoints, scores)))
    counter = CountingSession(estimator.models.wholebody.session)
    estimator.models.wholebody.session = counter
    assert estimator.detect(image).people == []
    assert counter.batches == []


def test_overlapping_boxes_are_merged_by_nms(tmp_path, image):
    keypoints, scores = _templates()
    boxes = np.array([[50, 50, 194, 242], [60, 50, 204, 242], [350, 100, 494, 292]], np.float32)
    estimator = _estimator(
        write_models(tmp_path, box_detector(boxes, [0.9, 0.85, 0.7]), simcc_pose_model(keypoints, scores))
    )
    result = estimator.detect(image)
    assert len(result.people) == 2
    assert result.people[0].body[0, 0] == pytest.approx(244.0, abs=2e-3)  # the 0.9 box won


def test_yolox_decode_matches_hand_computed_boxes():
    cells, strides = anchor_grid(640, 640)
    assert len(cells) == 8400 and strides[0] == 8 and strides[-1] == 32
    assert cells[6400].tolist() == [0, 0] and strides[6400] == 16
    raw = np.zeros((8400, 85), np.float32)
    anchor = 8000 + 2 * 20 + 3  # stride 32, cell (3, 2)
    raw[anchor, :6] = [0.5, 0.25, np.log(2.0), np.log(4.0), 0.8, 0.5]  # score 0.4
    boxes = decode_person_boxes(raw, ratio=0.5, height=640, width=640)
    # centre ((0.5 + 3) * 32, (0.25 + 2) * 32) = (112, 72); size (64, 128); then / 0.5
    np.testing.assert_allclose(boxes, [[160, 16, 288, 272]], atol=1e-4)


def test_detector_letterbox_is_top_left_with_114():
    image = np.full((100, 200, 3), 7, np.uint8)
    tensor, ratio = letterbox_top_left(image, 640, 640)
    assert ratio == 3.2 and tensor.shape == (1, 3, 640, 640) and tensor.dtype == np.float32
    assert (tensor[0, :, :320, :] == 7).all() and (tensor[0, :, 320:, :] == 114).all()


def test_crops_are_normalised_rgb_windows():
    image = np.zeros((400, 400, 3), np.uint8)
    image[200, 100] = (255, 0, 0)
    crops = crop_people(image, np.array([[100.0, 200.0]]), np.array([[144.0, 192.0]]), 288, 384)
    assert crops.shape == (1, 3, 384, 288)
    # The window centre lands on the crop centre, twice as large; red is channel 0.
    np.testing.assert_allclose(
        crops[0, :, 192, 144], [(255 - 123.675) / 58.395, -116.28 / 57.12, -103.53 / 57.375], rtol=1e-5
    )


def test_simcc_decode_uses_argmax_over_two_and_the_smaller_maximum():
    simcc_x, simcc_y = np.zeros((1, 2, 576), np.float32), np.zeros((1, 2, 768), np.float32)
    simcc_x[0, 0, 301], simcc_y[0, 0, 77] = 0.8, 0.6
    keypoints, scores = decode_simcc(simcc_x, simcc_y)
    assert keypoints[0, 0].tolist() == [150.5, 38.5] and scores[0, 0] == pytest.approx(0.6)
    assert keypoints[0, 1].tolist() == [-1, -1] and scores[0, 1] == 0


def test_sessions_are_created_once(two_people, image):
    loads = []
    estimator = _estimator(two_people)
    load = estimator._load
    estimator._load = lambda: loads.append(1) or load()
    estimator.detect(image)
    estimator.detect(image)
    assert len(loads) == 1 and estimator.providers == {DETECTOR_FILE: [CPU], POSE_FILE: [CPU]}


def test_missing_model_file_names_it_and_says_how_to_provide_it(tmp_path):
    with pytest.raises(ModelError, match=r"yolox_l\.onnx is missing from .*--models-dir"):
        _estimator(tmp_path).detect(np.zeros((8, 8, 3), np.uint8))


def test_corrupt_model_file_is_named(two_people):
    (two_people / "dw-ll_ucoco_384.onnx").write_bytes(b"\x08\x07not a protobuf at all")
    with pytest.raises(ModelError, match=r"dw-ll_ucoco_384\.onnx could not be loaded"):
        _ = _estimator(two_people).providers


def test_mismatched_model_files_are_named(tmp_path):
    keypoints, scores = _templates()
    detector = box_detector(BOXES * 0.5, [0.9, 0.8])
    swapped = write_models(tmp_path / "swapped", detector, detector)
    with pytest.raises(ModelError, match=r"dw-ll_ucoco_384\.onnx is not a DWPose whole-body model"):
        _ = _estimator(swapped).providers
    wrong_size = write_models(tmp_path / "size", detector, simcc_pose_model(keypoints, scores))
    model = onnx.load(wrong_size / "yolox_l.onnx")  # a 512 input cannot have the 8400 anchors of 640
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 512
    model.graph.input[0].type.tensor_type.shape.dim[3].dim_value = 512
    onnx.save(model, wrong_size / "yolox_l.onnx")
    with pytest.raises(ModelError, match=r"yolox_l\.onnx does not match a 512x512 YOLOX detector"):
        _ = _estimator(wrong_size).providers


def test_gpu_request_falling_back_to_cpu_is_a_warning(two_people, caplog):
    assert requested_providers("cpu") == [CPU]
    with pytest.raises(ValidationError):
        requested_providers("tpu")
    with caplog.at_level(logging.WARNING):
        session = create_session(two_people / "yolox_l.onnx", "cuda")
    if "CUDAExecutionProvider" not in session.get_providers():
        assert "yolox_l.onnx: a GPU was asked for" in caplog.text


def test_tiny_models_put_a_standing_figure_inside_the_content(tmp_path):
    estimator = PoseEstimator.from_settings(
        Settings().replace(pose_models="tiny", cache_dir=str(tmp_path), pose_device="cpu")
    )
    assert estimator.is_stand_in
    (person,) = estimator.detect(np.full((600, 400, 3), 50, np.uint8)).people
    body = person.body
    # Letterboxed by r = 640 / 600 the content is int(400 r) = 426 x 640 canvas pixels. The box is 90 % of
    # the content height (540 image px), half as wide, centred at (213 / r, 300); padded by 1.25 the window
    # is 675 high, so a crop pixel is 675 / 384 image pixels around the centre.
    zoom = 675 / 384
    np.testing.assert_allclose(body[0, :2], [213 * 600 / 640, 300 + (84 - 192) * zoom], atol=1e-3)
    assert body[:, 2] == pytest.approx(TEMPLATE_SCORE) and body[0, 1] < body[1, 1] < body[8, 1] < body[10, 1]
    assert (
        (body[:, 0] > 200 - 135) & (body[:, 0] < 200 + 135) & (body[:, 1] > 30) & (body[:, 1] < 570)
    ).all()
    files = sorted(path.name for path in (tmp_path / "tiny-dwpose").iterdir())
    assert files == ["dw-ll_ucoco_384.onnx", "yolox_l.onnx"]
    assert sum(path.stat().st_size for path in (tmp_path / "tiny-dwpose").iterdir()) < 100_000


@needs_sample_photo
def test_tiny_models_on_the_sample_photo(tmp_path):
    image = load_image(SAMPLE_PHOTO)
    estimator = PoseEstimator.from_settings(
        Settings().replace(pose_models="tiny", cache_dir=str(tmp_path), pose_device="cpu")
    )
    result = estimator.detect(image)
    height, width = image.shape[:2]
    (person,) = result.people
    for points in person.parts().values():
        assert (
            (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
        ).all()
    nose, neck, right_ankle = person.body[0], person.body[1], person.body[10]
    assert nose[1] < neck[1] < right_ankle[1]  # standing: head above neck above feet
    assert right_ankle[1] - nose[1] > 0.6 * height


def _reference_crop(image: np.ndarray, box: np.ndarray, width: int = 288, height: int = 384) -> np.ndarray:
    """DWPose's onnxpose preprocessing written out step by step (float64 centre and scale, the three-point
    get_warp_matrix at rotation 0, uint8 warp, float64 (x - mean) / std) for one xyxy box."""
    x1, y1, x2, y2 = box.astype(np.float64)
    center = np.array([x1 + x2, y1 + y2]) * 0.5
    scale = np.array([x2 - x1, y2 - y1]) * 1.25
    aspect = width / height
    scale = np.array(
        [scale[0], scale[0] / aspect] if scale[0] > scale[1] * aspect else [scale[1] * aspect, scale[1]]
    )

    def third(a, b):
        d = a - b
        return b + np.r_[-d[1], d[0]]

    src, dst = np.zeros((3, 2), np.float32), np.zeros((3, 2), np.float32)
    src[0], src[1] = center, center + np.array([0.0, scale[0] * -0.5])
    src[2] = third(src[0], src[1])
    dst[0] = [width * 0.5, height * 0.5]
    dst[1] = dst[0] + np.array([0.0, width * -0.5])
    dst[2] = third(dst[0], dst[1])
    window = cv2.warpAffine(image, cv2.getAffineTransform(src, dst), (width, height), flags=cv2.INTER_LINEAR)
    normalised = (window - np.array([123.675, 116.28, 103.53])) / np.array([58.395, 57.12, 57.375])
    return normalised.transpose(2, 0, 1).astype(np.float32)


def test_crops_are_bit_identical_to_the_reference_preprocessing():
    image = np.random.default_rng(3).integers(0, 256, (700, 900, 3), dtype=np.uint8)
    # Tall, wide, fractional, and partly outside the image (the outside is black, as warpAffine pads).
    boxes = np.array(
        [[100.3, 50.7, 301.9, 610.2], [-40.5, 300.25, 500.0, 420.0], [850.0, 10.0, 1000.0, 200.5]], np.float32
    )
    centers, scales = box_center_scale(boxes, 288 / 384)
    crops = crop_people(image, centers, scales, 288, 384)
    for crop, box in zip(crops, boxes, strict=True):
        assert np.array_equal(crop, _reference_crop(image, box))


def test_keypoints_map_back_with_the_reference_float64_centre_and_scale(tmp_path):
    keypoints, scores = _templates()
    boxes = np.array([[101.5, 99.25, 390.75, 481.0]], np.float32)  # fractional: float32 maths would drift
    folder = write_models(
        tmp_path, box_detector(boxes * 0.5, [0.9]), simcc_pose_model(keypoints[:1], scores[:1])
    )
    keypoints_out, _ = _estimator(folder).models.wholebody(np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8), boxes)
    x1, y1, x2, y2 = boxes[0].astype(np.float64)
    scale = np.array([x2 - x1, y2 - y1]) * 1.25
    scale = np.array([scale[0], scale[0] / 0.75])  # this box is too wide for 288/384: heighten it
    crop_xy = keypoints[0].astype(np.float32) / np.float32([288, 384])  # float32, as the reference divides
    expected = crop_xy * scale + [(x1 + x2) / 2, (y1 + y2) / 2] - scale / 2
    np.testing.assert_array_equal(keypoints_out[0], expected.astype(np.float32))


def test_models_found_offline_in_the_hugging_face_cache_layout(tmp_path):
    """The real hf_hub_download path with HF_HUB_OFFLINE=1: a cached snapshot is found, nothing fetched."""
    tiny = ensure_tiny_models(tmp_path / "tiny", DETECTOR_FILE, POSE_FILE)
    repo = tmp_path / "hub" / "models--yzd-v--DWPose"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    for name in (DETECTOR_FILE, POSE_FILE):
        shutil.copy(tiny / name, snapshot / name)
    code = (
        "import json; from pipelines.pose.models import model_files; "
        "from pipelines.settings import Settings; "
        "print(json.dumps({k: str(v) for k, v in model_files(Settings.from_env()).items()}))"
    )
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(tmp_path / "hub"),
        "HF_HUB_OFFLINE": "1",
        "POSE_STUDIO_POSE_MODELS": "dwpose",
        "POSE_STUDIO_DWPOSE_DIR": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    paths = json.loads(done.stdout)
    assert paths == {name: str(snapshot / name) for name in (DETECTOR_FILE, POSE_FILE)}
    (snapshot / POSE_FILE).unlink()  # not cached: the error names the file and the ways to provide it
    failed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode != 0
    assert "dw-ll_ucoco_384.onnx" in failed.stderr and "HF_HUB_OFFLINE" in failed.stderr
    assert "--models-dir" in failed.stderr and "POSE_STUDIO_DWPOSE_DIR" in failed.stderr


def test_tiny_models_generated_by_concurrent_first_uses_are_whole(tmp_path):
    barrier = threading.Barrier(6)

    def first_use() -> Path:
        barrier.wait()
        return ensure_tiny_models(tmp_path, DETECTOR_FILE, POSE_FILE)

    with ThreadPoolExecutor(6) as pool:
        folders = list(pool.map(lambda _: first_use(), range(6)))
    assert set(folders) == {tmp_path}
    assert sorted(path.name for path in tmp_path.iterdir()) == [POSE_FILE, DETECTOR_FILE]  # no partials
    for name in (DETECTOR_FILE, POSE_FILE):
        onnx.checker.check_model(onnx.load(tmp_path / name))


class FailingSession:
    """An onnxruntime session that fails as a GPU out of memory does."""

    def run(self, outputs, feeds):
        raise RuntimeException("Failed to allocate memory for requested buffer of size 1073741824")


def test_out_of_memory_in_onnxruntime_is_a_readable_error_and_the_next_image_works(two_people, image):
    estimator = _estimator(two_people)
    working = estimator.models.wholebody.session
    estimator.models.wholebody.session = FailingSession()
    with pytest.raises(ModelError) as error:
        estimator.detect(image)
    assert str(error.value).startswith(
        "DWPose ran out of memory (yolox_l.onnx on CPUExecutionProvider, dw-ll_ucoco_384.onnx on "
        "CPUExecutionProvider). Try again when the GPU is less busy"
    )
    estimator.models.wholebody.session = working
    assert len(estimator.detect(image).people) == 2
