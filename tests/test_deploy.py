"""What the deploy files promise, checked against the code: the Space's front matter and preload list, the
requirements files and their floors, the Space's requirements, and the stand-in's scheduler config."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from pipelines.generation.presets import hub_files as generation_hub_files
from pipelines.generation.schedulers import build_scheduler
from pipelines.generation.tiny import SDXL_SCHEDULER_CONFIG
from pipelines.pose.models import hub_files as pose_hub_files
from pipelines.settings import Settings
from scripts.floor_requirements import floors, requirement_lines

REPO = Path(__file__).resolve().parent.parent

# Hugging Face's ZeroGPU docs (huggingface/hub-docs, docs/hub/spaces-zerogpu.md, "Supported Versions").
ZEROGPU_TORCH = ("2.8.0", "2.9.1", "2.10.0", "2.11.0")
ZEROGPU_PYTHON = ("3.10", "3.12")

# stabilityai/stable-diffusion-xl-base-1.0, scheduler/scheduler_config.json, as published (JSON values in
# Python). Copied from public repositories that vendor it (several, found by code search, agree key by key).
SDXL_BASE_SCHEDULER_CONFIG = {
    "_class_name": "EulerDiscreteScheduler",
    "_diffusers_version": "0.19.0.dev0",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "interpolation_type": "linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "sample_max_value": 1.0,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "trained_betas": None,
    "use_karras_sigmas": False,
}


def front_matter() -> dict:
    text = (REPO / "README.md").read_text()
    return yaml.safe_load(text.split("---\n")[1])


def test_preload_from_hub_lists_exactly_the_files_the_loaders_ask_for():
    settings = Settings()  # the Space runs the defaults: the sdxl preset and DWPose from the Hub
    asked = {
        repo: set(files)
        for repo, files in {**generation_hub_files(settings), **pose_hub_files(settings)}.items()
    }
    preloaded = {}
    for entry in front_matter()["preload_from_hub"]:
        repo, files = entry.split(" ")
        preloaded[repo] = set(files.split(","))
    assert preloaded == asked
    assert front_matter()["models"] == list(asked)


def test_no_preload_for_local_folders_or_the_tiny_models(tmp_path):
    local = Settings(base_model=str(tmp_path), dwpose_dir=str(tmp_path), preview_model="", draft_lora="")
    assert set(generation_hub_files(local)) == {local.controlnet_model, local.vae_model}
    folders = Settings(preview_model=str(tmp_path), draft_lora=str(tmp_path))
    assert set(generation_hub_files(folders)) == {
        folders.base_model,
        folders.controlnet_model,
        folders.vae_model,
    }
    assert pose_hub_files(local) == {}
    assert generation_hub_files(Settings(preset="tiny")) == {}
    assert pose_hub_files(Settings(pose_models="tiny")) == {}


def test_the_space_runs_a_python_and_torch_that_zerogpu_supports(tmp_path):
    assert str(front_matter()["python_version"]) in ZEROGPU_PYTHON
    assert front_matter()["sdk_version"].split(".")[0] == "6"
    subprocess.run(["bash", "scripts/space.sh", str(tmp_path)], cwd=REPO, check=True, capture_output=True)
    space_requirements = requirement_lines(tmp_path / "requirements.txt")
    assert (tmp_path / "requirements.txt").read_text() == (REPO / "requirements-space.txt").read_text()
    torch_pins = [line for line in space_requirements if line.startswith("torch")]
    assert torch_pins == [f"torch=={ZEROGPU_TORCH[-1]}"]
    assert (tmp_path / "app.py").is_file() and (tmp_path / "requirements-core.txt").is_file()


INSTALLS = ("requirements.txt", "requirements-gpu.txt", "requirements-space.txt", "requirements-test.txt")


def test_each_install_has_one_onnxruntime_and_one_torch():
    for name in INSTALLS:
        names = [re.split(r"[=<>\[ ]", line)[0] for line in requirement_lines(REPO / name)]
        runtimes = sorted(n for n in names if n.startswith("onnxruntime"))
        assert runtimes in (["onnxruntime"], ["onnxruntime-gpu"]), name
        assert names.count("torch") == 1, name


def test_every_requirement_has_a_floor_and_the_known_ones_are_true():
    found = floors([REPO / "requirements.txt", REPO / "requirements-test.txt"])
    # The versions where the APIs the code uses first appear (see requirements-core.txt).
    assert found["gradio"] == "6.28.0" and found["diffusers"] == "0.40.0" and found["onnxruntime"] == "1.21.0"
    assert {"transformers", "numpy", "pillow", "scipy", "opencv-python-headless", "onnx"} <= set(found)


def test_the_stand_in_scheduler_config_is_sdxl_bases():
    published = {k: v for k, v in SDXL_BASE_SCHEDULER_CONFIG.items() if not k.startswith("_")}
    assert published == SDXL_SCHEDULER_CONFIG
    # DDIM's and DDPM's defaults clip the predicted sample to [-1, 1]; SDXL's config turns that off.
    for name in ("DDIM", "DDPM"):
        assert build_scheduler(name, SDXL_SCHEDULER_CONFIG).config.clip_sample is False
