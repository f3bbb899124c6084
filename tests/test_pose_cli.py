"""`python -m pipelines.pose detect|render` as a person runs it, in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.pose", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "POSE_STUDIO_CACHE_DIR": str(tmp_path / "cache"), **extra}


@pytest.mark.smoke
def test_detect_writes_each_good_image_and_reports_bad_ones_in_one_line(tmp_path):
    good = tmp_path / "walker.png"
    Image.fromarray(np.full((300, 200, 3), 60, np.uint8)).save(good)
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    out = tmp_path / "out"
    done = _run(
        "detect",
        str(bad),
        str(good),
        "--models",
        "tiny",
        "--json",
        "--mode",
        "full-pose",
        "--out",
        str(out),
        env=_env(tmp_path),
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "notes.png" in errors[0] and "not an image" in errors[0]
    assert "stand-in" in done.stderr
    drawn = np.asarray(Image.open(out / "walker.png"))
    assert drawn.shape == (300, 200, 3) and (drawn == 255).all(axis=2).any()  # full-pose: white face dots
    pose = json.loads((out / "walker.json").read_text())
    assert (pose["canvas_width"], pose["canvas_height"]) == (200, 300) and len(pose["people"]) == 1
    assert not (out / "notes.png").exists()


def test_detect_keeps_results_of_images_with_the_same_name_apart(tmp_path):
    sizes = {"a": (120, 90), "b": (90, 120)}  # (width, height)
    for folder, (width, height) in sizes.items():
        (tmp_path / folder).mkdir()
        Image.fromarray(np.full((height, width, 3), 60, np.uint8)).save(tmp_path / folder / "pose.png")
    out = tmp_path / "out"
    inputs = [str(tmp_path / folder / "pose.png") for folder in sizes]
    done = _run("detect", *inputs, "--models", "tiny", "--out", str(out), env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert Image.open(out / "pose.png").size == sizes["a"]
    assert Image.open(out / "pose-2.png").size == sizes["b"]


@pytest.mark.smoke
def test_render_draws_a_saved_pose_at_the_requested_size(tmp_path):
    body = [v for i in range(18) for v in (10.0 + 5 * i, 20.0 + 8 * i, 0.9)]
    pose = tmp_path / "pose.json"
    pose.write_text(
        json.dumps({"canvas_width": 200, "canvas_height": 200, "people": [{"pose_keypoints_2d": body}]})
    )
    out = tmp_path / "drawn" / "pose.png"
    done = _run(
        "render",
        str(pose),
        "--mode",
        "body-pose",
        "--width",
        "400",
        "--height",
        "200",
        "--out",
        str(out),
        env=_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    drawn = np.asarray(Image.open(out))
    assert drawn.shape == (200, 400, 3)
    # Fitted into 400x200: scale 1, shifted right by 100. The nose (10, 20) is red.
    assert tuple(drawn[20, 110]) == (255, 0, 0)


def test_render_rejects_malformed_json_in_one_line(tmp_path):
    pose = tmp_path / "pose.json"
    pose.write_text('{"people": "nope"}')
    done = _run(
        "render", str(pose), "--mode", "body-pose", "--out", str(tmp_path / "x.png"), env=_env(tmp_path)
    )
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and done.stderr.startswith("error:")


def test_missing_weights_offline_name_the_file(tmp_path):
    image = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    env = _env(tmp_path, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), POSE_STUDIO_POSE_MODELS="dwpose")
    env.pop("POSE_STUDIO_DWPOSE_DIR", None)
    done = _run("detect", str(image), "--out", str(tmp_path / "out"), env=env)
    assert done.returncode == 2
    assert "yolox_l.onnx" in done.stderr and "--models-dir" in done.stderr


def test_render_openpose_output_without_a_canvas_uses_the_given_size(tmp_path):
    body_25 = [v for i in range(25) for v in (10.0 + 5 * i, 20.0 + 8 * i, 0.9)]
    pose = tmp_path / "openpose.json"
    pose.write_text(json.dumps({"version": 1.3, "people": [{"pose_keypoints_2d": body_25}]}))
    out = tmp_path / "drawn.png"
    args = ("render", str(pose), "--mode", "body-pose", "--out", str(out))
    done = _run(*args, "--width", "300", "--height", "200", env=_env(tmp_path))
    assert done.returncode == 0, done.stderr
    assert tuple(np.asarray(Image.open(out))[20, 10]) == (255, 0, 0)  # the nose at (10, 20), unshifted
    no_size = _run(*args, env=_env(tmp_path))
    assert no_size.returncode == 0 and "note: The file has no canvas size; using 131x213" in no_size.stderr
    zero = _run(*args, "--width", "0", "--height", "200", env=_env(tmp_path))
    assert zero.returncode == 2 and zero.stderr.startswith("error: --width and --height must be positive")
