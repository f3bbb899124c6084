"""YOLOX person detection as DWPose's ONNX pipeline does it: top-left letterbox, grid decode, NMS."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import onnxruntime as ort

from pipelines.errors import ModelError
from pipelines.pose.models import signature_mismatch

LETTERBOX_FILL = 114
STRIDES = (8, 16, 32)
CANDIDATE_SCORE = 0.1  # boxes entering NMS
NMS_IOU = 0.45
PERSON_SCORE = 0.3  # boxes kept after NMS
PERSON_CLASS = 0
BOX_COLUMNS = 5  # cx, cy, w, h, objectness; class scores follow
DEFAULT_INPUT_SIZE = 640  # used only when the model leaves its input size symbolic


@lru_cache(maxsize=4)
def anchor_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-anchor (x, y) grid cell and stride, in the order YOLOX concatenates its three heads."""
    cells, strides = [], []
    for stride in STRIDES:
        ys, xs = np.meshgrid(np.arange(height // stride), np.arange(width // stride), indexing="ij")
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full((xs.size, 1), stride))
    return np.concatenate(cells).astype(np.float32), np.concatenate(strides).astype(np.float32)


def letterbox_top_left(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float]:
    """1x3xHxW float32 of the image resized by r = min(H/h, W/w) at the top-left of a 114 canvas, and r.

    The image goes in the channel order it is given, as the reference feeds it (RGB here). The resize writes
    straight into the canvas; the one float conversion is also the CHW transpose.
    """
    ratio = min(height / image.shape[0], width / image.shape[1])
    # At least one pixel: a side more than `width` times shorter than the other would round to none (very
    # thin images, e.g. 1x641), which OpenCV refuses; one pixel row or column still shows what is there.
    resized_width, resized_height = (max(1, int(side * ratio)) for side in image.shape[1::-1])
    canvas = np.full((height, width, 3), LETTERBOX_FILL, np.uint8)
    cv2.resize(
        image,
        (resized_width, resized_height),
        dst=canvas[:resized_height, :resized_width],
        interpolation=cv2.INTER_LINEAR,
    )
    return canvas.transpose(2, 0, 1)[None].astype(np.float32), ratio


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of boxes kept by greedy NMS, best first (YOLOX's +1 pixel area convention)."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(scores)[::-1]
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        overlap_w = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        overlap_h = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        intersection = overlap_w * overlap_h
        iou = intersection / (areas[best] + areas[rest] - intersection)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def decode_person_boxes(raw: np.ndarray, ratio: float, height: int, width: int) -> np.ndarray:
    """(n, 4) xyxy person boxes in source pixels from YOLOX's raw (anchors, 5 + classes) output.

    NMS is class-aware in the reference, so running it on the person class alone keeps the same boxes.
    """
    scores = raw[:, 4] * raw[:, BOX_COLUMNS + PERSON_CLASS]
    candidates = np.flatnonzero(scores > CANDIDATE_SCORE)
    if not candidates.size:
        return np.zeros((0, 4), np.float32)
    cells, strides = anchor_grid(height, width)
    centers = (raw[candidates, :2] + cells[candidates]) * strides[candidates]
    sizes = np.exp(raw[candidates, 2:4]) * strides[candidates]
    boxes = np.concatenate([centers - sizes / 2, centers + sizes / 2], axis=1) / ratio
    kept = nms(boxes, scores[candidates], NMS_IOU)
    kept = kept[scores[candidates][kept] > PERSON_SCORE]
    return boxes[kept].astype(np.float32)


class PersonDetector:
    """A YOLOX onnxruntime session; input name and size are read from the session."""

    def __init__(self, session: ort.InferenceSession, file_name: str) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        input_shape = inputs[0].shape if len(inputs) == 1 else []
        if len(input_shape) != 4 or input_shape[1] != 3 or len(outputs) != 1 or len(outputs[0].shape) != 3:
            expected = "a YOLOX detector: expected one 1x3xHxW input and one 1xAx(5+classes) output"
            raise signature_mismatch(file_name, expected, session)
        self.session = session
        self.input_name = inputs[0].name
        self.height, self.width = (
            size if isinstance(size, int) else DEFAULT_INPUT_SIZE for size in input_shape[2:]
        )
        anchors, columns = outputs[0].shape[1:]
        expected_anchors = len(anchor_grid(self.height, self.width)[0])
        if (isinstance(anchors, int) and anchors != expected_anchors) or (
            isinstance(columns, int) and columns <= BOX_COLUMNS
        ):
            raise ModelError(
                f"{file_name} does not match a {self.width}x{self.height} YOLOX detector: expected "
                f"1x{expected_anchors}x(5+classes) output, got {outputs[0].shape}."
            )

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(n, 4) float32 xyxy person boxes in the image's pixels, best first."""
        tensor, ratio = letterbox_top_left(image, self.height, self.width)
        raw = self.session.run(None, {self.input_name: tensor})[0]
        return decode_person_boxes(raw[0], ratio, self.height, self.width)
