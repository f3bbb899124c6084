"""`python -m pipelines.generation` and `benchmarks/bench_generate.py`, run as a user would (subprocesses,
tiny preset, tiny sizes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pipelines.generation.__main__ as cli
from benchmarks.bench_generate import random_sdxl
from pipelines.generation import PNG_TEXT_KEY, Photo
from pipelines.pose import PoseResult, draw_pose, to_openpose_json
from tests.pose_samples import SAMPLE_PHOTO, needs_sample_photo, standing_crop

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pose() -> PoseResult:
    return standing_crop()


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.smoke
def test_cli_writes_pngs_with_parameters_and_result_json(pose, tmp_path):
    pose_file = tmp_path / "pose.json"
    pose_file.write_text(json.dumps(to_openpose_json(pose)))
    out = tmp_path / "out"
    done = run_module(
        "-m", "pipelines.generation", "--pose", str(pose_file), "--prompt", "a dancer", "--preset", "tiny",
        "--width", "64", "--height", "64", "--num-inference-steps", "2", "--samples", "2", "--seed", "21",
        "--scheduler", "DDIM", "--negative-prompt", "blurry", "--no-thick-lines", "--out", str(out),
        "--draw-mode", "full-pose", "--control-guidance-start", "0.25",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "result.json").read_text())
    assert saved["seeds"] == [21, 22]
    assert saved["parameters"]["scheduler"] == "DDIM" and saved["parameters"]["thick_lines"] is False
    assert set(saved["timings"]) == {"pose", "denoise", "decode", "total"}
    first = Image.open(out / saved["images"][0])
    assert first.size == (64, 64)
    text = first.text[PNG_TEXT_KEY]
    assert text.splitlines() == [
        "a dancer",
        "Negative prompt: blurry",
        "Steps: 2, Sampler: DDIM, CFG scale: 7.5, Seed: 21, Size: 64x64, Model: tiny, "
        'ControlNet 0: "Module: dw_openpose_full, Model: tiny, Weight: 1.0, Guidance Start: 0.25, '
        'Guidance End: 1.0", Pose mode: full-pose, Pose thick lines: False, Version: pose-studio',
    ]
    assert "Seed: 22," in Image.open(out / saved["images"][1]).text[PNG_TEXT_KEY]
    assert saved["pose"] == "pose.json"
    assert json.loads((out / "pose.json").read_text()) == json.loads(
        json.dumps(to_openpose_json(pose.fit_to(64, 64)))
    )


def test_draw_mode_flag_takes_only_the_pose_modes(capsys):
    args = cli.build_parser().parse_args(["--draw-mode", "hand-pose", "--control-guidance-start", "0.5"])
    assert (args.draw_mode, args.control_guidance_start, args.control_guidance_end) == ("hand-pose", 0.5, 1.0)
    with pytest.raises(SystemExit) as exit_info:
        cli.build_parser().parse_args(["--draw-mode", "face-mask"])
    assert exit_info.value.code == 2
    assert "argument --draw-mode: invalid choice: 'face-mask'" in capsys.readouterr().err


def test_cli_reports_a_bad_request_as_an_error(pose, tmp_path, capsys):
    pose_file = tmp_path / "pose.json"
    pose_file.write_text(json.dumps(to_openpose_json(pose)))
    argv = ["--pose", str(pose_file), "--prompt", "x", "--preset", "tiny", "--samples", "9"]
    assert cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    assert "error: samples must be an integer between 1 and 4 (got 9)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@needs_sample_photo
def test_pose_files_are_read_as_json_skeleton_or_photo(pose, tmp_path):
    skeleton_file = tmp_path / "skeleton.png"
    skeleton = draw_pose(pose)
    Image.fromarray(skeleton).save(skeleton_file)
    assert np.array_equal(cli.load_pose(skeleton_file, "auto", 10**8), skeleton)
    photo = cli.load_pose(SAMPLE_PHOTO, "auto", 10**8)
    assert isinstance(photo, Photo) and photo.image.shape == (259, 194, 3)
    assert isinstance(cli.load_pose(skeleton_file, "photo", 10**8), Photo)
    json_file = tmp_path / "pose.json"
    json_file.write_text(json.dumps(to_openpose_json(pose)))
    assert cli.load_pose(json_file, "auto", 10**8) == pose


def test_every_request_field_is_a_flag():
    flags = {action.dest for action in cli.build_parser()._actions}
    assert {
        "prompt",
        "negative_prompt",
        "samples",
        "scheduler",
        "num_inference_steps",
        "guidance_scale",
    } <= flags
    assert {
        "controlnet_scale",
        "seed",
        "width",
        "height",
        "control_guidance_start",
        "control_guidance_end",
    } <= flags
    assert {"draw_mode", "thick_lines", "preset", "base_model", "device", "dtype", "cpu_offload"} <= flags
    assert not {"include_hands", "include_face"} & flags


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--x-axis", "seed", "--x-values", "1, 2"], "--pose is required"),
        (["--pose", "p.json", "--x-axis", "seed", "--x-values", "1", "--y-axis", "seed"], "go together"),
    ],
)
def test_sweep_subcommand_usage_errors_exit_2_with_the_reason(arguments, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sweep", *arguments])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "usage: python -m pipelines.generation sweep" in error and message in error


def test_benchmark_quick_run_writes_its_json(tmp_path):
    done = run_module("-m", "benchmarks.bench_generate", "--quick", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "generate_cpu_quick.json").read_text())
    assert report["device_type"] == "cpu" and report["plan"]["preset"] == "tiny"
    assert [result["samples"] for result in report["results"]] == [1, 2]
    for result in report["results"]:
        assert result["median_total_s"] >= result["median_denoise_s"] > 0
        assert result["ms_per_step"] == pytest.approx(1000 * result["median_denoise_s"] / 2, rel=0.01)


def test_benchmark_builds_full_size_sdxl_from_the_real_configs():
    """On the meta device (no memory): the parameter counts of the published SDXL models."""
    pipeline = random_sdxl(torch.device("meta"), torch.float16)
    counts = {
        name: sum(parameter.numel() for parameter in getattr(pipeline, name).parameters())
        for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2")
    }
    assert counts == {
        "unet": 2_567_463_684,
        "controlnet": 1_251_014_160,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    }
