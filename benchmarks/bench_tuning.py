"""Quick-tuning costs: what a TAESD live preview adds per step; Draft mode (4 steps) against 30 steps.

    .venv/bin/python -m benchmarks.bench_tuning [--quick] [--out DIR]   # writes tuning_<device>.json

Both optional models are written to a temporary folder and loaded back through the engine's real loaders:
on a CPU the tiny preset's stand-ins (a random 8-channel `AutoencoderTiny`, a rank-4 LoRA on the tiny
UNet); on CUDA TAESD's real architecture (diffusers' `AutoencoderTiny` defaults, as madebyollin/taesdxl) and
a rank-64 LoRA on every linear layer of the full-size SDXL UNet (SDXL-Lightning's LoRA size), both random, on
the random full-size SDXL of bench_generate. The timings are valid with random weights; the images are not.

- previews: one preview decode (the engine's previewer, at display size) for 1 and 4 samples, the engine's
  ms per step, and the smallest `preview_every` that keeps the preview under 3 % of the denoising time; plus
  the measured end-to-end cost of previews at every step (a run with previews against one without).
- draft: the same request at 30 steps (Euler a, guidance 7.5) and as a draft (4 steps, Euler trailing, no
  guidance), alternately: end to end, denoise, the median of the pairs' ratios; the memory of
  the draft's merged copy of the weights the LoRA changes (CUDA: also allocated bytes after loading), and one
  switch between the modes with that copy beside the weights and in CPU memory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import torch
from diffusers import AutoencoderTiny, UNet2DConditionModel

from benchmarks.bench_generate import (
    PLANS,
    ROOT,
    SDXL_UNET_CONFIG,
    Plan,
    benchmark_request,
    engine_for,
    free_memory,
    header,
    output_path,
    png_bytes,
    standing_pose,
)
from pipelines.generation import GenerationEngine
from pipelines.generation.draft import DraftWeights
from pipelines.generation.engine import SYNCHRONIZE, resolve_device
from pipelines.generation.tiny import build_tiny_pipeline, save_random_lora, save_tiny_taesd
from pipelines.settings import Settings

PREVIEW_BUDGET = 0.03  # a preview may cost at most this fraction of the denoising time
LORA_FILE = "draft_lora.safetensors"
SDXL_LORA_RANK = 64
FULL_STEPS = 30
QUICK_FULL_STEPS = 8  # --quick: enough to compare with 4 draft steps, fast enough for the tests
PREVIEW_SAMPLES = (1, 4)


def write_extras(folder: Path, full_size: bool) -> dict[str, str]:
    """The preview decoder and the draft LoRA, saved for the real loaders; returns their settings."""
    if full_size:
        AutoencoderTiny().save_pretrained(folder / "taesd")
        with torch.device("meta"):
            unet = UNet2DConditionModel(**SDXL_UNET_CONFIG)
        # Small weights: random LoRA deltas must not overflow fp16 activations over 4 steps.
        save_random_lora(unet, folder / "lora", LORA_FILE, rank=SDXL_LORA_RANK, std=1e-3)
    else:
        save_tiny_taesd(folder / "taesd")
        save_random_lora(build_tiny_pipeline().unet, folder / "lora", LORA_FILE)
    return {
        "preview_model": str(folder / "taesd"),
        "draft_lora": str(folder / "lora"),
        "draft_lora_file": LORA_FILE,
    }


def synchronize(engine: GenerationEngine) -> None:
    SYNCHRONIZE.get(engine.device.type, lambda: None)()


def timed_runs(call, warmup: int, runs: int) -> list[float]:
    for _ in range(warmup):
        call()
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def median(values: Iterable[float]) -> float:
    return round(statistics.median(values), 4)


def ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 3)


def run_request(engine: GenerationEngine, request, preview=None) -> dict:
    started = time.perf_counter()
    result = engine.generate(request, standing_pose(), preview=preview)
    png_bytes(result.images)
    return {**result.timings, "end_to_end": time.perf_counter() - started}


def median_runs(engine: GenerationEngine, request, plan: Plan, preview=None) -> dict:
    for _ in range(plan.warmup):
        run_request(engine, request, preview)
    rows = [run_request(engine, request, preview) for _ in range(plan.runs)]
    return {key: round(statistics.median(row[key] for row in rows), 4) for key in ("end_to_end", "denoise")}


def previews(engine: GenerationEngine, plan: Plan, steps: int, counts: tuple[int, ...]) -> dict:
    """The previewer alone on latents of the plan's size, then whole runs with and without previews."""
    latent = plan.size // 8
    decode_ms = {}
    for samples in counts:
        latents = torch.randn(samples, 4, latent, latent, device=engine.device, dtype=engine.dtype)

        def decode(latents: torch.Tensor = latents) -> None:
            engine._previewer(latents)  # includes the copy to the CPU and the PIL images
            synchronize(engine)

        decode_ms[str(samples)] = ms(timed_runs(decode, warmup=2, runs=max(plan.runs, 5)))
    rows = {}
    for samples in counts:
        request = benchmark_request(plan, samples, num_inference_steps=steps)
        off = median_runs(engine, request, plan)
        every_step = median_runs(
            replace_preview_every(engine, 1), request, plan, preview=lambda images, step, total: None
        )
        step_ms = 1000 * off["denoise"] / steps
        per_preview = decode_ms[str(samples)]
        rows[str(samples)] = {
            "ms_per_step": round(step_ms, 3),
            "preview_decode_ms": per_preview,
            "preview_fraction_of_a_step": round(per_preview / step_ms, 4),
            "preview_every_for_budget": next(
                k for k in range(1, steps + 1) if per_preview / (k * step_ms) <= PREVIEW_BUDGET
            )
            if per_preview / (steps * step_ms) <= PREVIEW_BUDGET
            else None,
            "end_to_end_s_without_previews": off["end_to_end"],
            "end_to_end_s_preview_every_step": every_step["end_to_end"],
            "measured_ms_per_step_with_a_preview_each_step": round(
                1000 * (every_step["end_to_end"] - off["end_to_end"]) / (steps - 1), 3
            ),
        }
    replace_preview_every(engine, engine.settings.preview_every)
    return {"previewer": engine.runtime.get("previews"), "preview_size": engine.settings.preview_size, **rows}


def replace_preview_every(engine: GenerationEngine, every: int) -> GenerationEngine:
    """The engine reads preview_every per request, so the loaded weights serve both runs."""
    engine.settings = engine.settings.replace(preview_every=every)
    return engine


def draft(engine: GenerationEngine, plan: Plan, steps: int, counts: tuple[int, ...]) -> dict:
    """A full run and a draft of the same request, alternately (Draft, then Final, as a designer works):
    each pair ran under the same machine conditions, so the ratio is the median of the pairs' ratios. Each
    request of the pair switches the weights (`switch_ms` below is that cost alone)."""
    rows = {}
    for samples in counts:
        full_request = benchmark_request(plan, samples, num_inference_steps=steps)
        draft_request = benchmark_request(plan, samples, draft=True)
        for _ in range(plan.warmup):
            run_request(engine, full_request)
            run_request(engine, draft_request)
        pairs = [
            (run_request(engine, full_request), run_request(engine, draft_request)) for _ in range(plan.runs)
        ]

        rows[str(samples)] = {
            "full_end_to_end_s": median(full["end_to_end"] for full, _ in pairs),
            "draft_end_to_end_s": median(quick["end_to_end"] for _, quick in pairs),
            "full_denoise_s": median(full["denoise"] for full, _ in pairs),
            "draft_denoise_s": median(quick["denoise"] for _, quick in pairs),
            "end_to_end_ratio": round(median(f["end_to_end"] / q["end_to_end"] for f, q in pairs), 2),
            "denoise_ratio": round(median(f["denoise"] / q["denoise"] for f, q in pairs), 2),
            "end_to_end_ratios": sorted(round(f["end_to_end"] / q["end_to_end"], 2) for f, q in pairs),
        }
    return {
        "recipe": engine.runtime.get("draft"),
        "full_steps": steps,
        **rows,
        "switch_ms": switch_ms(engine, plan),
    }


def switch_ms(engine: GenerationEngine, plan: Plan) -> dict[str, float]:
    """One swap of the merged weights (Draft ↔ full), median of an even number, so the models end as they
    began. `copy_on_cpu` is the same weights held in CPU memory (pinned on CUDA), as that setting makes it."""
    weights = engine._draft_weights
    pinned = engine.device.type == "cuda"
    on_cpu = DraftWeights(
        [(p, o.cpu().pin_memory() if pinned else o.cpu().clone()) for p, o in weights._pairs], on_cpu=True
    )
    rounds = 2 * max(plan.runs, 3)
    return {
        "beside_the_weights": ms(timed_runs(weights.swap, warmup=2, runs=rounds)),
        "copy_on_cpu": ms(timed_runs(on_cpu.swap, warmup=2, runs=rounds)),
    }


def run(plan: Plan, settings: Settings, parts: tuple[str, ...], quick: bool) -> dict:
    device = resolve_device(settings.device)
    with tempfile.TemporaryDirectory() as scratch:
        extras = write_extras(Path(scratch), full_size=plan.preset == "random-sdxl")
        engine = engine_for(plan, settings.replace(**extras))
        report = header(plan, engine.device, engine.dtype)
        report["load_average"] = os.getloadavg()[0]  # other work on the machine skews CPU figures
        steps = QUICK_FULL_STEPS if quick else FULL_STEPS
        before = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
        started = time.perf_counter()
        engine.load()
        report["load_s"] = round(time.perf_counter() - started, 2)
        report["runtime"] = engine.runtime
        report["notices"] = engine.notices
        report["draft_weights_bytes"] = engine._draft_weights.nbytes
        if device.type == "cuda":
            report["cuda_allocated_after_load_mb"] = round(
                (torch.cuda.memory_allocated(device) - before) / 2**20, 1
            )
        if "previews" in parts:
            report["previews"] = previews(engine, plan, steps, plan.samples[:1] if quick else PREVIEW_SAMPLES)
        if "draft" in parts:
            report["draft"] = draft(engine, plan, steps, plan.samples[:1] if quick else plan.samples)
        del engine
        free_memory()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny preset, 64x64, one run (for the tests)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--parts", default="previews,draft", help="previews and/or draft (comma list)")
    parser.add_argument("--runs", type=int, help="measured runs per point (default: the plan's)")
    parser.add_argument("--warmup", type=int, help="warm-up runs per point (default: the plan's)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    device = resolve_device(settings.device)
    plan = PLANS["quick" if args.quick else device.type if device.type in PLANS else "cpu"]
    if args.runs:
        plan = replace(plan, runs=args.runs)
    if args.warmup is not None:
        plan = replace(plan, warmup=args.warmup)
    settings = settings.replace(preset=plan.preset, device=device.type if plan.preset != "tiny" else "cpu")
    args.out.mkdir(parents=True, exist_ok=True)
    report = run(plan, settings, tuple(part.strip() for part in args.parts.split(",")), args.quick)
    path = output_path(args.out, report, args.quick, kind="tuning")
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("previews", "draft") if key in report}, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
