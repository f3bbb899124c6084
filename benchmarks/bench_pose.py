"""Pose engine timings: the pipeline's own work on one CPU core with zero-cost models, and, when real
DWPose files and a GPU are present, the full per-image latency.

    .venv/bin/python -m benchmarks.bench_pose [--repeats 50] [--out benchmarks/results]

Zero-cost models: the test models (real names and shapes, known outputs) are run once through
onnxruntime and their outputs replayed, so the figures are letterbox + decode + NMS + crops + SimCC decode
+ OpenPose conversion + drawing, with no inference in them.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import timeit
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from pipelines.images import load_image
from pipelines.pose import DrawMode, draw_conditioning, draw_pose
from pipelines.pose.detector import PersonDetector, decode_person_boxes, letterbox_top_left
from pipelines.pose.estimator import (
    PoseEstimator,
    PoseModels,
    WholeBodyModel,
    box_center_scale,
    crop_people,
    decode_simcc,
)
from pipelines.pose.models import CUDA, DETECTOR_FILE, POSE_FILE, create_session
from pipelines.pose.tiny import TEMPLATE_SCORE, standing_template
from pipelines.settings import Settings
from tests.onnx_builders import box_detector, simcc_pose_model, write_models

ROOT = Path(__file__).resolve().parents[1]
SIZE = 1024
SAMPLE = ROOT.parent / "shared/data/pose_sample.jpg"


class ReplaySession:
    """A model that costs nothing: the real session's signature, and outputs recorded from one real run."""

    def __init__(self, session: ort.InferenceSession, feeds: dict[str, np.ndarray]) -> None:
        self.get_inputs, self.get_outputs = session.get_inputs, session.get_outputs
        self.outputs = session.run(None, feeds)

    def run(self, _names, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        batch = next(iter(feeds.values())).shape[0]
        return [output[:batch] for output in self.outputs]


def _people_models(folder: Path, people: int) -> PoseModels:
    """Zero-cost models that find `people` standing figures side by side in a 1024x1024 image."""
    ratio = 640 / SIZE
    boxes = np.array([[20 + 200 * i, 300, 200 + 200 * i, 780] for i in range(people)], np.float32)
    template = standing_template()
    keypoints = np.stack([template + np.array([3.0 * i, 0.0]) for i in range(people)])
    scores = np.full(keypoints.shape[:2], TEMPLATE_SCORE, np.float32)
    write_models(
        folder,
        box_detector(boxes * ratio, [0.9 - 0.05 * i for i in range(people)]),
        simcc_pose_model(keypoints, scores),
    )
    detector_session = create_session(folder / DETECTOR_FILE, "cpu")
    pose_session = create_session(folder / POSE_FILE, "cpu")
    detector = PersonDetector(
        ReplaySession(detector_session, {"images": np.zeros((1, 3, 640, 640), np.float32)}), DETECTOR_FILE
    )
    wholebody = WholeBodyModel(
        ReplaySession(pose_session, {"input": np.zeros((people, 3, 384, 288), np.float32)}), POSE_FILE
    )
    return PoseModels(detector=detector, wholebody=wholebody, providers={"replay": ["replay"]})


def _best_ms(work: Callable[[], object], repeats: int) -> float:
    """Best of 5 rounds of the mean over `repeats` calls (timeit's convention: the machine is shared)."""
    work()  # warm caches
    rounds = timeit.repeat(work, number=repeats, repeat=5)
    return round(min(rounds) / repeats * 1000, 3)


def _own_work(people: int, repeats: int, folder: Path) -> dict[str, float]:
    models = _people_models(folder / f"people-{people}", people)
    estimator = PoseEstimator(lambda: models, is_stand_in=True)
    image = np.random.default_rng(0).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    result = estimator.detect(image)
    assert len(result.people) == people, len(result.people)
    _, ratio = letterbox_top_left(image, 640, 640)
    raw = models.detector.session.outputs[0][0]
    boxes = decode_person_boxes(raw, ratio, 640, 640)
    centers, scales = box_center_scale(boxes, 288 / 384)
    simcc_x, simcc_y = models.wholebody.session.outputs
    figures = {
        "detect_total": _best_ms(lambda: estimator.detect(image), repeats),
        "letterbox": _best_ms(lambda: letterbox_top_left(image, 640, 640), repeats),
        "yolox_decode_nms": _best_ms(lambda: decode_person_boxes(raw, ratio, 640, 640), repeats),
        "crops": _best_ms(lambda: crop_people(image, centers, scales, 288, 384), repeats),
        "simcc_decode": _best_ms(lambda: decode_simcc(simcc_x, simcc_y), repeats),
    }
    for mode in DrawMode:
        figures[f"draw_{mode.value}"] = _best_ms(lambda mode=mode: draw_pose(result, mode), repeats)
    figures["draw_conditioning_full"] = _best_ms(
        lambda: draw_conditioning(result, (SIZE, SIZE), "full-pose"), repeats
    )
    figures["own_work_detect_plus_body_pose"] = round(figures["detect_total"] + figures["draw_body-pose"], 3)
    return figures


def _real_models_on_gpu(repeats: int) -> dict:
    """Full latency with the real files on a GPU, or why it was skipped."""
    if CUDA not in ort.get_available_providers():
        return {"skipped": "onnxruntime has no CUDAExecutionProvider on this machine"}
    settings = Settings.from_env().replace(pose_models="dwpose", pose_device="cuda")
    if not settings.dwpose_dir:
        from huggingface_hub import try_to_load_from_cache

        if not all(
            isinstance(try_to_load_from_cache(settings.dwpose_repo, name), str)
            for name in (DETECTOR_FILE, POSE_FILE)
        ):
            return {"skipped": "real DWPose files are neither in POSE_STUDIO_DWPOSE_DIR nor in the HF cache"}
    if not SAMPLE.is_file():
        return {"skipped": f"{SAMPLE} is missing"}
    estimator = PoseEstimator.from_settings(settings)
    image = load_image(SAMPLE)
    image = cv2.resize(image, (SIZE, SIZE))
    return {
        "providers": estimator.providers,
        "detect_1024_ms": _best_ms(lambda: estimator.detect(image), repeats),
        "people": len(estimator.detect(image).people),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # one core: numpy's element-wise work is single-threaded already
    with tempfile.TemporaryDirectory() as folder:
        report = {
            "machine": {
                "cpu": platform.processor() or platform.machine(),
                "python": platform.python_version(),
                "threads": 1,
                "onnxruntime": ort.__version__,
                "opencv": cv2.__version__,
            },
            "image": f"{SIZE}x{SIZE}",
            "unit": "ms per call, best of 5 rounds",
            "own_work": {
                f"{people}_people": _own_work(people, args.repeats, Path(folder)) for people in (1, 5)
            },
            "real_models_gpu": _real_models_on_gpu(args.repeats),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pose_cpu.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = report["own_work"]
    print("| stage | 1 person | 5 people |\n|---|---:|---:|")
    for stage in rows["1_people"]:
        print(f"| {stage} | {rows['1_people'][stage]:.2f} | {rows['5_people'][stage]:.2f} |")
    print("real models + GPU:", report["real_models_gpu"])


if __name__ == "__main__":
    main()
