"""Generation timings through the real engine path (GenerationEngine.generate: conditioning, prompt encoding,
denoise, decode, PNG-ready images).

    .venv/bin/python -m benchmarks.bench_generate [--quick] [--out benchmarks/results]

On CUDA: the full-size SDXL UNet, the xinsir OpenPose ControlNet (the SDXL ControlNet architecture), the
SDXL VAE and both CLIP text encoders, built from their real configs (below) with random weights, so no
download is needed: 1024x1024, 30 steps, Euler a, guidance 7.5, 1 and 4 samples, median of 5 warm runs.
On a CPU it runs the tiny preset instead, so CI exercises this script; those numbers say nothing about SDXL.
--quick: the tiny preset at 64x64, 2 steps, one run (a smoke test for the test suite).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import resource
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import diffusers
import numpy as np
import torch
from diffusers import (
    AutoencoderKL,
    ControlNetModel,
    EulerAncestralDiscreteScheduler,
    StableDiffusionXLControlNetPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from pipelines.generation import GenerationEngine, GenerationRequest
from pipelines.generation.engine import resolve_device
from pipelines.generation.presets import Preset
from pipelines.generation.schedulers import build_scheduler
from pipelines.generation.tiny import SDXL_SCHEDULER_CONFIG, tiny_tokenizer
from pipelines.pose import PoseResult
from pipelines.pose.keypoints import people_from_wholebody
from pipelines.pose.tiny import standing_template
from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
SDXL_UNET_CONFIG = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "center_input_sample": False,
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "out_channels": 4,
    "projection_class_embeddings_input_dim": 2816,
    "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "use_linear_projection": True,
}
# xinsir/controlnet-openpose-sdxl-1.0 config.json (the SDXL ControlNet architecture)
XINSIR_CONTROLNET_CONFIG = {
    "act_fn": "silu",
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "attention_head_dim": [5, 10, 20],
    "block_out_channels": [320, 640, 1280],
    "conditioning_channels": 3,
    "conditioning_embedding_out_channels": [16, 32, 96, 256],
    "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 2048,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "downsample_padding": 1,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "global_pool_conditions": False,
    "in_channels": 4,
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "norm_eps": 1e-05,
    "norm_num_groups": 32,
    "projection_class_embeddings_input_dim": 2816,
    "transformer_layers_per_block": [1, 2, 10],
    "use_linear_projection": True,
}
# madebyollin/sdxl-vae-fp16-fix config.json
SDXL_VAE_CONFIG = {
    "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "force_upcast": False,
    "in_channels": 3,
    "latent_channels": 4,
    "layers_per_block": 2,
    "norm_num_groups": 32,
    "out_channels": 3,
    "sample_size": 512,
    "scaling_factor": 0.13025,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
}
# text_encoder (CLIP ViT-L/14) and text_encoder_2 (OpenCLIP ViT-bigG/14) of SDXL base
CLIP_L_CONFIG = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "projection_dim": 768,
    "hidden_act": "quick_gelu",
}
OPENCLIP_BIGG_CONFIG = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "projection_dim": 1280,
    "hidden_act": "gelu",
}
CLIP_SHARED = {"vocab_size": 49408, "max_position_embeddings": 77, "bos_token_id": 0, "eos_token_id": 1}


@dataclass(frozen=True)
class Plan:
    preset: str
    size: int
    steps: int
    samples: tuple[int, ...]
    warmup: int
    runs: int
    scheduler: str = "Euler a"
    guidance_scale: float = 7.5


PLANS = {
    "cuda": Plan("random-sdxl", size=1024, steps=30, samples=(1, 4), warmup=2, runs=5),
    "cpu": Plan("tiny", size=256, steps=30, samples=(1, 4), warmup=1, runs=5),
    "quick": Plan("tiny", size=64, steps=2, samples=(1, 2), warmup=0, runs=1),
}


def random_sdxl(device: torch.device, dtype: torch.dtype) -> StableDiffusionXLControlNetPipeline:
    """Full-size SDXL + ControlNet with random weights, created directly on `device`. The UNet's output
    convolution is zeroed so 30 fp16 steps stay finite (random noise predictions blow up); the work per step
    is unchanged."""
    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        torch.nn.init.zeros_(unet.conv_out.weight)
        torch.nn.init.zeros_(unet.conv_out.bias)
        controlnet = ControlNetModel(**XINSIR_CONTROLNET_CONFIG)
        vae = AutoencoderKL(**SDXL_VAE_CONFIG)
        text_encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L_CONFIG, **CLIP_SHARED))
        text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**OPENCLIP_BIGG_CONFIG, **CLIP_SHARED))
    tokenizer = tiny_tokenizer()  # byte-level ids: any text, same 77-token sequences as CLIP's
    return StableDiffusionXLControlNetPipeline(
        vae=vae.to(dtype).eval(),
        text_encoder=text_encoder.to(dtype).eval(),
        text_encoder_2=text_encoder_2.to(dtype).eval(),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet.to(dtype).eval(),
        controlnet=controlnet.to(dtype).eval(),
        scheduler=EulerAncestralDiscreteScheduler.from_config(SDXL_SCHEDULER_CONFIG),
        add_watermarker=False,
    )


RANDOM_SDXL = Preset(
    is_stand_in=True,
    sources=(),
    build=lambda preset, settings, dtype: random_sdxl(resolve_device(settings.device), dtype),
)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or platform.machine(),
    )
    return f"{model} ({torch.get_num_threads()} threads)"


def _cpuinfo() -> list[str]:
    path = Path("/proc/cpuinfo")
    return path.read_text().splitlines() if path.exists() else []


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated by torch since the last reset. CPU: the process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def standing_pose() -> PoseResult:
    points = standing_template()[None].astype(np.float32)
    people = people_from_wholebody(points, np.full(points.shape[:2], 0.9, np.float32))
    return PoseResult(width=288, height=384, people=people)


def run(plan: Plan, settings: Settings) -> dict:
    engine = GenerationEngine(settings, preset=RANDOM_SDXL if plan.preset == "random-sdxl" else None)
    device = engine.device
    load_started = time.perf_counter()
    engine.load()
    load_seconds = time.perf_counter() - load_started
    pose = standing_pose()
    scheduler = build_scheduler(plan.scheduler, engine.pipeline.scheduler.config)
    scheduler.set_timesteps(plan.steps)
    scheduler_steps = len(scheduler.timesteps)
    results = []
    for samples in plan.samples:
        request = GenerationRequest(
            prompt="a dancer on a stage, studio light",
            samples=samples,
            scheduler=plan.scheduler,
            num_inference_steps=plan.steps,
            guidance_scale=plan.guidance_scale,
            seed=0,
            width=plan.size,
            height=plan.size,
        )
        for _ in range(plan.warmup):
            engine.generate(request, pose)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        timings = [engine.generate(request, pose).timings for _ in range(plan.runs)]
        denoise = statistics.median(t["denoise"] for t in timings)
        results.append(
            {
                "samples": samples,
                "median_total_s": round(statistics.median(t["total"] for t in timings), 4),
                "median_denoise_s": round(denoise, 4),
                "median_decode_s": round(statistics.median(t["decode"] for t in timings), 4),
                "ms_per_step": round(1000 * denoise / scheduler_steps, 2),
                "peak_memory_mb": round(peak_memory_mb(device), 1),
                "runs_total_s": [round(t["total"], 4) for t in timings],
            }
        )
    return {
        "device": device_name(device),
        "device_type": device.type,
        "dtype": str(engine.dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "plan": asdict(plan),
        "scheduler_steps": scheduler_steps,
        "load_s": round(load_seconds, 2),
        "peak_memory": "torch peak allocated" if device.type == "cuda" else "process peak RSS",
        "results": results,
    }


def output_path(out_dir: Path, report: dict, quick: bool) -> Path:
    slug = "cpu" if report["device_type"] == "cpu" else re.sub(r"[^a-z0-9]+", "-", report["device"].lower())
    return out_dir / f"generate_{slug}{'_quick' if quick else ''}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny preset, 64x64, 2 steps, one run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    device = resolve_device(settings.device)
    plan = PLANS["quick" if args.quick else device.type if device.type in PLANS else "cpu"]
    settings = settings.replace(preset=plan.preset, device=device.type if plan.preset != "tiny" else "cpu")
    report = run(plan, settings)
    args.out.mkdir(parents=True, exist_ok=True)
    path = output_path(args.out, report, args.quick)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
