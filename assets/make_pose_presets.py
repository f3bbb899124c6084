"""Write the pose presets under assets/poses/ as OpenPose JSON: `python assets/make_pose_presets.py`.

Each preset is a table of bone angles turned into keypoints by forward kinematics on one fixed set of body
proportions, so every pose has consistent limb lengths; hands and face are laid out from the wrists and the
head so all seven draw modes have something to show without a photo.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

POSES_DIR = Path(__file__).resolve().parent / "poses"
MARGIN = 0.08  # fraction of the canvas left free around the figure

# Body proportions in pixels of a ~900 px tall figure.
SHOULDER_HALF_WIDTH = 80.0
HIP_HALF_WIDTH = 45.0
TORSO = 270.0  # neck to hips
UPPER_ARM, FOREARM, THIGH, SHIN = 140.0, 130.0, 200.0, 195.0
NOSE_ABOVE_NECK = 85.0
EYE_OFFSET, EAR_OFFSET = (18.0, -12.0), (40.0, -2.0)  # (x, y) from the nose, mirrored left/right
HAND_SIZE = 85.0

# Bone angles in degrees: 0 points straight down the image, +90 towards image right (the person's left).
# A (angle, length scale) pair foreshortens a bone that points at the camera. Right limbs are on image left.
POSES: dict[str, dict] = {
    "standing": {
        "canvas": (896, 1152),
        "right_arm": ((-12, 1), (-6, 1)),
        "left_arm": ((12, 1), (6, 1)),
        "right_leg": ((-3, 1), (-1, 1)),
        "left_leg": ((3, 1), (1, 1)),
    },
    "t-pose": {
        "canvas": (1152, 896),
        "right_arm": ((-90, 1), (-90, 1)),
        "left_arm": ((90, 1), (90, 1)),
        "right_leg": ((-4, 1), (-2, 1)),
        "left_leg": ((4, 1), (2, 1)),
    },
    "arms-raised": {
        "canvas": (896, 1152),
        "right_arm": ((-145, 1), (-170, 1)),
        "left_arm": ((145, 1), (170, 1)),
        "right_leg": ((-8, 1), (-3, 1)),
        "left_leg": ((8, 1), (3, 1)),
    },
    "walking": {
        "canvas": (896, 1152),
        "right_arm": ((14, 0.9), (-4, 0.8)),
        "left_arm": ((6, 1), (28, 1)),
        "right_leg": ((-2, 0.95), (-6, 1)),
        "left_leg": ((10, 0.9), (-12, 0.9)),
    },
    "sitting": {
        "canvas": (1024, 1024),
        "right_arm": ((-14, 1), (35, 0.7)),
        "left_arm": ((14, 1), (-35, 0.7)),
        "right_leg": ((-25, 0.35), (-2, 1)),
        "left_leg": ((25, 0.35), (2, 1)),
    },
    "hands-on-hips": {
        "canvas": (896, 1152),
        "right_arm": ((-45, 1), (55, 0.8)),
        "left_arm": ((45, 1), (-55, 0.8)),
        "right_leg": ((-7, 1), (-2, 1)),
        "left_leg": ((7, 1), (2, 1)),
    },
}

# Finger base angles (degrees from the forearm direction, towards the thumb side) and phalanx fractions of
# HAND_SIZE for the 21 OpenPose hand points: wrist, then thumb, index, middle, ring, pinky (4 points each).
FINGERS = (
    (55, (0.25, 0.22, 0.18, 0.16)),
    (18, (0.55, 0.2, 0.14, 0.12)),
    (3, (0.55, 0.23, 0.15, 0.12)),
    (-11, (0.52, 0.21, 0.14, 0.11)),
    (-25, (0.48, 0.16, 0.11, 0.1)),
)
FINGER_CURL = 8.0  # degrees each joint turns further from the base direction


def _direction(angle_degrees: float) -> np.ndarray:
    radians = math.radians(angle_degrees)
    return np.array([math.sin(radians), math.cos(radians)])


def _limb(start: np.ndarray, bones: tuple, lengths: tuple[float, float]) -> list[np.ndarray]:
    (first_angle, first_scale), (second_angle, second_scale) = bones
    middle = start + _direction(first_angle) * lengths[0] * first_scale
    return [middle, middle + _direction(second_angle) * lengths[1] * second_scale]


def _body(pose: dict) -> np.ndarray:
    """The 18 OpenPose body points (x, y) in figure coordinates, neck at the origin."""
    neck = np.zeros(2)
    nose = np.array([0, -NOSE_ABOVE_NECK])
    right_shoulder, left_shoulder = np.array([-SHOULDER_HALF_WIDTH, 8]), np.array([SHOULDER_HALF_WIDTH, 8])
    right_hip, left_hip = np.array([-HIP_HALF_WIDTH, TORSO]), np.array([HIP_HALF_WIDTH, TORSO])
    right_elbow, right_wrist = _limb(right_shoulder, pose["right_arm"], (UPPER_ARM, FOREARM))
    left_elbow, left_wrist = _limb(left_shoulder, pose["left_arm"], (UPPER_ARM, FOREARM))
    right_knee, right_ankle = _limb(right_hip, pose["right_leg"], (THIGH, SHIN))
    left_knee, left_ankle = _limb(left_hip, pose["left_leg"], (THIGH, SHIN))
    mirror = np.array([-1.0, 1.0])
    return np.array(
        [
            nose,
            neck,
            right_shoulder,
            right_elbow,
            right_wrist,
            left_shoulder,
            left_elbow,
            left_wrist,
            right_hip,
            right_knee,
            right_ankle,
            left_hip,
            left_knee,
            left_ankle,
            nose + np.array(EYE_OFFSET) * mirror,
            nose + EYE_OFFSET,
            nose + np.array(EAR_OFFSET) * mirror,
            nose + EAR_OFFSET,
        ]
    )


def _hand(elbow: np.ndarray, wrist: np.ndarray, thumb_side: float) -> np.ndarray:
    """21 hand points continuing the forearm; thumb_side is +1 or -1 to mirror the thumb across it."""
    forearm = wrist - elbow
    base_angle = math.degrees(math.atan2(forearm[0], forearm[1]))
    points = [wrist]
    for spread, phalanges in FINGERS:
        joint = wrist
        for index, fraction in enumerate(phalanges):
            angle = base_angle + thumb_side * (spread + FINGER_CURL * index * (1 if spread > 40 else -1))
            joint = joint + _direction(angle) * fraction * HAND_SIZE
            points.append(joint)
    return np.array(points)


def _ellipse(centre: tuple[float, float], radii: tuple[float, float], count: int, start: float, end: float):
    angles = np.linspace(start, end, count)
    return np.stack([centre[0] + radii[0] * np.cos(angles), centre[1] + radii[1] * np.sin(angles)], axis=1)


def _face_layout() -> np.ndarray:
    """The 68-point iBUG layout on a unit face: x in [-1, 1] left to right, y in [-1, 1] top to bottom."""
    jaw = _ellipse((0, 0.05), (0.95, 0.95), 17, math.pi, 0)
    jaw[:, 0] *= -1  # the jaw runs from the image-left ear down round the chin to the image-right ear
    brows = [np.stack([np.linspace(a, b, 5), -0.45 - 0.08 * np.sin(np.linspace(0, math.pi, 5))], 1)
             for a, b in ((-0.75, -0.15), (0.15, 0.75))]  # fmt: skip
    bridge = np.stack([np.zeros(4), np.linspace(-0.3, 0.12, 4)], axis=1)
    nostrils = np.stack([np.linspace(-0.2, 0.2, 5), 0.25 + 0.04 * np.abs(np.linspace(-1, 1, 5))], axis=1)
    eyes = [_ellipse((x, -0.25), (0.16, 0.07), 7, math.pi, 3 * math.pi)[:6] for x in (-0.4, 0.4)]
    outer_mouth = _ellipse((0, 0.55), (0.36, 0.13), 13, math.pi, 3 * math.pi)[:12]
    inner_mouth = _ellipse((0, 0.55), (0.25, 0.05), 9, math.pi, 3 * math.pi)[:8]
    return np.concatenate([jaw, *brows, bridge, nostrils, *eyes, outer_mouth, inner_mouth])


def _face(body: np.ndarray) -> np.ndarray:
    nose, right_ear, left_ear = body[0], body[16], body[17]
    half_width = abs(left_ear[0] - right_ear[0]) / 2 * 0.95
    radii = np.array([half_width, half_width * 1.3])
    centre = nose - np.array([0, 0.2]) * radii
    return centre + _face_layout() * radii


def _fit(parts: list[np.ndarray], canvas: tuple[int, int]) -> list[np.ndarray]:
    """Scale and centre the whole figure into the canvas, keeping its proportions."""
    points = np.concatenate(parts)
    low, high = points.min(axis=0), points.max(axis=0)
    usable = np.array(canvas) * (1 - 2 * MARGIN)
    scale = float(np.min(usable / (high - low)))
    offset = (np.array(canvas) - (high - low) * scale) / 2 - low * scale
    return [part * scale + offset for part in parts]


def _openpose_values(points: np.ndarray) -> list[float]:
    with_scores = np.concatenate([np.round(points, 1), np.ones((len(points), 1))], axis=1)
    return [float(value) for value in with_scores.ravel()]


def preset(name: str) -> dict:
    """One preset as OpenPose JSON (pixel coordinates, every point visible)."""
    pose = POSES[name]
    body = _body(pose)
    right_hand = _hand(body[3], body[4], thumb_side=-1.0)
    left_hand = _hand(body[6], body[7], thumb_side=1.0)
    body, face, left_hand, right_hand = _fit([body, _face(body), left_hand, right_hand], pose["canvas"])
    return {
        "canvas_width": pose["canvas"][0],
        "canvas_height": pose["canvas"][1],
        "people": [
            {
                "pose_keypoints_2d": _openpose_values(body),
                "face_keypoints_2d": _openpose_values(face),
                "hand_left_keypoints_2d": _openpose_values(left_hand),
                "hand_right_keypoints_2d": _openpose_values(right_hand),
            }
        ],
    }


def main() -> None:
    POSES_DIR.mkdir(exist_ok=True)
    for name in POSES:
        path = POSES_DIR / f"{name}.json"
        path.write_text(json.dumps(preset(name), separators=(",", ":")) + "\n")
        print(path)


if __name__ == "__main__":
    main()
