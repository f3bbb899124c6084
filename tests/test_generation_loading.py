"""The real preset's loading path (Hub ids or local folders -> StableDiffusionXLControlNetPipeline), exercised
on tiny weights saved with save_pretrained, and the error when weights are missing offline."""

from __future__ import annotations

import shutil
from pathlib import Path

import huggingface_hub.constants
import numpy as np
import pytest
import torch
from diffusers import StableDiffusionXLPipeline

from pipelines.errors import ModelError
from pipelines.generation import GenerationEngine, GenerationRequest, download_models
from pipelines.generation.presets import SDXL_BASE_FILES
from pipelines.generation.speed import stock_settings
from pipelines.generation.tiny import build_tiny_pipeline
from pipelines.settings import Settings
from tests.pose_samples import standing_crop


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny pipeline laid out like the three Hub repos: an SDXL base folder with fp16-variant file
    names and without vae/ (the download skips it), a ControlNet folder and a VAE folder."""
    root = tmp_path_factory.mktemp("models")
    tiny = build_tiny_pipeline()
    base_components = {name: module for name, module in tiny.components.items() if name != "controlnet"}
    StableDiffusionXLPipeline(**base_components).save_pretrained(root / "base", variant="fp16")
    shutil.rmtree(root / "base" / "vae")
    tiny.controlnet.save_pretrained(root / "controlnet")
    tiny.vae.save_pretrained(root / "vae")
    return {"base_model": root / "base", "controlnet_model": root / "controlnet", "vae_model": root / "vae"}


def local_settings(saved_models: dict[str, Path]) -> Settings:
    """The three required models from local folders; the optional ones (TAESD, draft LoRA) off."""
    folders = {name: str(folder) for name, folder in saved_models.items()}
    return Settings(preset="sdxl", preview_model="", draft_lora="", **folders)


def test_sdxl_preset_loads_local_folders_with_the_real_loader(saved_models):
    # Stock levers: the loader's weights as saved, without the fused projections fuse_qkv adds.
    engine = GenerationEngine.from_settings(stock_settings(local_settings(saved_models)))
    assert not engine.is_loaded and not engine.is_stand_in
    engine.load()
    assert engine.is_loaded
    tiny = build_tiny_pipeline()
    loaded = engine.pipeline
    for name in ("unet", "controlnet", "vae", "text_encoder", "text_encoder_2"):
        expected = getattr(tiny, name).state_dict()
        actual = getattr(loaded, name).state_dict()
        assert expected.keys() == actual.keys()
        assert all(torch.equal(expected[key], actual[key]) for key in expected), name
    assert loaded.tokenizer("a dancer").input_ids == tiny.tokenizer("a dancer").input_ids
    assert loaded.watermark is None


def test_loaded_folders_generate_the_same_image_as_the_tiny_preset(saved_models):
    pose = standing_crop()
    request = GenerationRequest("a dancer", num_inference_steps=2, seed=9, width=64, height=64)
    from_folders = GenerationEngine.from_settings(local_settings(saved_models)).generate(request, pose)
    built = GenerationEngine.from_settings(Settings(preset="tiny")).generate(request, pose)
    assert np.array_equal(np.asarray(from_folders.images[0]), np.asarray(built.images[0]))
    assert from_folders.models == {"preset": "sdxl", **{k: str(v) for k, v in saved_models.items()}}


def test_download_leaves_local_folders_alone_and_tiny_needs_nothing(saved_models):
    folders = download_models(local_settings(saved_models))
    assert folders == {
        "SDXL base model": saved_models["base_model"],
        "OpenPose ControlNet": saved_models["controlnet_model"],
        "VAE": saved_models["vae_model"],
    }
    assert download_models(Settings(preset="tiny")) == {}
    assert "unet/diffusion_pytorch_model.fp16.safetensors" in SDXL_BASE_FILES
    assert not any(pattern.startswith("vae/") for pattern in SDXL_BASE_FILES)


def test_offline_without_cached_weights_names_the_model_and_the_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    engine = GenerationEngine.from_settings(Settings(preset="sdxl"))
    with pytest.raises(ModelError) as raised:
        engine.load()
    message = str(raised.value)
    assert (
        "The SDXL base model 'stabilityai/stable-diffusion-xl-base-1.0' is neither a local folder" in message
    )
    assert "python app.py --download" in message
    assert "POSE_STUDIO_BASE_MODEL" in message and "HF_HUB_OFFLINE" in message
    assert not engine.is_loaded


def test_a_broken_folder_is_a_model_error(saved_models, tmp_path):
    broken = tmp_path / "base"
    shutil.copytree(saved_models["base_model"], broken)
    shutil.rmtree(broken / "unet")
    settings = local_settings(saved_models).replace(base_model=str(broken))
    with pytest.raises(ModelError, match="could not be loaded"):
        GenerationEngine.from_settings(settings).load()
