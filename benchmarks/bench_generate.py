"""Generation timings: stock diffusers against our engine (GenerationEngine.generate: conditioning, prompt
encoding, denoise, decode, PNG bytes), in one process, and the speed levers one at a time.

    .venv/bin/python -m benchmarks.bench_generate [--quick] [--parts stock,engine,first] [--out DIR]
    .venv/bin/python -m benchmarks.bench_generate --levers all   # or: --levers attention,compile=default

On CUDA: the full-size SDXL UNet, the xinsir OpenPose ControlNet (the SDXL ControlNet architecture), the
SDXL VAE and both CLIP text encoders, built from their real configs (below) with random weights, so no
download is needed: 1024x1024, 30 steps, Euler a, guidance 7.5, 1 and 4 samples, median of 5 warm runs.
On a CPU it runs the tiny preset instead, so CI exercises this script; those numbers say nothing about SDXL.
--quick: the tiny preset at 64x64, 2 steps, one run (a smoke test for the test suite).
End to end = request -> every sample encoded as PNG bytes. On CUDA each row also gives the TFLOP/s achieved
and the fraction of the issue's compute floor; `speedup_vs_stock` is the headline.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import platform
import re
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
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
from PIL import Image
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from pipelines.generation import GenerationEngine, GenerationRequest
from pipelines.generation.engine import SYNCHRONIZE, resolve_device
from pipelines.generation.presets import Preset, get_preset
from pipelines.generation.schedulers import build_scheduler
from pipelines.generation.speed import LEVERS, Lever, stock_settings
from pipelines.generation.tiny import SDXL_SCHEDULER_CONFIG, tiny_tokenizer
from pipelines.pose import PoseResult, draw_conditioning
from pipelines.pose.keypoints import people_from_wholebody
from pipelines.pose.tiny import standing_template
from pipelines.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a dancer on a stage, studio light"
PARTS = ("stock", "engine", "first")
# The compute floor at 1024² (TFLOP per sample): per model call, and one VAE decode; H100 dense fp16.
UNET_TFLOP, CONTROLNET_TFLOP, VAE_DECODE_TFLOP = 6.76, 3.02, 10.5
PEAK_TFLOPS = 790
KEEP_THRESHOLD = 1.01  # --levers keeps a lever that makes end to end at least 1 % faster
# Levers that only act on some requests are compared (with their own baseline) on such a request.
LEVER_REQUESTS: dict[str, dict[str, object]] = {"skip_idle_controlnet": {"control_guidance_end": 0.5}}

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


def compute_floor(plan: Plan, samples: int, steps: int) -> dict | None:
    """The issue's compute floor for full-size SDXL (None for the tiny preset, whose FLOPs mean nothing):
    UNet + ControlNet per model call, ×2 for guidance, per step, plus one VAE decode, per sample."""
    if plan.preset != "random-sdxl":
        return None
    pixels = (plan.size / 1024) ** 2
    tflop = samples * pixels * ((UNET_TFLOP + CONTROLNET_TFLOP) * 2 * steps + VAE_DECODE_TFLOP)
    return {"tflop": round(tflop, 1), "floor_s": round(tflop / PEAK_TFLOPS, 3)}


def with_floor(row: dict, floor: dict | None) -> dict:
    if floor is not None:
        seconds = row["median_end_to_end_s"]
        row.update(floor, tflops_achieved=round(floor["tflop"] / seconds, 1))
        row["fraction_of_floor"] = round(floor["floor_s"] / seconds, 3)
    return row


def png_bytes(images: list[Image.Image]) -> list[bytes]:
    """What 'images ready as PNG' costs: every sample encoded as the app saves it."""
    encoded = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    return encoded


def measure(call: Callable[[], dict], plan: Plan, device: torch.device) -> tuple[list[dict], float]:
    """Warm-up calls, then the median-of-`plan.runs` rows' raw timings and the peak memory of those runs."""
    for _ in range(plan.warmup):
        call()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    return [call() for _ in range(plan.runs)], peak_memory_mb(device)


def median(rows: list[dict], key: str) -> float:
    return round(statistics.median(row[key] for row in rows), 4)


def benchmark_request(plan: Plan, samples: int, **changes: object) -> GenerationRequest:
    fields = {
        "prompt": PROMPT,
        "samples": samples,
        "scheduler": plan.scheduler,
        "num_inference_steps": plan.steps,
        "guidance_scale": plan.guidance_scale,
        "seed": 0,
        "width": plan.size,
        "height": plan.size,
    }
    return GenerationRequest(**{**fields, **changes})


def engine_for(plan: Plan, settings: Settings) -> GenerationEngine:
    return GenerationEngine(settings, preset=RANDOM_SDXL if plan.preset == "random-sdxl" else None)


def time_engine(engine: GenerationEngine, plan: Plan, samples: int, steps: int, **changes: object) -> dict:
    """Our engine, request -> PNG bytes: median of the warm runs."""
    request = benchmark_request(plan, samples, **changes)

    def call() -> dict:
        started = time.perf_counter()
        result = engine.generate(request, standing_pose())
        png_bytes(result.images)
        return {**result.timings, "end_to_end": time.perf_counter() - started}

    rows, peak = measure(call, plan, engine.device)
    denoise = median(rows, "denoise")
    return {
        "samples": samples,
        "median_end_to_end_s": median(rows, "end_to_end"),
        "median_total_s": median(rows, "total"),
        "median_denoise_s": denoise,
        "median_decode_s": median(rows, "decode"),
        "ms_per_step": round(1000 * denoise / steps, 2),
        "peak_memory_mb": round(peak, 1),
        "runs_end_to_end_s": [round(row["end_to_end"], 4) for row in rows],
    }


def time_stock(plan: Plan, settings: Settings, device: torch.device, dtype: torch.dtype) -> list[dict]:
    """Stock diffusers as a user calls it: StableDiffusionXLControlNetPipeline on the same weights' configs,
    no levers, its own prompt encoding and decode, then PNG encoding."""
    preset = RANDOM_SDXL if plan.preset == "random-sdxl" else get_preset(plan.preset)
    pipeline = preset.build(preset, settings, dtype).to(device)
    pipeline.set_progress_bar_config(disable=True)
    skeleton = draw_conditioning(standing_pose(), (plan.size, plan.size), "body-pose", thick=True)
    image = Image.fromarray(skeleton)
    rows = []
    for samples in plan.samples:

        def call(samples: int = samples) -> dict:
            started = time.perf_counter()
            images = pipeline(
                prompt=PROMPT,
                image=image,
                width=plan.size,
                height=plan.size,
                num_inference_steps=plan.steps,
                guidance_scale=plan.guidance_scale,
                num_images_per_prompt=samples,
                generator=torch.Generator("cpu").manual_seed(0),
            ).images
            png_bytes(images)
            return {"end_to_end": time.perf_counter() - started}

        runs, peak = measure(call, plan, device)
        rows.append(
            {
                "samples": samples,
                "median_end_to_end_s": median(runs, "end_to_end"),
                "peak_memory_mb": round(peak, 1),
                "runs_end_to_end_s": [round(row["end_to_end"], 4) for row in runs],
            }
        )
    return rows  # the pipeline is freed with this frame; the caller empties the CUDA cache


def first_request_s(plan: Plan, settings: Settings) -> float:
    """A fresh engine (weights built on the device: the stand-in for loading from disk), loaded, compiled if
    asked (warm-up included), and its first 1-sample request -> PNG."""
    torch._dynamo.reset()
    started = time.perf_counter()
    engine = engine_for(plan, settings)
    result = engine.generate(benchmark_request(plan, 1), standing_pose())
    png_bytes(result.images)
    SYNCHRONIZE.get(engine.device.type, lambda: None)()
    seconds = time.perf_counter() - started
    del engine, result
    free_memory()
    return round(seconds, 2)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def scheduler_steps(plan: Plan) -> int:
    scheduler = build_scheduler(plan.scheduler, SDXL_SCHEDULER_CONFIG)
    scheduler.set_timesteps(plan.steps)
    return len(scheduler.timesteps)


def header(plan: Plan, device: torch.device, dtype: torch.dtype) -> dict:
    return {
        "device": device_name(device),
        "device_type": device.type,
        "dtype": str(dtype).removeprefix("torch."),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "plan": asdict(plan),
        "scheduler_steps": scheduler_steps(plan),
        "peak_memory": "torch peak allocated" if device.type == "cuda" else "process peak RSS",
    }


def run(plan: Plan, settings: Settings, parts: tuple[str, ...], compile_mode: str) -> dict:
    """Stock diffusers, then our engine (settings as configured), then first-request times, in one process."""
    engine = engine_for(plan, settings)
    report = header(plan, engine.device, engine.dtype)
    steps = report["scheduler_steps"]
    if "stock" in parts:
        report["stock"] = [
            with_floor(row, compute_floor(plan, row["samples"], steps))
            for row in time_stock(plan, settings, engine.device, engine.dtype)
        ]
        free_memory()
    if "engine" in parts:
        load_started = time.perf_counter()
        engine.load()
        report["load_s"] = round(time.perf_counter() - load_started, 2)
        report["runtime"] = engine.runtime
        report["results"] = [
            with_floor(time_engine(engine, plan, samples, steps), compute_floor(plan, samples, steps))
            for samples in plan.samples
        ]
    del engine
    free_memory()
    if "stock" in parts and "engine" in parts:
        report["speedup_vs_stock"] = {
            str(ours["samples"]): round(stock["median_end_to_end_s"] / ours["median_end_to_end_s"], 3)
            for stock, ours in zip(report["stock"], report["results"], strict=True)
        }
    if "first" in parts:
        report["first_request_s"] = {"compile off": first_request_s(plan, settings.replace(compile="off"))}
        if report["device_type"] == "cuda":
            compiled = settings.replace(compile=compile_mode, compile_warmup=True)
            report["first_request_s"][f"compile {compile_mode}"] = first_request_s(plan, compiled)
    return report


def parse_lever_specs(specs: str) -> list[tuple[Lever, object]]:
    """`all`, or comma-separated `name` (all its trial values) / `name=value`."""
    by_name = {lever.name: lever for lever in LEVERS}
    trials = []
    for spec in [part.strip() for part in specs.split(",") if part.strip()]:
        name, _, value = spec.partition("=")
        if name == "all":
            trials += [(lever, trial) for lever in LEVERS for trial in lever.trials]
            continue
        if name not in by_name:
            raise SystemExit(f"unknown lever {name!r}; choose from: all, {', '.join(by_name)}")
        lever = by_name[name]
        values = lever.trials if not value else (_typed(value, lever),)
        trials += [(lever, trial) for trial in values]
    return trials


def _typed(value: str, lever: Lever) -> object:
    return value.lower() in {"1", "true", "on", "yes"} if isinstance(lever.stock[0], bool) else value


def run_levers(
    plan: Plan, settings: Settings, specs: str, save: Callable[[dict], None] | None = None
) -> dict:
    """Each lever alone on top of the stock-valued engine, then every lever that helped, all together.
    One sample; a lever with request changes (the ControlNet skip) is compared on that request. `save` gets
    the report so far after each row, so a run stopped by a time limit keeps what it measured."""
    baseline = stock_settings(settings)
    engine = engine_for(plan, baseline)
    report = header(plan, engine.device, engine.dtype)
    del engine
    steps, samples = report["scheduler_steps"], plan.samples[0]
    floor = compute_floor(plan, samples, steps)
    baselines: dict[str, dict] = {}
    rows = []

    def saved() -> dict:
        done = {**report, "samples": samples, "keep_threshold": KEEP_THRESHOLD, "levers": rows}
        if save is not None:
            save(done)
        return done

    def timed(config: Settings, changes: dict) -> dict:
        started = time.perf_counter()
        engine = engine_for(plan, config)
        engine.load()
        load_seconds = time.perf_counter() - started
        row = with_floor(time_engine(engine, plan, samples, steps, **changes), floor)
        row.update(load_s=round(load_seconds, 2), speed=engine.runtime.get("speed", ""))
        del engine
        free_memory()
        return row

    def baseline_for(changes: dict) -> dict:
        key = json.dumps(changes, sort_keys=True)
        if key not in baselines:
            baselines[key] = timed(baseline, changes)
            rows.append({"lever": "baseline", "value": key, **baselines[key]})
            saved()
        return baselines[key]

    baseline_for({})
    kept: dict[str, object] = {}
    for lever, value in parse_lever_specs(specs):
        changes = LEVER_REQUESTS.get(lever.name, {})
        reference = baseline_for(changes)
        if not lever.runs_on_cpu and report["device_type"] != "cuda":
            rows.append({"lever": lever.name, "value": value, "skipped": "needs CUDA"})
            continue
        row = timed(baseline.replace(**{lever.setting: value}, compile_warmup=True), changes)
        row["vs_baseline"] = round(reference["median_end_to_end_s"] / row["median_end_to_end_s"], 3)
        rows.append({"lever": lever.name, "value": value, **row})
        saved()
        best = kept.get(lever.setting)
        if row["vs_baseline"] >= KEEP_THRESHOLD and (best is None or row["vs_baseline"] > best[1]):
            kept[lever.setting] = (value, row["vs_baseline"])
    if kept:
        chosen = {setting: value for setting, (value, _) in kept.items()}
        row = timed(baseline.replace(**chosen, compile_warmup=True), {})
        row["vs_baseline"] = round(baselines["{}"]["median_end_to_end_s"] / row["median_end_to_end_s"], 3)
        rows.append({"lever": "all kept", "value": json.dumps(chosen), **row})
    return saved()


def lever_table(rows: list[dict]) -> str:
    lines = [
        "| lever | value | end-to-end s | ms/step | × vs baseline | peak MB | load s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['lever']} | {row['value']} | {row['skipped']} | | | | |")
            continue
        lines.append(
            f"| {row['lever']} | {row['value']} | {row['median_end_to_end_s']} | {row['ms_per_step']} | "
            f"{row.get('vs_baseline', 1.0)} | {row['peak_memory_mb']} | {row['load_s']} |"
        )
    return "\n".join(lines)


def output_path(out_dir: Path, report: dict, quick: bool, kind: str = "generate") -> Path:
    slug = "cpu" if report["device_type"] == "cpu" else re.sub(r"[^a-z0-9]+", "-", report["device"].lower())
    return out_dir / f"{kind}_{slug}{'_quick' if quick else ''}.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny preset, 64x64, 2 steps, one run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--levers",
        metavar="SPECS",
        help="time levers one at a time on the stock-valued engine, then the helpful ones together: "
        f"'all' or a comma list of names or name=value ({', '.join(lever.name for lever in LEVERS)})",
    )
    parser.add_argument(
        "--parts",
        default=",".join(PARTS),
        help=f"without --levers: which of {', '.join(PARTS)} to run (comma list; default all)",
    )
    parser.add_argument(
        "--compile-mode", default="default", help="the compile setting the first-request timing uses"
    )
    parser.add_argument("--runs", type=int, help="measured runs per point (default: the plan's)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    device = resolve_device(settings.device)
    plan = PLANS["quick" if args.quick else device.type if device.type in PLANS else "cpu"]
    if args.runs:
        plan = replace(plan, runs=args.runs)
    settings = settings.replace(preset=plan.preset, device=device.type if plan.preset != "tiny" else "cpu")
    # The optional models (TAESD, draft LoRA) take no part in these timings: bench_tuning measures them.
    settings = settings.replace(preview_model="", draft_lora="")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.levers:

        def write(report: dict) -> Path:
            path = output_path(args.out, report, args.quick, kind="levers")
            path.write_text(json.dumps(report, indent=2) + "\n")
            return path

        report = run_levers(plan, settings, args.levers, save=write)
        path = write(report)
        print(f"wrote {path}")
        print(lever_table(report["levers"]))
        return 0
    parts = tuple(part.strip() for part in args.parts.split(","))
    report = run(plan, settings, parts, args.compile_mode)
    path = output_path(args.out, report, args.quick)
    path.write_text(json.dumps(report, indent=2) + "\n")
    summary = {
        key: report[key]
        for key in ("stock", "results", "speedup_vs_stock", "first_request_s")
        if key in report
    }
    print(json.dumps(summary, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
