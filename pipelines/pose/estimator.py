"""DWPose whole-body estimation: crop each detected person, run SimCC, decode, convert to OpenPose order."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, RuntimeException

from pipelines.errors import ModelError, ValidationError, out_of_memory_kind
from pipelines.pose.detector import PersonDetector
from pipelines.pose.keypoints import PoseResult, people_from_wholebody
from pipelines.pose.models import (
    DETECTOR_FILE,
    POSE_FILE,
    create_session,
    is_stand_in,
    model_files,
    signature_mismatch,
)
from pipelines.settings import Settings

BOX_PADDING = 1.25
PIXEL_MEAN = np.array([123.675, 116.28, 103.53])  # RGB, mmpose's ImageNet statistics
PIXEL_STD = np.array([58.395, 57.12, 57.375])
# uint8 value -> normalised value per channel, computed in float64 then rounded to float32 as the reference
# does it per pixel: the same numbers, and a lookup is ~10x faster than arithmetic over HxWx3.
NORMALISE_TABLES = ((np.arange(256)[None] - PIXEL_MEAN[:, None]) / PIXEL_STD[:, None]).astype(np.float32)
SIMCC_SPLIT_RATIO = 2.0  # SimCC bins per input pixel
WHOLEBODY_POINTS = 133
WARP_MAX_SIDE = 32766  # OpenCV's warpAffine (remap) refuses images with a side of SHRT_MAX (32767) or more


def box_center_scale(boxes: np.ndarray, aspect: float) -> tuple[np.ndarray, np.ndarray]:
    """Centres and padded (w, h) of xyxy boxes, widened or heightened to the model's w/h aspect.

    float64, as the reference computes them, so the warp matrices and mapped keypoints agree to the bit.
    """
    boxes = boxes.astype(np.float64)
    centers = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    scales = (boxes[:, 2:] - boxes[:, :2]) * BOX_PADDING
    widths, heights = scales[:, :1], scales[:, 1:]
    scales = np.where(
        widths > heights * aspect,
        np.hstack([widths, widths / aspect]),
        np.hstack([heights * aspect, heights]),
    )
    return centers, scales


def _triangle(center: np.ndarray, half_width: float) -> np.ndarray:
    """The reference's three float32 points: the centre, half a width above it, and that turned 90 degrees."""
    points = np.zeros((3, 2), np.float32)
    points[0] = center
    points[1] = center + np.array([0.0, -half_width])
    direction = points[0] - points[1]
    points[2] = points[1] + np.array([-direction[1], direction[0]], np.float32)
    return points


def warp_matrix(center: np.ndarray, scale_w: float, width: int, height: int) -> np.ndarray:
    """The reference's get_warp_matrix at rotation 0 (points through getAffineTransform).

    Algebraically a zoom of width / scale_w about the centre; building it the reference's way keeps its
    float rounding, and so every bilinear sample, identical.
    """
    source = _triangle(center, scale_w / 2)
    destination = _triangle(np.array([width / 2, height / 2]), width / 2)
    return cv2.getAffineTransform(source, destination)


def warpable(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The image OpenCV's warpAffine accepts (sides below SHRT_MAX), and the (x, y) factors it was shrunk by.

    Only very thin images (e.g. 1 x 33000, within the pixel cap) are shrunk; every other image is used as is,
    so its crops stay bit-identical to the reference's.
    """
    height, width = image.shape[:2]
    if max(height, width) <= WARP_MAX_SIDE:
        return image, np.ones(2)
    factor = WARP_MAX_SIDE / max(height, width)
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    shrunk = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return shrunk, np.array([size[0] / width, size[1] / height])


def crop_people(
    image: np.ndarray, centers: np.ndarray, scales: np.ndarray, width: int, height: int
) -> np.ndarray:
    """(n, 3, height, width) float32 normalised crops: each scale-sized window around its centre, bilinear.

    One uint8 warpAffine per person (as the reference) into a reused window, then one float32 lookup per
    channel written straight into the batch: no float image, no CHW transpose copy.
    """
    crops = np.empty((len(centers), 3, height, width), np.float32)
    window = np.empty((height, width, 3), np.uint8)
    source, shrink = warpable(image)
    for crop, center, (scale_w, _) in zip(crops, centers, scales, strict=True):
        matrix = warp_matrix(center, scale_w, width, height) / np.append(shrink, 1.0)  # from shrunk pixels
        cv2.warpAffine(source, matrix, (width, height), dst=window, flags=cv2.INTER_LINEAR)
        for channel, plane, table in zip(crop, cv2.split(window), NORMALISE_TABLES, strict=True):
            cv2.LUT(plane, table, dst=channel)
    return crops


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop-pixel keypoints (n, K, 2) and scores (n, K): argmax bins / split ratio, min of the two maxima."""
    x_bins, y_bins = simcc_x.argmax(axis=2), simcc_y.argmax(axis=2)
    # The maxima read at the argmax, rather than a second pass over every bin.
    x_peaks = np.take_along_axis(simcc_x, x_bins[..., None], axis=2)[..., 0]
    y_peaks = np.take_along_axis(simcc_y, y_bins[..., None], axis=2)[..., 0]
    scores = np.minimum(x_peaks, y_peaks)
    keypoints = np.stack([x_bins, y_bins], axis=-1).astype(np.float32) / SIMCC_SPLIT_RATIO
    keypoints[scores <= 0] = -1  # no peak at all: the reference marks the point as missing
    return keypoints, scores.astype(np.float32)


class WholeBodyModel:
    """A DWPose SimCC onnxruntime session; input size and batch axis are read from the session."""

    def __init__(self, session: ort.InferenceSession, file_name: str) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        shape = inputs[0].shape if len(inputs) == 1 else []
        valid = len(shape) == 4 and shape[1] == 3 and all(isinstance(size, int) for size in shape[2:])
        if valid:
            height, width = shape[2:]
            expected = [
                [WHOLEBODY_POINTS, width * SIMCC_SPLIT_RATIO],
                [WHOLEBODY_POINTS, height * SIMCC_SPLIT_RATIO],
            ]
            valid = len(outputs) == 2 and [o.shape[1:] for o in outputs] == expected
            valid = valid and (not isinstance(shape[0], int) or shape[0] == 1)
        if not valid:
            raise signature_mismatch(
                file_name,
                "a DWPose whole-body model: expected one Nx3xHxW input and outputs simcc_x Nx133x(2W), "
                "simcc_y Nx133x(2H)",
                session,
            )
        self.session = session
        self.input_name = inputs[0].name
        self.height, self.width = shape[2:]
        self.batched = not isinstance(shape[0], int)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """COCO-WholeBody keypoints (n, 133, 2) in image pixels and their scores (n, 133)."""
        centers, scales = box_center_scale(boxes, self.width / self.height)
        crops = crop_people(image, centers, scales, self.width, self.height)
        if self.batched:
            simcc_x, simcc_y = self.session.run(None, {self.input_name: crops})
        else:
            outputs = [self.session.run(None, {self.input_name: crop[None]}) for crop in crops]
            simcc_x, simcc_y = (np.concatenate(parts) for parts in zip(*outputs, strict=True))
        keypoints, scores = decode_simcc(simcc_x, simcc_y)
        crop_size = np.array([self.width, self.height], np.float32)
        keypoints = keypoints / crop_size * scales[:, None] + centers[:, None] - scales[:, None] / 2
        return keypoints.astype(np.float32), scores


@dataclass
class PoseModels:
    """The two loaded models and, per model file, the onnxruntime providers it actually runs on."""

    detector: PersonDetector
    wholebody: WholeBodyModel
    providers: dict[str, list[str]]


def load_pose_models(settings: Settings) -> PoseModels:
    paths = model_files(settings)
    detector_session = create_session(paths[DETECTOR_FILE], settings.pose_device)
    wholebody_session = create_session(paths[POSE_FILE], settings.pose_device)
    return PoseModels(
        detector=PersonDetector(detector_session, DETECTOR_FILE),
        wholebody=WholeBodyModel(wholebody_session, POSE_FILE),
        providers={
            DETECTOR_FILE: detector_session.get_providers(),
            POSE_FILE: wholebody_session.get_providers(),
        },
    )


class PoseEstimator:
    """DWPose = YOLOX person detector + DWPose-l whole-body model, loaded on first use and then reused."""

    def __init__(self, load: Callable[[], PoseModels], is_stand_in: bool) -> None:
        self._load = load
        self._models: PoseModels | None = None
        self._lock = threading.Lock()
        self.is_stand_in = is_stand_in

    @classmethod
    def from_settings(cls, settings: Settings) -> PoseEstimator:
        """Nothing is loaded yet; the first `detect` fetches (or generates) the files and opens sessions."""
        return cls(partial(load_pose_models, settings), is_stand_in(settings))

    @property
    def models(self) -> PoseModels:
        with self._lock:
            if self._models is None:
                self._models = self._load()
            return self._models

    @property
    def loaded_providers(self) -> dict[str, list[str]]:
        """Like `providers`, without loading: empty until the first detection has opened the sessions."""
        return {} if self._models is None else self._models.providers

    @property
    def providers(self) -> dict[str, list[str]]:
        """Model file -> the providers its session really uses (a CUDA request may have fallen back)."""
        return self.models.providers

    def detect(self, image: np.ndarray) -> PoseResult:
        """Everyone in an RGB uint8 image; no person gives an empty result, never a guessed skeleton."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValidationError(
                f"Pose detection needs an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}."
            )
        height, width = image.shape[:2]
        models = self.models
        try:
            boxes = models.detector(image)
            if not len(boxes):
                return PoseResult(width=width, height=height, people=[])
            keypoints, scores = models.wholebody(image, boxes)
        except (Fail, RuntimeException) as error:  # onnxruntime's own, e.g. out of GPU memory
            raise ModelError(_run_failure_message(error, models.providers)) from error
        return PoseResult(width=width, height=height, people=people_from_wholebody(keypoints, scores))


def _run_failure_message(error: Exception, providers: dict[str, list[str]]) -> str:
    where = ", ".join(f"{name} on {used[0]}" for name, used in providers.items())
    if out_of_memory_kind(error) is not None:
        return (
            f"DWPose ran out of memory ({where}). Try again when the GPU is less busy, use a smaller image, "
            "or run DWPose on the CPU with --pose-device cpu (POSE_STUDIO_POSE_DEVICE=cpu)."
        )
    return f"DWPose failed while running ({where}): {error}"
