"""The app started exactly as the README says (`python app.py --preset tiny`), as a new user has it: no
POSE_STUDIO_*, GRADIO_* or XDG_* variables, and a fresh, empty HOME that is neither in the system temp folder
nor in the checkout. Gradio serves files from those two folders (and the working directory) on its own, so a
test whose caches live there cannot see a cache that Gradio refuses to serve."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.app_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    _wait_until_up,
    free_port,
    synthetic_photo,
    write_png,
)
from ui.layout import EXAMPLES

STRIPPED_PREFIXES = ("POSE_STUDIO_", "GRADIO_", "XDG_")
PRESET_TIMEOUT_MS = 180_000  # a preset's first click generates its example: 30 steps at its SDXL bucket
ARTIFACTS = REPO / "tests" / "artifacts"
SERVED_FOLDERS = (Path(tempfile.gettempdir()).resolve(), REPO)  # what Gradio serves without being told


def home_parent() -> Path:
    """Where to make the fresh HOME: the user's cache folder, or beside the checkout, whichever is writable
    and outside every folder Gradio serves by default (a HOME there would hide the bug this file tests)."""
    for candidate in (Path.home() / ".cache" / "pose-studio-tests", REPO.parent / ".pose-studio-tests"):
        resolved = candidate.resolve()
        if any(resolved.is_relative_to(served) for served in SERVED_FOLDERS):
            continue
        try:
            resolved.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        return resolved
    pytest.fail(f"no writable folder outside {[str(folder) for folder in SERVED_FOLDERS]} for a fresh HOME")


def user_environment(home: Path) -> dict[str, str]:
    """This process's environment without any Pose Studio, Gradio or XDG setting, with HOME at `home`."""
    kept = {name: value for name, value in os.environ.items() if not name.startswith(STRIPPED_PREFIXES)}
    return {**kept, "HOME": str(home)}


@contextmanager
def app_as_a_new_user() -> Iterator[tuple[str, Path]]:
    """`python app.py --preset tiny` (the venv's python, from the checkout, as scripts/app.sh runs it) on a
    free port; yields its URL and its log file; stops it and deletes the HOME it had."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=home_parent()))
    log_path = home.parent / f"{home.name}.log"
    command = [sys.executable, "app.py", "--preset", "tiny", "--port", str(free_port())]
    try:
        with log_path.open("w") as log:
            process = subprocess.Popen(
                command, cwd=REPO, env=user_environment(home), stdout=log, stderr=subprocess.STDOUT
            )
        try:
            url = f"http://127.0.0.1:{command[-1]}/"
            _wait_until_up(url, process, log_path)
            yield url, log_path
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        shutil.rmtree(home, ignore_errors=True)
        log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def new_user_app() -> Iterator[tuple[str, Path]]:
    with app_as_a_new_user() as running:
        yield running


@pytest.mark.server
@pytest.mark.smoke
def test_pose_and_generate_answer_with_the_defaults(new_user_app, tmp_path):
    url, log_path = new_user_app
    client = Client(url, verbose=False)
    photo = write_png(tmp_path / "photo.png", synthetic_photo())

    pose_png, openpose = client.predict(
        image=handle_file(str(photo)), draw_mode="full-pose", api_name="/dwpose"
    )
    assert (openpose["canvas_width"], openpose["canvas_height"]) == (240, 320)
    assert Image.open(pose_png).size == (240, 320)

    images, seeds = client.predict(
        image=handle_file(str(REPO / "assets" / "poses" / "standing.json")),
        prompt="a knight",
        num_inference_steps=1,
        seed=5,
        width=128,
        height=128,
        api_name="/generate",
    )
    assert seeds == [5]
    assert [Image.open(image["image"]).size for image in images] == [(128, 128)]
    assert "Traceback" not in log_path.read_text()


@pytest.mark.browser
@pytest.mark.timeout(1500)  # six example generations at SDXL buckets: 90-120 s each on two busy CPU cores
def test_every_pose_preset_shows_its_result(new_user_app):
    """Click each preset on a fresh page: its pose and its example appear, and Gradio serves them."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it)")
    url, log_path = new_user_app
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(PRESET_TIMEOUT_MS)
        page.goto(url)
        page.wait_for_selector("#generate")
        ARTIFACTS.mkdir(exist_ok=True)
        assert page.inner_text("#runtime") == "Runs on: DWPose: CPU · SDXL (tiny stand-in): cpu fp32"
        page.screenshot(path=str(ARTIFACTS / "fresh-install-top.png"))
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=str(ARTIFACTS / "fresh-install-390.png"))
        page.set_viewport_size({"width": 1440, "height": 900})
        for name, _prompt in EXAMPLES:
            label = Path(name).stem
            before = _sources(page, "#pose-preview img")
            page.get_by_role("button", name=label, exact=True).click()
            page.wait_for_function(
                "old => { const now = [...document.querySelectorAll('#pose-preview img')].map(i => i.src);"
                " if (document.body.innerText.includes('Error')) return true;"
                " return now.length === 2 && JSON.stringify(now) !== JSON.stringify(old)"
                " && document.querySelectorAll('#gallery img').length >= 2"
                " && !document.querySelector('#gallery .pending, #pose-preview .pending'); }",
                arg=before,
            )
            page.wait_for_timeout(500)  # a late "Error" mark would show by now
            page.screenshot(path=str(ARTIFACTS / f"fresh-install-{label}.png"))
            assert "Error" not in page.inner_text("body"), f"preset {label}: {log_path.read_text()[-2000:]}"
            for source in _sources(page, "#gallery img") + _sources(page, "#pose-preview img"):
                response = page.request.get(source)
                assert response.status == 200, f"preset {label}: {source} is not served"
                assert _image_size(response.body())[0] > 0
        browser.close()
    assert "InvalidPathError" not in log_path.read_text()


def _sources(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "images => images.map(image => image.src)")


def _image_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size
