"""ONNX models for tests: real input/output names and shapes, with outputs that encode known boxes/points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from pipelines.pose.models import DETECTOR_FILE, POSE_FILE
from pipelines.pose.tiny import IR_VERSION, OPSET, simcc_pose_model

DETECTOR_SIZE = 640
ANCHOR_CELLS = {8: 80, 16: 40, 32: 20}  # stride -> cells per side at 640
CLASSES = 80


def encode_yolox(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None = None):
    """Anchor indices and raw YOLOX rows that decode to `boxes` (xyxy in 640-canvas pixels)."""
    classes = np.zeros(len(boxes), np.int64) if classes is None else classes
    stride, cells = 8, ANCHOR_CELLS[8]
    rows, anchors = [], []
    for (x1, y1, x2, y2), score, cls in zip(boxes, scores, classes, strict=True):
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        gx, gy = int(cx // stride), int(cy // stride)
        row = np.zeros(5 + CLASSES, np.float32)
        row[:5] = [
            cx / stride - gx,
            cy / stride - gy,
            np.log((x2 - x1) / stride),
            np.log((y2 - y1) / stride),
            1,
        ]
        row[5 + cls] = score
        rows.append(row)
        anchors.append(gy * cells + gx)
    assert len(set(anchors)) == len(anchors), "boxes must have distinct centre cells"
    return np.asarray(anchors, np.int64), np.asarray(rows, np.float32)


def box_detector(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray | None = None, size: int = DETECTOR_SIZE
) -> onnx.ModelProto:
    """A YOLOX-shaped detector ('images' 1x3xSxS -> 'output' 1xAx85) whose output decodes to `boxes`."""
    total = sum((size // stride) ** 2 for stride in ANCHOR_CELLS)
    anchors, rows = encode_yolox(np.asarray(boxes, np.float32), np.asarray(scores, np.float32), classes)
    initializers = [
        numpy_helper.from_array(np.array([total, 5 + CLASSES], np.int64), "shape"),
        numpy_helper.from_array(anchors[:, None], "anchors"),
        numpy_helper.from_array(rows.reshape(-1, 5 + CLASSES), "rows"),
        numpy_helper.from_array(np.array([0], np.int64), "batch_axis"),
    ]
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),
        helper.make_node("ScatterND", ["zeros", "anchors", "rows"], ["table"]),
        helper.make_node("Unsqueeze", ["table", "batch_axis"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "box_detector",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, total, 5 + CLASSES])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def write_models(folder: Path, detector: onnx.ModelProto, pose: onnx.ModelProto) -> Path:
    """Save the pair under the real DWPose file names, as a --models-dir folder."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(detector, folder / DETECTOR_FILE)
    onnx.save(pose, folder / POSE_FILE)
    return folder


__all__ = ["box_detector", "encode_yolox", "simcc_pose_model", "write_models"]
