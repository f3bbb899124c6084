"""Issue 10, the command lines: a bad file is one `error:` line, never a traceback, and `detect` carries on
with the next file; the tiny generation preset implies the tiny pose models, as in the app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import pipelines.generation.__main__ as cli
from tests.test_hostile_inputs import SHORT_IHDR_PNG, _tiff_with_rational_length

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "POSE_STUDIO_CACHE_DIR": str(tmp_path / "cache"), **env}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )


def test_detect_reports_each_bad_file_in_one_line_and_processes_the_rest(tmp_path):
    first, thin, last = tmp_path / "first.png", tmp_path / "thin.png", tmp_path / "last.png"
    Image.new("RGB", (120, 160), (90, 60, 30)).save(first)
    Image.new("RGB", (1, 641), (90, 60, 30)).save(thin)  # used to crash cv2.resize
    Image.new("RGB", (160, 120), (90, 60, 30)).save(last)
    ihdr, tiff = tmp_path / "ihdr.png", tmp_path / "rational.tif"
    ihdr.write_bytes(SHORT_IHDR_PNG)
    tiff.write_bytes(_tiff_with_rational_length())
    folder = tmp_path / "a-folder.png"
    folder.mkdir()
    files = [first, ihdr, thin, tiff, tmp_path / "missing.jpg", folder, last]
    out = tmp_path / "out"
    done = _run(
        "pipelines.pose", "detect", *map(str, files), "--models", "tiny", "--json", "--out", str(out),
        tmp_path=tmp_path,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {ihdr}: 'ihdr.png' is truncated and could not be read (Truncated IHDR chunk).",
        f"error: {tiff}: 'rational.tif' is corrupt and could not be read (Invalid dimensions).",
        f"error: {tmp_path / 'missing.jpg'}: 'missing.jpg' does not exist.",
        f"error: {folder}: 'a-folder.png' is a folder, not an image file.",
    ]
    assert done.stdout.splitlines() == [
        f"{path}: 1 person -> {out / (path.stem + '.png')}" for path in (first, thin, last)
    ]
    assert np.asarray(Image.open(out / "thin.png")).shape == (641, 1, 3)
    assert json.loads((out / "thin.json").read_text())["canvas_width"] == 1
    assert sorted(path.name for path in out.iterdir()) == [
        "first.json", "first.png", "last.json", "last.png", "thin.json", "thin.png",
    ]  # fmt: skip


def test_render_refuses_hostile_json_in_one_line(tmp_path):
    cases = {
        "nan.json": ('{"canvas_width":8,"canvas_height":8,"people":[{"pose_keypoints_2d":[NaN]}]}', "NaN"),
        "huge.json": ('{"canvas_width":20000,"canvas_height":20000,"people":[]}', "above the 40 MP limit"),
        "deep.json": ("[" * 5000 + "]" * 5000, "nests 5000 levels deep"),
    }
    for name, (text, reason) in cases.items():
        (tmp_path / name).write_text(text)
        done = _run(
            "pipelines.pose",
            "render",
            str(tmp_path / name),
            "--out",
            str(tmp_path / "x.png"),
            tmp_path=tmp_path,
        )
        assert (done.returncode, "Traceback" in done.stderr) == (2, False)
        assert done.stderr.count("error:") == 1 and reason in done.stderr
    done = _run(
        "pipelines.pose", "render", str(tmp_path / "nan.json"), "--width", "100000", "--height", "100000",
        "--out", str(tmp_path / "x.png"), tmp_path=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: --width x --height is 100000x100000, above the 40 MP limit" in done.stderr
    assert not (tmp_path / "x.png").exists()


def test_tiny_generation_preset_detects_photos_with_the_tiny_pose_models(tmp_path, monkeypatch, capsys):
    """`--preset tiny` with a photo and no --pose-models: any Hub download would fail the run."""
    import huggingface_hub

    def no_download(*args, **kwargs):
        raise AssertionError(f"tried to download {args}")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    monkeypatch.setenv("POSE_STUDIO_CACHE_DIR", str(tmp_path / "cache"))
    photo = tmp_path / "photo.png"
    Image.new("RGB", (96, 128), (90, 60, 30)).save(photo)
    out = tmp_path / "out"
    argv = [
        "--pose", str(photo), "--pose-kind", "photo", "--prompt", "a dancer", "--preset", "tiny",
        "--width", "64", "--height", "64", "--num-inference-steps", "1", "--seed", "3", "--out", str(out),
    ]  # fmt: skip
    assert cli.settings_from(cli.build_parser().parse_args(argv)).pose_models == "tiny"
    assert cli.settings_from(
        cli.build_parser().parse_args([*argv, "--pose-models", "dwpose"])
    ).pose_models == ("dwpose")  # a flag still wins
    assert cli.main(argv) == 0, capsys.readouterr().err
    saved = json.loads((out / "result.json").read_text())
    assert saved["parameters"]["seed"] == 3 and saved["runtime"]["pose_providers"] == (
        "yolox_l.onnx: CPUExecutionProvider, dw-ll_ucoco_384.onnx: CPUExecutionProvider"
    )
    assert sorted(path.name for path in (tmp_path / "cache").rglob("*.onnx")) == [
        "dw-ll_ucoco_384.onnx", "yolox_l.onnx",
    ]  # fmt: skip


def test_generation_cli_refuses_a_missing_or_hostile_pose_file_in_one_line(tmp_path, capsys):
    bad = tmp_path / "pose.json"
    bad.write_text('{"canvas_width":true,"canvas_height":8,"people":[]}')
    cases = {
        bad: "error: canvas_width must be a whole number, got True.",
        tmp_path
        / "no.json": f"error: '{tmp_path / 'no.json'}' could not be read: No such file or directory.",
    }
    for pose, message in cases.items():
        argv = ["--pose", str(pose), "--prompt", "x", "--preset", "tiny", "--out", str(tmp_path / "out")]
        assert cli.main(argv) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == message
