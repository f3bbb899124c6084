"""The optional models on the tiny preset, each saved and loaded back through the real loader: TAESD live
previews (and the colour-map fallback, said once), and Draft mode (a few-step LoRA through diffusers' peft
loader) with its adapter gate under concurrent requests."""

from __future__ import annotations

import itertools
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import AutoencoderTiny

from pipelines.errors import ModelError, ValidationError
from pipelines.generation import GenerationEngine, GenerationRequest
from pipelines.generation.__main__ import build_parser, build_sweep_parser
from pipelines.generation.draft import DRAFT, AdapterGate, copy_on_cpu
from pipelines.generation.presets import DRAFT_SOURCE, PREVIEW_SOURCE, SINGLE_MODEL_FILES, download_models
from pipelines.generation.previews import latent_previews
from pipelines.generation.sweep import plan_sweep
from pipelines.generation.tiny import build_tiny_pipeline, save_random_lora, save_tiny_taesd
from pipelines.settings import Settings
from tests.pose_samples import standing_crop

LORA_FILE = "draft_lora.safetensors"
WIDTH, HEIGHT = 96, 64  # a 12x8 latent


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("extras")
    save_tiny_taesd(root / "taesd")
    save_random_lora(build_tiny_pipeline().unet, root / "lora", LORA_FILE)
    save_random_lora(build_tiny_pipeline().unet, root / "zero-lora", LORA_FILE, std=0.0)
    (root / "empty").mkdir()
    return {name: root / name for name in ("taesd", "lora", "zero-lora", "empty")}


def tiny_settings(folders: dict[str, Path], **changes: object) -> Settings:
    fields = {
        "preset": "tiny",
        "preview_every": 2,
        "preview_model": str(folders["taesd"]),
        "draft_lora": str(folders["lora"]),
        "draft_lora_file": LORA_FILE,
    }
    return Settings(**{**fields, **changes})


@pytest.fixture(scope="module")
def engine(folders) -> GenerationEngine:
    engine = GenerationEngine.from_settings(tiny_settings(folders))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def pose():
    return standing_crop()


def request(**changes: object) -> GenerationRequest:
    fields = {"prompt": "a dancer", "num_inference_steps": 4, "seed": 3, "width": WIDTH, "height": HEIGHT}
    return GenerationRequest(**{**fields, **changes})


def pixels(images) -> list[np.ndarray]:
    return [np.asarray(image, dtype=np.int16) for image in images]


def record_previews(engine: GenerationEngine, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    """The latents each preview was made from."""
    seen: list[torch.Tensor] = []
    previewer = engine._previewer

    def recording(latents: torch.Tensor):
        seen.append(latents.clone())
        return previewer(latents)

    monkeypatch.setattr(engine, "_previewer", recording)
    return seen


# --- TAESD previews -----------------------------------------------------------------------------------------


def test_previews_are_taesd_pictures_of_every_sample_at_output_size(engine, pose, monkeypatch):
    latents = record_previews(engine, monkeypatch)
    shown: list[tuple[int, list]] = []
    engine.generate(
        request(samples=2), pose, preview=lambda images, step, total: shown.append((step, images))
    )
    assert [step for step, _ in shown] == [2]  # every 2nd step, not the last (the result follows)
    images = shown[0][1]
    assert [image.size for image in images] == [(WIDTH, HEIGHT)] * 2  # 8x the latent, under preview_size
    decoder = AutoencoderTiny.from_pretrained(engine.settings.preview_model)
    with torch.no_grad():
        expected = decoder.decode(latents[0], return_dict=False)[0]
    expected = ((expected + 1) / 2).clamp(0, 1).mul(255).round().permute(0, 2, 3, 1).to(torch.uint8).numpy()
    assert np.array_equal(np.stack(pixels(images)), expected.astype(np.int16))
    colour_map = [image.resize((WIDTH, HEIGHT)) for image in latent_previews(latents[0])]
    assert all(np.abs(a - b).mean() > 10 for a, b in zip(pixels(images), pixels(colour_map), strict=True))
    assert engine.runtime["previews"] == "TAESD" and engine.notices == {}


def test_previews_are_decoded_at_display_size(folders, pose):
    engine = GenerationEngine.from_settings(tiny_settings(folders, preview_size=48))
    shown = []
    engine.generate(request(), pose, preview=lambda images, step, total: shown.append(images[0].size))
    assert shown == [(48, 32)]  # the 12x8 latent averaged to 6x4 before decoding: 48 px on the long side


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("empty", "could not be loaded"), ("", "POSE_STUDIO_PREVIEW_MODEL is empty (turned off)")],
)
def test_without_taesd_previews_fall_back_to_the_colour_map_and_say_why(
    folders, pose, setting, reason, caplog
):
    value = str(folders["empty"]) if setting else ""
    engine = GenerationEngine.from_settings(tiny_settings(folders, preview_model=value))
    shown = []
    engine.generate(request(), pose, preview=lambda images, step, total: shown.append(images[0].size))
    assert shown == [(WIDTH // 8, HEIGHT // 8)]  # the colour map, at the latent's size
    notice = engine.notices["preview_model"]
    assert notice.startswith(
        "Live previews show a rough colour map of the latents instead of TAESD pictures:"
    )
    assert reason in notice
    assert engine.runtime["previews"] == "colour map"
    assert caplog.text.count(notice) == 1  # logged once, at load


# --- Draft mode ---------------------------------------------------------------------------------------------


def test_draft_runs_the_recipe_and_changes_the_images(engine, pose):
    full = engine.generate(request(), pose)
    draft = engine.generate(request(draft=True, num_inference_steps=30, guidance_scale=7.5), pose)
    assert draft.parameters["num_inference_steps"] == DRAFT.num_inference_steps == 4
    assert draft.parameters["guidance_scale"] == DRAFT.guidance_scale == 1.0
    assert draft.parameters["scheduler"] == "Euler trailing" and draft.parameters["draft"] is True
    assert engine.runtime["draft"].startswith("SDXL-Lightning 4-step LoRA (")
    assert np.abs(pixels(full.images)[0] - pixels(draft.images)[0]).mean() > 5


def test_the_lora_itself_changes_the_draft(engine, folders, pose):
    """Same recipe, a LoRA of zeros: the difference is the adapter (so fused attention did not bypass it)."""
    zero = GenerationEngine.from_settings(tiny_settings(folders, draft_lora=str(folders["zero-lora"])))
    with_lora = engine.generate(request(draft=True), pose)
    without = zero.generate(request(draft=True), pose)
    assert np.abs(pixels(with_lora.images)[0] - pixels(without.images)[0]).mean() > 1
    stock = GenerationEngine.from_settings(tiny_settings(folders, draft_lora=""))
    plain = stock.generate(request(), pose)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(pixels(plain.images), pixels(zero.generate(request(), pose).images), strict=True)
    )


def test_turning_draft_off_gives_the_exact_full_images_again(engine, folders, pose):
    without_lora = GenerationEngine.from_settings(tiny_settings(folders, draft_lora=""))
    expected = pixels(without_lora.generate(request(samples=2), pose).images)
    engine.generate(request(draft=True), pose)
    again = pixels(engine.generate(request(samples=2), pose).images)
    assert all(np.array_equal(a, b) for a, b in zip(expected, again, strict=True))


def test_a_draft_runs_the_plain_layers_with_the_lora_merged_and_full_mode_its_own_weights(
    engine, folders, pose
):
    """No peft layer stays in the UNet (a draft step costs a full step). During a draft, a layer holds W + B·A
    computed here from the saved file; during a full run, W exactly; the fused q/k/v weight follows its
    parts, so fused attention sees the draft too."""
    from peft.tuners.tuners_utils import BaseTunerLayer
    from safetensors.torch import load_file

    unet = engine.pipeline.unet
    assert not any(isinstance(module, BaseTunerLayer) for module in unet.modules())
    saved = load_file(folders["lora"] / LORA_FILE)
    name = next(key for key in saved if key.endswith("attn1.to_k.lora_A.weight")).removesuffix(
        ".lora_A.weight"
    )
    layer = unet.get_submodule(name.removeprefix("unet."))
    fused = unet.get_submodule(name.removeprefix("unet.").rsplit(".", 1)[0]).to_qkv
    rows = slice(layer.out_features, 2 * layer.out_features)  # k is the second third of q/k/v
    full = layer.weight.detach().clone()
    update = saved[f"{name}.lora_B.weight"] @ saved[f"{name}.lora_A.weight"]
    seen = {}

    def look(draft: bool):
        def progress(step: int, total: int) -> None:
            seen[draft] = (layer.weight.detach().clone(), fused.weight.detach()[rows].clone())

        return progress

    engine.generate(request(draft=True), pose, progress=look(True))
    engine.generate(request(), pose, progress=look(False))
    assert update.abs().max() > 0.01
    torch.testing.assert_close(seen[True][0], full + update, rtol=0, atol=1e-6)
    assert torch.equal(seen[True][1], seen[True][0])
    assert torch.equal(seen[False][0], full) and torch.equal(seen[False][1], full)
    touched = [key.removeprefix("unet.").removesuffix(".lora_A.weight") for key in saved if "lora_A" in key]
    # the memory: one float32 copy of each whole layer the LoRA changes
    assert engine._draft_weights.nbytes == 4 * sum(unet.get_submodule(key).weight.numel() for key in touched)


def test_concurrent_draft_and_full_requests_give_the_images_they_give_alone(engine, pose):
    requests = [request(draft=index % 2 == 0, seed=index) for index in range(4)]
    alone = [pixels(engine.generate(item, pose).images) for item in requests]
    together: list = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def run(index: int) -> None:
        start.wait()
        together[index] = pixels(engine.generate(requests[index], pose).images)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for one, other in zip(alone, together, strict=True):
        assert np.array_equal(one[0], other[0])


def test_the_gate_never_runs_both_modes_at_once():
    switches: list[bool] = []
    gate = AdapterGate(switches.append)
    running: list[bool] = []
    overlaps = []
    lock = threading.Lock()

    def use(draft: bool) -> None:
        with gate.mode(draft):
            with lock:
                running.append(draft)
                overlaps.append(len(set(running)))
            threading.Event().wait(0.01)
            with lock:
                running.remove(draft)

    threads = [threading.Thread(target=use, args=(index % 3 == 0,)) for index in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert max(overlaps) == 1
    assert switches and switches[0] is True  # starts in full mode: only a draft switches
    assert all(a != b for a, b in itertools.pairwise(switches))


def test_draft_without_its_lora_says_why_and_full_mode_still_works(folders, pose):
    engine = GenerationEngine.from_settings(tiny_settings(folders, draft_lora=str(folders["empty"])))
    with pytest.raises(
        ModelError, match=r"^Draft mode is unavailable: The draft LoRA file draft_lora.safetensors"
    ):
        engine.generate(request(draft=True), pose)
    assert len(engine.generate(request(), pose).images) == 1
    assert "draft" not in engine.runtime


def test_the_tiny_preset_writes_its_own_stand_ins(tmp_path, pose):
    engine = GenerationEngine.from_settings(Settings(preset="tiny", cache_dir=str(tmp_path)))
    engine.generate(request(draft=True), pose)
    assert engine.notices == {} and engine.runtime["previews"] == "TAESD"
    folder = tmp_path / "tiny-generation"
    assert (folder / "preview_model" / "config.json").is_file()
    assert (folder / "draft_lora" / Settings().draft_lora_file).is_file()


def test_draft_is_a_flag_of_both_commands_and_the_sweep_refuses_the_fields_it_fixes():
    assert build_parser().parse_args(["--pose", "p.json", "--draft"]).draft is True
    assert build_sweep_parser().parse_args(["--x-axis", "seed", "--x-values", "1", "--draft"]).draft is True
    base = GenerationRequest(prompt="a", draft=True)
    with pytest.raises(ValidationError, match="Draft mode fixes Steps; turn Draft off to sweep it"):
        plan_sweep(base, "num_inference_steps", "4, 8", settings=Settings())
    assert len(plan_sweep(base, "controlnet_scale", "0.5, 1", settings=Settings()).cells) == 2


def test_download_fetches_the_optional_models_too(monkeypatch, tmp_path):
    fetched = {}

    def snapshot_download(repo: str, allow_patterns: list[str]) -> str:
        fetched[repo] = allow_patterns
        return str(tmp_path)

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    folders = download_models(Settings(preset="sdxl"))
    assert fetched["madebyollin/taesdxl"] == list(SINGLE_MODEL_FILES)
    assert fetched["ByteDance/SDXL-Lightning"] == ["sdxl_lightning_4step_lora.safetensors"]
    assert PREVIEW_SOURCE.role in folders and DRAFT_SOURCE.role in folders
    assert len(fetched) == 5
    assert download_models(Settings(preset="sdxl", preview_model="", draft_lora="")).keys() == {
        "SDXL base model",
        "OpenPose ControlNet",
        "VAE",
    }


def test_where_the_drafts_copy_lives(monkeypatch):
    """`draft_copy`: as set, or on "auto" the GPU only when it has at least 40 GiB (a 24 GB card keeps its
    memory for the models and activations); a bad value is refused before anything loads."""
    assert copy_on_cpu("cpu", torch.device("cpu")) is True
    assert copy_on_cpu("device", torch.device("cuda")) is False
    assert copy_on_cpu("auto", torch.device("cpu")) is False  # one memory: nothing to move
    for gib, on_cpu in ((24, True), (39.9, True), (40, False), (141, False)):
        card = types.SimpleNamespace(total_memory=int(gib * 2**30))
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device, card=card: card)
        assert copy_on_cpu("auto", torch.device("cuda")) is on_cpu
    with pytest.raises(ValidationError, match=r"^POSE_STUDIO_DRAFT_COPY must be one of auto, device, cpu"):
        GenerationEngine.from_settings(Settings(preset="tiny", draft_copy="gpu"))
