"""The page's "Runs on" line (ui.page.runtime_line) and the CUDA library preload for onnxruntime-gpu."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from pipelines.pose import models
from pipelines.pose.estimator import PoseEstimator, PoseModels
from pipelines.pose.models import CPU, CUDA, DETECTOR_FILE, POSE_FILE, create_session, model_files
from pipelines.settings import Settings
from ui.page import POSE_GPU_FALLBACK, RUNTIME_PENDING, create_demo, runtime_line
from ui.studio import PoseStudio

TINY = {"preset": "tiny", "pose_models": "tiny"}
CPU_ONLY = CUDA not in ort.get_available_providers()


def studio_whose_sessions_use(tmp_path, providers: list[str], **settings: str) -> PoseStudio:
    """A studio whose DWPose sessions were opened and got `providers` (as onnxruntime reports them)."""
    loaded = PoseModels(
        detector=None, wholebody=None, providers={DETECTOR_FILE: providers, POSE_FILE: providers}
    )
    estimator = PoseEstimator(lambda: loaded, is_stand_in=False)
    estimator.models  # noqa: B018 (opens the "sessions")
    return PoseStudio(Settings(cache_dir=str(tmp_path), **TINY, **settings), pose_estimator=estimator)


def test_the_tiny_preset_on_a_cpu(tmp_path):
    studio = PoseStudio(Settings(cache_dir=str(tmp_path), **TINY))
    assert runtime_line(studio) == "Runs on: DWPose: CPU · SDXL (tiny stand-in): cpu fp32"
    studio.pose_estimator.models  # noqa: B018 (the first detection opens the real sessions)
    assert runtime_line(studio) == "Runs on: DWPose: CPU · SDXL (tiny stand-in): cpu fp32"


@pytest.mark.skipif(not CPU_ONLY, reason="this onnxruntime has a CUDA provider")
def test_a_gpu_asked_for_with_a_cpu_only_onnxruntime_is_said_before_anything_loads(tmp_path):
    studio = PoseStudio(Settings(cache_dir=str(tmp_path), pose_device="cuda", **TINY))
    assert runtime_line(studio) == (
        f"Runs on: DWPose: CPU · SDXL (tiny stand-in): cpu fp32\n\n{POSE_GPU_FALLBACK}"
    )
    assert "onnxruntime-gpu" in POSE_GPU_FALLBACK


def test_sessions_that_fell_back_to_the_cpu_are_said(tmp_path, monkeypatch):
    """onnxruntime-gpu whose CUDA libraries did not load: the provider exists, the sessions run on the CPU."""
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    studio = studio_whose_sessions_use(tmp_path, [CPU], pose_device="cuda")
    assert runtime_line(studio).endswith(f"cpu fp32\n\n{POSE_GPU_FALLBACK}")
    assert runtime_line(studio).startswith("Runs on: DWPose: CPU · ")


def test_sessions_on_the_gpu(tmp_path, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [CUDA, CPU])
    studio = studio_whose_sessions_use(tmp_path, [CUDA, CPU], pose_device="auto")
    assert runtime_line(studio) == "Runs on: DWPose: CUDA · SDXL (tiny stand-in): cpu fp32"


def test_cuda_libraries_are_preloaded_only_when_cuda_is_asked_for(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(ort, "preload_dlls", lambda: calls.append("preload"))
    path = model_files(Settings(cache_dir=str(tmp_path), pose_models="tiny"))[DETECTOR_FILE]
    assert create_session(path, "cpu").get_providers() == [CPU]
    assert calls == []
    session = create_session(path, "cuda")
    assert calls == ["preload"]
    assert session.get_providers()[0] == (CPU if CPU_ONLY else CUDA)
    assert models.expected_providers("cuda") == ([CPU] if CPU_ONLY else [CUDA, CPU])


def test_the_line_is_on_the_page_and_adds_no_endpoint(tmp_path):
    demo = create_demo(PoseStudio(Settings(cache_dir=str(tmp_path), **TINY)))
    line = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "runtime")
    # filled on page load (building the page imports no model library); until then it says it is checking
    assert line.value == RUNTIME_PENDING == "Runs on: checking the devices…"
    (fill,) = [fn for fn in demo.fns.values() if fn.outputs == [line]]
    assert fill.fn() == "Runs on: DWPose: CPU · SDXL (tiny stand-in): cpu fp32"
    assert {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"} == {
        "dwpose",
        "generate",
        "sweep",
    }
