"""Peak memory of the pose command line and of the pipelines' app path, on an image at the pixel cap and on
a pose JSON with a huge canvas, each case in its own subprocess (peak RSS from the kernel via `wait4`).

    .venv/bin/python -m benchmarks.bench_memory [--side 6300] [--out benchmarks/results/memory_cpu.json]

Cases (tiny stand-in pose models: inference is a few MB, so what is measured is the image handling):
- detect_640 / detect_<side>: `python -m pipelines.pose detect IMAGE --models tiny --json`. The goal: the big
  image costs at most about three copies of itself (<= 450 MB for 40 MP) more than the 640² run.
- app_path_640 / app_path_<side>: what the app does with an upload, through pipelines functions: decode,
  detect, a display-size copy (POSE_STUDIO_DISPLAY_MAX_SIDE), the overlay and the pose drawn at that size.
- render_canvas_*: `python -m pipelines.pose render` of a ~100-byte pose JSON whose canvas is 1024², 6000²
  (drawn at --width/--height 1024: only the output size is allocated) or 20000² (refused by the pixel cap).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINE_SIDE = 640

APP_PATH = """
import sys
from pipelines.images import display_copy, load_image
from pipelines.pose import PoseEstimator, draw_overlay, draw_pose
from pipelines.settings import Settings
settings = Settings.from_env()
estimator = PoseEstimator.from_settings(settings.replace(pose_models="tiny"))
image = load_image(sys.argv[1])
pose = estimator.detect(image)
shown = display_copy(image, settings.display_max_side)
del image
overlay = draw_overlay(shown, pose, "full-pose")
drawing = draw_pose(pose, "body-pose", size=(shown.shape[1], shown.shape[0]))
print(len(pose.people), overlay.shape, drawing.shape)
"""


def photo_like(side: int) -> np.ndarray:
    """A flat background with a dark standing figure: compresses to ~100 KB as PNG even at 6300²."""
    image = np.full((side, side, 3), (205, 200, 190), np.uint8)
    unit = side / 100
    centre = side // 2
    color = (40, 50, 70)
    cv2.circle(image, (centre, int(20 * unit)), int(6 * unit), color, -1)  # head
    cv2.line(image, (centre, int(26 * unit)), (centre, int(60 * unit)), color, int(5 * unit))  # torso
    for dx, top, bottom in ((-15, 30, 45), (15, 30, 45), (-10, 60, 90), (10, 60, 90)):  # arms and legs
        start = (centre, int(top * unit))
        cv2.line(image, start, (centre + int(dx * unit), int(bottom * unit)), color, int(3 * unit))
    return image


# Runs the case and prints its peak RSS. A child's peak counts the memory of the process it was forked from
# (Linux keeps the pre-exec high-water mark), so cases start from this small interpreter, not from the
# benchmark process holding the test images.
MEASURE = """
import resource, subprocess, sys
done = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
lines = done.stdout.strip().splitlines()
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, done.returncode)
print(lines[-1] if lines else "")
"""


def peak_rss(command: list[str]) -> dict:
    """Run `command`; its peak resident set (MB, from the kernel), wall time, exit code and last line."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", MEASURE, *command], cwd=ROOT, capture_output=True, text=True)
    usage, last_line = [*done.stdout.splitlines(), ""][:2]
    max_rss_kb, exit_code = map(int, usage.split())
    return {
        "peak_rss_mb": round(max_rss_kb / 1024, 1),  # Linux reports kB
        "seconds": round(time.perf_counter() - started, 2),
        "exit_code": exit_code,
        "last_line": last_line,
    }


def pose_json(folder: Path, side: int) -> Path:
    path = folder / f"canvas-{side}.json"
    body = [side / 2, side / 4, 1.0, side / 2, side / 3, 1.0] + [0.0] * 48
    path.write_text(
        json.dumps({"canvas_width": side, "canvas_height": side, "people": [{"pose_keypoints_2d": body}]})
    )
    return path


def run(side: int) -> dict:
    python = sys.executable
    cases: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        env_cache = {"POSE_STUDIO_CACHE_DIR": str(folder / "cache")}
        os.environ.update(env_cache)
        images = {}
        for size in (BASELINE_SIDE, side):
            path = folder / f"photo-{size}.png"
            cv2.imwrite(str(path), cv2.cvtColor(photo_like(size), cv2.COLOR_RGB2BGR))
            images[size] = path
        # The tiny models are generated on first use: once here, so no case pays for it.
        warm = [python, "-m", "pipelines.pose", "detect", str(images[BASELINE_SIDE]), "--models", "tiny"]
        subprocess.run([*warm, "--out", str(folder / "warm")], cwd=ROOT, check=True, capture_output=True)
        for size, path in images.items():
            cases[f"detect_{size}"] = {
                "png_kb": round(path.stat().st_size / 1024, 1),
                **peak_rss(
                    [
                        python,
                        "-m",
                        "pipelines.pose",
                        "detect",
                        str(path),
                        "--models",
                        "tiny",
                        "--json",
                        "--out",
                        str(folder / f"out-{size}"),
                    ]
                ),
            }
            cases[f"app_path_{size}"] = peak_rss([python, "-c", APP_PATH, str(path)])
        for canvas, size_flags in ((1024, []), (6000, ["--width", "1024", "--height", "1024"]), (20000, [])):
            path = pose_json(folder, canvas)
            cases[f"render_canvas_{canvas}" + ("_at_1024" if size_flags else "")] = {
                "json_bytes": path.stat().st_size,
                **peak_rss(
                    [
                        python,
                        "-m",
                        "pipelines.pose",
                        "render",
                        str(path),
                        "--mode",
                        "body-pose",
                        *size_flags,
                        "--out",
                        str(folder / f"render-{canvas}.png"),
                    ]
                ),
            }
    copy_mb = side * side * 3 / 2**20
    extra = {
        "detect": cases[f"detect_{side}"]["peak_rss_mb"] - cases[f"detect_{BASELINE_SIDE}"]["peak_rss_mb"],
        "app_path": cases[f"app_path_{side}"]["peak_rss_mb"]
        - cases[f"app_path_{BASELINE_SIDE}"]["peak_rss_mb"],
    }
    return {
        "side": side,
        "megapixels": round(side * side / 1e6, 1),
        "rgb_copy_mb": round(copy_mb, 1),
        "cases": cases,
        "extra_peak_mb_over_640": {name: round(value, 1) for name, value in extra.items()},
        "extra_peak_in_rgb_copies": {name: round(value / copy_mb, 2) for name, value in extra.items()},
        "machine": {
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "load": os.getloadavg(),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=6300, help="the big image is side x side (6300: 39.7 MP)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/memory_cpu.json")
    args = parser.parse_args()
    report = run(args.side)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
