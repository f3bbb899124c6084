"""The GPU benchmark suite in one call, most important first, inside a time budget (run.sh calls this).

    python3 -m benchmarks.gpu.suite --out DIR [--budget 480] [--dry-run]

Each step is its own process with its own time limit (the smaller of its cap and what is left of the
budget), so a compile that hangs or a step that runs out of memory costs only that step. Each writes its
JSON into DIR/<step>/ and its log into DIR/logs/; the suite writes DIR/suite.json (every step's status,
seconds and log tail) and prints a short table. --dry-run: the same steps on the CPU with the tiny preset
and one quick run each, each step limited only by the budget (the tests run this), so the commands, files
and table are known to work before GPU time is spent.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

GPU_BUDGET_S = 480  # about 8 minutes: the call's 10-minute limit less the wheels and the machine's start
DRY_BUDGET_S = 1800  # the CPU dry run ignores the steps' caps (they are sized for the GPU), not the budget
MIN_STEP_S = 30  # a step is not started with less time than this left
LOG_TAIL = 3000


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]  # python -m ... on the GPU
    dry_argv: tuple[str, ...]  # the CPU dry run
    cap_s: int
    what: str


LEVERS = (
    "channels_last,fuse_qkv,skip_idle_controlnet,sequential_guidance,attention=flash,attention=cudnn,bf16"
)
STEPS: tuple[Step, ...] = (
    Step(
        "probe",
        ("benchmarks.gpu.probe",),
        ("benchmarks.gpu.probe",),
        60,
        "versions, GPU, onnxruntime providers, DWPose GPU latency (needs the real DWPose files)",
    ),
    Step(
        "headline",
        ("benchmarks.bench_generate", "--parts", "stock,engine"),
        ("benchmarks.bench_generate", "--quick", "--parts", "stock,engine"),
        210,
        "stock diffusers vs the engine, 1024², 30 steps, Euler a, 1 and 4 samples, median of 5 warm runs",
    ),
    Step(
        "tuning",
        ("benchmarks.bench_tuning", "--runs", "3", "--warmup", "1"),
        ("benchmarks.bench_tuning", "--quick"),
        150,
        "TAESD preview cost per step, the preview_every it allows; draft (4 steps) vs 30 steps; LoRA memory",
    ),
    Step(
        "compile",
        ("benchmarks.bench_generate", "--parts", "first", "--compile-mode", "default"),
        ("benchmarks.bench_generate", "--quick", "--parts", "first"),
        150,
        "first request after start, compile off and on (regional compile, warm-up included)",
    ),
    Step(
        "levers",
        ("benchmarks.bench_generate", "--levers", LEVERS, "--runs", "3"),
        ("benchmarks.bench_generate", "--quick", "--levers", "channels_last"),
        240,
        "each lever alone against the stock-valued engine, then the helpful ones together (1 sample); the "
        "JSON is rewritten after each row, so a time limit keeps the rows done",
    ),
)


def run_step(step: Step, out: Path, limit: float, dry_run: bool) -> dict:
    argv = [sys.executable, "-m", *(step.dry_argv if dry_run else step.argv), "--out", str(out / step.name)]
    started = time.perf_counter()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=limit)
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        log = done.stdout + done.stderr
    except subprocess.TimeoutExpired as expired:
        status = f"timed out after {limit:.0f} s"
        log = _text(expired.stdout) + _text(expired.stderr)
    seconds = round(time.perf_counter() - started, 1)
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / f"{step.name}.log").write_text(log)
    return {
        "step": step.name,
        "status": status,
        "seconds": seconds,
        "command": argv[2:],
        "log_tail": log[-LOG_TAIL:],
    }


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def run_suite(out: Path, budget: float, dry_run: bool) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + budget
    rows = []
    for step in STEPS:
        left = deadline - time.perf_counter()
        if left < MIN_STEP_S:
            status = f"skipped: {max(left, 0):.0f} s of the budget left"
            rows.append({"step": step.name, "status": status, "seconds": 0})
            continue
        row = run_step(step, out, left if dry_run else min(step.cap_s, left), dry_run)
        rows.append(row)
        print(f"[{row['seconds']:6.1f} s] {step.name}: {row['status']}", flush=True)
    return rows


def _load(out: Path, pattern: str) -> dict:
    files = sorted(out.glob(pattern))
    return json.loads(files[0].read_text()) if files else {}


def table(out: Path, rows: list[dict]) -> str:
    """The figures that decide the defaults, from the steps' JSON files, as a markdown table."""
    lines = ["| figure | value |", "|---|---|"]
    probe = _load(out, "probe/probe.json")
    if probe:
        gpu = probe["accelerator"].get("name", "no CUDA device")
        lines.append(
            f"| machine | {gpu}, torch {probe['versions']['torch']}, "
            f"diffusers {probe['versions']['diffusers']} |"
        )
        lines.append(f"| DWPose on GPU | {probe['dwpose_gpu']} |")
    generate = {**_load(out, "headline/generate_*.json"), **_load(out, "compile/generate_*.json")}
    for stock, ours in zip(generate.get("stock", []), generate.get("results", []), strict=False):
        samples = ours["samples"]
        lines.append(
            f"| {samples} sample(s): stock → engine (s) | {stock['median_end_to_end_s']} → "
            f"{ours['median_end_to_end_s']} (×{generate['speedup_vs_stock'][str(samples)]}), "
            f"peak {ours['peak_memory_mb']:.0f} MB, {ours['ms_per_step']} ms/step |"
        )
    for name, seconds in generate.get("first_request_s", {}).items():
        lines.append(f"| first request, {name} (s) | {seconds} |")
    tuning = _load(out, "tuning/tuning_*.json")
    for samples, row in tuning.get("previews", {}).items():
        if isinstance(row, dict):
            lines.append(
                f"| TAESD preview, {samples} sample(s) | {row['preview_decode_ms']} ms = "
                f"{100 * row['preview_fraction_of_a_step']:.1f} % of a step; preview_every for ≤ 3 %: "
                f"{row['preview_every_for_budget']} |"
            )
    drafts = tuning.get("draft", {})
    for samples, row in drafts.items():
        if samples.isdigit():
            lines.append(
                f"| draft vs {drafts['full_steps']} steps, {samples} sample(s) (s) | "
                f"{row['draft_end_to_end_s']} vs {row['full_end_to_end_s']} (×{row['end_to_end_ratio']}) |"
            )
    if "switch_ms" in drafts:
        switch = drafts["switch_ms"]
        lines.append(
            f"| draft weights {tuning['draft_weights_bytes'] / 2**20:.0f} MB; a mode switch (ms) | "
            f"{switch['beside_the_weights']} beside them, {switch['copy_on_cpu']} from CPU memory |"
        )
    levers = _load(out, "levers/levers_*.json")
    for row in levers.get("levers", []):
        if "skipped" not in row:
            lines.append(f"| lever {row['lever']} {row['value']} | ×{row.get('vs_baseline', 1.0)} |")
    lines += [f"| step {row['step']} | {row['status']}, {row['seconds']} s |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--budget",
        type=float,
        help=f"seconds for all steps together (default {GPU_BUDGET_S}; dry run {DRY_BUDGET_S})",
    )
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny preset, quick runs")
    args = parser.parse_args(argv)
    budget = args.budget or (DRY_BUDGET_S if args.dry_run else GPU_BUDGET_S)
    rows = run_suite(args.out, budget, args.dry_run)
    summary = table(args.out, rows)
    (args.out / "suite.json").write_text(
        json.dumps({"dry_run": args.dry_run, "steps": rows}, indent=2) + "\n"
    )
    print(summary)
    return 0 if all(row["status"] == "ok" for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
