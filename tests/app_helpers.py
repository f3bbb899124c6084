"""Shared by the UI and sweep tests: a generated photo, the real app started as `python app.py --preset tiny`,
a browser step, and a GPU running out of memory mid-run."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from diffusers import UNet2DConditionModel

REPO = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 90
CHROMIUM = Path("/usr/bin/chromium")  # Debian's, driven by Playwright in the browser tests
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]

# The generation panel's values as the page sends them (see ui.generate_panel.panel_request): small and quick.
# The browser's JSON sends whole floats as ints, so the scales are ints here too.
PANEL = {
    "prompt": "a dancer on a stage",
    "negative_prompt": "blurry",
    "samples": 1,
    "scheduler": "Euler a",
    "num_inference_steps": 3,
    "guidance_scale": 5,
    "controlnet_scale": 1,
    "seed": 7,
    "randomize_seed": False,
    "draft": False,
    "auto_size": False,
    "width": 128,
    "height": 96,
    "control_guidance_start": 0,
    "control_guidance_end": 1,
    "thick_lines": True,
}


def synthetic_photo(width: int = 240, height: int = 320) -> np.ndarray:
    """A colourful stand-in photo: a gradient backdrop and a figure; nothing like a black skeleton image."""
    rows = np.linspace(60, 200, height, dtype=np.uint8)[:, None]
    columns = np.linspace(40, 160, width, dtype=np.uint8)[None, :]
    image = np.stack([np.broadcast_to(rows, (height, width)), np.broadcast_to(columns, (height, width)),
                      np.full((height, width), 120, np.uint8)], axis=2).copy()  # fmt: skip
    centre = width // 2
    cv2.circle(image, (centre, height // 6), height // 14, (224, 172, 140), -1)
    cv2.rectangle(
        image, (centre - width // 8, height // 4), (centre + width // 8, height * 3 // 5), (40, 60, 170), -1
    )
    for side in (-1, 1):
        hip, foot = (centre + side * width // 16, height * 3 // 5), (centre + side * width // 10, height - 20)
        cv2.line(image, hip, foot, (50, 50, 60), 12)
    return image


def write_png(path: Path, image: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running_app(
    tmp_dir: Path, *flags: str, preset: str = "tiny", env: dict[str, str] | None = None
) -> Iterator[str]:
    """Start the app (offline, the tiny preset unless told) on a free port in a subprocess, with `env` added
    to its environment; yield its URL; stop it. Its log is kept in tmp_dir/app.log, shown if it never comes
    up."""
    port = free_port()
    process_env = {
        **os.environ,
        "POSE_STUDIO_CACHE_DIR": str(tmp_dir / "cache"),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "GRADIO_TEMP_DIR": str(tmp_dir / "gradio"),
        "HF_HUB_OFFLINE": "1",
        **(env or {}),
    }
    log_path = tmp_dir / "app.log"
    command = [
        sys.executable,
        "app.py",
        "--preset",
        preset,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *flags,
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=REPO, env=process_env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process, log_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_up(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the app did not answer within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()}")


@contextmanager
def chromium_browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright; the test is skipped when either is missing."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def fill_small_generation(page, prompt: str, steps: int, size: int = 128) -> None:
    """In the browser: a prompt, a fixed small size and few steps, so a run takes seconds on CPU."""
    page.fill("#prompt textarea", prompt)
    page.click("#advanced button")
    page.get_by_label("Size from the pose").uncheck()
    for selector, value in (("#width", size), ("#height", size), ("#steps", steps)):
        field = page.locator(f"{selector} input[type=number]")
        field.wait_for(state="visible")
        page.wait_for_function(f"!document.querySelector('{selector} input[type=number]').disabled")
        field.fill(str(value))
        field.press("Enter")


def run_out_of_memory_from_the_nth_unet_call(monkeypatch: pytest.MonkeyPatch, calls: int) -> None:
    """The GPU running out of memory mid-run: from its `calls`-th call on, the UNet raises what torch does."""
    original, seen = UNet2DConditionModel.forward, []

    def forward(self, *args, **kwargs):
        seen.append(1)
        if len(seen) >= calls:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(UNet2DConditionModel, "forward", forward)
