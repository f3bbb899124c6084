"""The `tiny` stand-in: a generated YOLOX + DWPose pair with the real signatures and no weights to download.

The detector boxes the image's content; the pose model lays a fixed standing whole-body figure inside that
box. Everything downstream (crop, SimCC decode, OpenPose conversion, drawing) runs for real, so an offline
demo is readable, but the pose is a placeholder and must be labelled as one.
"""

from __future__ import annotations

import numpy as np

CROP_WIDTH, CROP_HEIGHT = 288, 384  # DWPose-l input; the template lives in this crop's pixels
TEMPLATE_SCORE = 0.9

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
