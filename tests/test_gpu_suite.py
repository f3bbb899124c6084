"""benchmarks/gpu/run.sh, the one GPU call, dry-run on the CPU: every step's command runs (tiny preset, quick
plans), writes its JSON where the table reads it, and the table comes out, so the first GPU call works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.gpu.suite import STEPS, run_suite
from benchmarks.install_wheels import needed

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(2400)  # five processes, each importing torch and building models: minutes when busy
def test_run_sh_dry_run_runs_every_step_and_prints_the_table(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OUT": str(tmp_path), "WHEELS": str(tmp_path / "none")}
    done = subprocess.run(
        ["bash", "benchmarks/gpu/run.sh", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = tmp_path / "results"
    suite = json.loads((results / "suite.json").read_text())
    assert suite["dry_run"] is True
    assert [row["step"] for row in suite["steps"]] == [step.name for step in STEPS]
    assert {row["status"] for row in suite["steps"]} == {"ok"}
    headline = json.loads((results / "headline" / "generate_cpu_quick.json").read_text())
    assert set(headline["speedup_vs_stock"]) == {"1", "2"}
    tuning = json.loads((results / "tuning" / "tuning_cpu_quick.json").read_text())
    assert tuning["runtime"]["previews"] == "TAESD" and tuning["notices"] == {}
    assert tuning["draft"]["1"]["draft_denoise_s"] < tuning["draft"]["1"]["full_denoise_s"]
    assert tuning["previews"]["1"]["preview_decode_ms"] > 0
    assert tuning["draft_weights_bytes"] > 0
    assert set(tuning["draft"]["switch_ms"]) == {"beside_the_weights", "copy_on_cpu"}
    first = json.loads((results / "compile" / "generate_cpu_quick.json").read_text())
    assert "compile off" in first["first_request_s"]
    levers = json.loads((results / "levers" / "levers_cpu_quick.json").read_text())
    assert [row["lever"] for row in levers["levers"]][:2] == ["baseline", "channels_last"]
    probe = json.loads((results / "probe" / "probe.json").read_text())
    assert probe["accelerator"] == {"cuda": False}
    table = done.stdout[done.stdout.index("| figure | value |") :]
    for figure in (
        "| 1 sample(s): stock → engine (s) |",
        "| TAESD preview, 1 sample(s) |",
        "| draft vs 8 steps",
        "a mode switch (ms) |",
    ):
        assert figure in table
    assert "no wheels in" in done.stdout


def test_steps_past_the_budget_are_skipped_and_recorded(tmp_path):
    rows = run_suite(tmp_path, budget=0, dry_run=True)
    assert [row["status"] for row in rows] == ["skipped: 0 s of the budget left"] * len(STEPS)


def test_install_wheels_keeps_what_the_machine_has_and_adds_what_it_lacks(tmp_path):
    import diffusers

    have = tmp_path / f"diffusers-{diffusers.__version__}-py3-none-any.whl"
    lacks = tmp_path / "not_a_real_package-1.0-py3-none-any.whl"
    assert needed(have) == (False, f"diffusers: {diffusers.__version__} already there")
    assert needed(lacks) == (True, "not_a_real_package: missing, installing 1.0")


def test_the_carried_wheels_are_pinned():
    lines = [
        line for line in (ROOT / "benchmarks/gpu/wheels.txt").read_text().splitlines() if line[:1].isalpha()
    ]
    assert lines and all("==" in line for line in lines)
    assert any(line.startswith("diffusers==") for line in lines) and any(
        line.startswith("peft==") for line in lines
    )
