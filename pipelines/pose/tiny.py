"""The `tiny` stand-in: a generated YOLOX + DWPose pair with the real signatures and no weights to download.

The detector boxes the image's content; the pose model lays a fixed standing whole-body figure inside that
box. Everything downstream (crop, SimCC decode, OpenPose conversion, drawing) runs for real, so an offline
demo is readable, but the pose is a placeholder and must be labelled as one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CROP_WIDTH, CROP_HEIGHT = 288, 384  # DWPose-l input; the template lives in this crop's pixels
TEMPLATE_SCORE = 0.9
DETECTOR_SIZE = 640
ANCHOR_STRIDES = (8, 16, 32)
BOX_VALUES = 5  # cx, cy, w, h, objectness
COCO_CLASSES = 80
OPSET, IR_VERSION = 17, 8  # old enough for every onnxruntime the requirements allow

# COCO-WholeBody body + feet points (0-22) of a person facing the camera, in crop pixels.
# The person's left side is on the image's right.
BODY_AND_FEET = (
    (144, 84), (151, 77), (137, 77), (160, 81), (128, 81),  # nose, eyes, ears
    (176, 122), (112, 122), (186, 174), (102, 174), (192, 222), (96, 222),  # shoulders, elbows, wrists
    (164, 224), (124, 224), (166, 284), (122, 284), (166, 334), (122, 334),  # hips, knees, ankles
    (178, 344), (186, 342), (164, 342), (110, 344), (102, 342), (124, 342),  # toes and heels
)  # fmt: skip
FACE_CENTER = (144.0, 84.0)
LEFT_WRIST, RIGHT_WRIST = 9, 10
# Finger directions (degrees from straight down, thumb first) and the distances of each finger's 4 joints.
FINGER_ANGLES = (-40.0, -14.0, 0.0, 12.0, 24.0)
FINGER_JOINT_DISTANCES = ((4.0, 8.0, 11.0, 14.0), *((9.0, 14.0, 18.0, 22.0),) * 4)


def _arc(center: tuple[float, float], radii: tuple[float, float], start: float, stop: float, count: int):
    angles = np.radians(np.linspace(start, stop, count))
    return np.stack([center[0] + radii[0] * np.cos(angles), center[1] + radii[1] * np.sin(angles)], axis=1)


def _face() -> np.ndarray:
    """68 iBUG landmarks: jaw, brows, nose, eyes, mouth (the subject's right first, i.e. image left)."""
    cx, cy = FACE_CENTER
    return np.concatenate(
        [
            _arc((cx, cy - 6), (15, 20), 180, 0, 17),  # jaw, image left to right
            _arc((cx - 7, cy - 9), (5, 2), 200, 340, 5),  # right brow
            _arc((cx + 7, cy - 9), (5, 2), 200, 340, 5),  # left brow
            np.stack([np.full(4, cx), np.linspace(cy - 5, cy + 1, 4)], axis=1),  # nose bridge
            np.stack([np.linspace(cx - 4, cx + 4, 5), np.full(5, cy + 3)], axis=1),  # nostrils
            _arc((cx - 7, cy - 5), (3, 1.5), 180, 480, 6),  # right eye
            _arc((cx + 7, cy - 5), (3, 1.5), 180, 480, 6),  # left eye
            _arc((cx, cy + 8), (6, 2.5), 180, 510, 12),  # outer lips
            _arc((cx, cy + 8), (4, 1.0), 180, 495, 8),  # inner lips
        ]
    )


def _hand(wrist: tuple[float, float], side: float) -> np.ndarray:
    """21 points: the wrist, then 4 joints per finger, hanging down; side=+1 turns the thumb to smaller x."""
    points = [wrist]
    for angle, distances in zip(FINGER_ANGLES, FINGER_JOINT_DISTANCES, strict=True):
        direction = np.array([side * np.sin(np.radians(angle)), np.cos(np.radians(angle))])
        points.extend(np.asarray(wrist) + distance * direction for distance in distances)
    return np.asarray(points)


def standing_template() -> np.ndarray:
    """(133, 2) COCO-WholeBody points of a standing person in the 288x384 crop, on SimCC's 0.5 px grid."""
    body = np.asarray(BODY_AND_FEET, dtype=np.float64)
    points = np.concatenate(
        [body, _face(), _hand(tuple(body[LEFT_WRIST]), 1.0), _hand(tuple(body[RIGHT_WRIST]), -1.0)]
    )
    return np.round(points * 2) / 2


def _save(model: onnx.ModelProto, path: Path) -> None:
    """Write to a private temporary file, then rename: concurrent first uses (threads or processes) never
    see half a file, and the last rename wins with identical bytes."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    os.close(handle)
    try:
        onnx.save(model, temporary)
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def _model(nodes: list, inputs: list, outputs: list, initializers: list, name: str) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pose-studio"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def simcc_pose_model(
    keypoints: np.ndarray,
    scores: np.ndarray,
    height: int = CROP_HEIGHT,
    width: int = CROP_WIDTH,
    dynamic_batch: bool = True,
) -> onnx.ModelProto:
    """A DWPose-shaped model whose SimCC outputs put person i of a batch at keypoints[i % P] (crop pixels).

    keypoints (P, K, 2) must lie on the 0.5 px SimCC grid; each bin row is one-hot with the point's score.
    """
    bins = np.rint(keypoints * 2).astype(np.int64)  # SimCC split ratio 2
    batch = "batch" if dynamic_batch else 1
    initializers = [
        numpy_helper.from_array(bins[..., 0:1], "x_bins"),
        numpy_helper.from_array(bins[..., 1:2], "y_bins"),
        numpy_helper.from_array(scores[..., None].astype(np.float32), "scores"),
        numpy_helper.from_array(np.arange(width * 2, dtype=np.int64), "x_range"),
        numpy_helper.from_array(np.arange(height * 2, dtype=np.int64), "y_range"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([len(keypoints)], np.int64), "templates"),
        numpy_helper.from_array(np.array(0, np.int64), "start"),
        numpy_helper.from_array(np.array(1, np.int64), "step"),
    ]
    nodes = [
        helper.make_node("Shape", ["input"], ["input_shape"]),
        helper.make_node("Gather", ["input_shape", "zero"], ["batch_size"]),
        helper.make_node("Squeeze", ["batch_size"], ["batch_scalar"]),
        helper.make_node("Range", ["start", "batch_scalar", "step"], ["people"]),
        helper.make_node("Mod", ["people", "templates"], ["template_of_person"]),
    ]
    for axis in ("x", "y"):
        nodes += [
            helper.make_node("Equal", [f"{axis}_range", f"{axis}_bins"], [f"{axis}_hot"]),
            helper.make_node("Cast", [f"{axis}_hot"], [f"{axis}_float"], to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{axis}_float", "scores"], [f"{axis}_scored"]),
            helper.make_node("Gather", [f"{axis}_scored", "template_of_person"], [f"simcc_{axis}"], axis=0),
        ]
    points = keypoints.shape[1]
    return _model(
        nodes,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, height, width])],
        [
            helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [batch, points, width * 2]),
            helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [batch, points, height * 2]),
        ],
        initializers,
        "simcc_pose",
    )


def content_box_detector(size: int = DETECTOR_SIZE, classes: int = COCO_CLASSES) -> onnx.ModelProto:
    """A YOLOX-shaped detector reporting one person box standing in the middle of the image's content.

    The content is what is not letterbox fill (114): the box is 90 % of the content height, half as wide
    (at most 90 % of the content width), centred, and written into the first stride-32 anchor.
    """
    anchors = sum((size // stride) ** 2 for stride in ANCHOR_STRIDES)
    box_anchor = anchors - (size // ANCHOR_STRIDES[-1]) ** 2  # grid cell (0, 0) of the stride-32 head
    stride = float(ANCHOR_STRIDES[-1])
    constants = {
        "fill": np.array(114.0, np.float32),
        "half": np.array(0.5, np.float32),
        "one": np.array(1.0, np.float32),
        "most": np.array(0.9, np.float32),
        "stride": np.array(stride, np.float32),
        "scores": np.ones(2, np.float32),  # objectness and person
        "other_classes": np.zeros(classes - 1, np.float32),
        "before_shape": np.array([1, box_anchor, BOX_VALUES + classes], np.int64),
        "after_shape": np.array([1, anchors - box_anchor - 1, BOX_VALUES + classes], np.int64),
        "row_shape": np.array([1, 1, BOX_VALUES + classes], np.int64),
    }
    initializers = [numpy_helper.from_array(value, name) for name, value in constants.items()]
    nodes = [
        helper.make_node("Sub", ["images", "fill"], ["centred"]),
        helper.make_node("Abs", ["centred"], ["distance"]),
    ]
    for axis, reduce_axes in (("w", [0, 1, 2]), ("h", [0, 1, 3])):
        nodes += [  # a column (row) is content if any of its pixels differs from the fill
            helper.make_node("ReduceMax", ["distance"], [f"{axis}_profile"], axes=reduce_axes, keepdims=0),
            helper.make_node("Greater", [f"{axis}_profile", "half"], [f"{axis}_is_content"]),
            helper.make_node("Cast", [f"{axis}_is_content"], [f"{axis}_flags"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", [f"{axis}_flags"], [f"{axis}_count"], keepdims=1),
            helper.make_node("Max", [f"{axis}_count", "one"], [f"content_{axis}"]),
        ]
    nodes += [
        helper.make_node("Mul", ["content_w", "half"], ["center_x"]),
        helper.make_node("Mul", ["content_h", "half"], ["center_y"]),
        helper.make_node("Mul", ["content_h", "most"], ["box_h"]),
        helper.make_node("Mul", ["box_h", "half"], ["slim_w"]),
        helper.make_node("Mul", ["content_w", "most"], ["max_w"]),
        helper.make_node("Min", ["slim_w", "max_w"], ["box_w"]),
    ]
    for value in ("center_x", "center_y", "box_w", "box_h"):
        nodes.append(helper.make_node("Div", [value, "stride"], [f"{value}_cells"]))
    nodes += [
        helper.make_node("Log", ["box_w_cells"], ["log_w"]),
        helper.make_node("Log", ["box_h_cells"], ["log_h"]),
        helper.make_node(
            "Concat",
            ["center_x_cells", "center_y_cells", "log_w", "log_h", "scores", "other_classes"],
            ["row"],
            axis=0,
        ),
        helper.make_node("Reshape", ["row", "row_shape"], ["box_row"]),
        helper.make_node("ConstantOfShape", ["before_shape"], ["before"]),
        helper.make_node("ConstantOfShape", ["after_shape"], ["after"]),
        helper.make_node("Concat", ["before", "box_row", "after"], ["output"], axis=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, anchors, BOX_VALUES + classes])],
        initializers,
        "content_box_detector",
    )


def ensure_tiny_models(folder: Path, detector_file: str, pose_file: str) -> Path:
    """Generate the stand-in pair into `folder` once (they are deterministic, so any copy is the same)."""
    folder.mkdir(parents=True, exist_ok=True)
    builders = {
        detector_file: content_box_detector,
        pose_file: lambda: simcc_pose_model(
            standing_template()[None], np.full((1, len(standing_template())), TEMPLATE_SCORE, np.float32)
        ),
    }
    for name, build in builders.items():
        if not (folder / name).is_file():
            _save(build(), folder / name)
    return folder
