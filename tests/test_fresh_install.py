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
    fill_small_generation,
    free_port,
    synthetic_photo,
    write_png,
)
from ui.pose_panel import PRESETS

STRIPPED_PREFIXES = ("POSE_STUDIO_", "GRADIO_", "XDG_")
PRESET_TIMEOUT_MS = 90_000
PREVIEW_IMAGES = "#pose-overlay img, #pose-conditioning img"
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
@pytest.mark.timeout(600)
def test_every_pose_preset_shows_its_pose_and_generate_makes_a_picture(new_user_app):
    """Click each preset on a fresh page: its pose, its conditioning and its prompt appear, and Gradio serves
    them; then Generate from the last one gives a served picture and a status line."""
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
        # The line says it is checking until torch and onnxruntime are imported in the background.
        page.wait_for_function("document.querySelector('#runtime').innerText.startsWith('Runs on: DWPose')")
        assert page.inner_text("#runtime") == "Runs on: DWPose: CPU · SDXL (tiny stand-in): cpu fp32"
        page.screenshot(path=str(ARTIFACTS / "fresh-install-top.png"))
        for name, prompt in PRESETS:
            label = Path(name).stem
            before = _sources(page, PREVIEW_IMAGES)
            page.click(f"#preset-{label}")
            page.wait_for_function(  # the summary names the file: this preset's pose is in
                "name => document.querySelector('#pose-info').innerText.includes(name)", arg=name
            )
            page.wait_for_function(
                "([old, selector]) => { const now = [...document.querySelectorAll(selector)].map(i => i.src);"
                " return now.length === 2 && JSON.stringify(now) !== JSON.stringify(old)"
                " && !document.querySelector('#pose-overlay .pending, #pose-conditioning .pending'); }",
                arg=[before, PREVIEW_IMAGES],
            )
            assert page.locator("#prompt textarea").input_value() == prompt
            assert "1 person" in page.inner_text("#pose-info")
            for source in _sources(page, PREVIEW_IMAGES):
                response = page.request.get(source)
                assert response.status == 200, f"preset {label}: {source} is not served"
                assert _image_size(response.body())[0] > 0
        fill_small_generation(page, prompt, steps=2)
        page.click("#generate")
        page.wait_for_function("document.querySelector('#status').innerText.startsWith('✅')")
        page.screenshot(path=str(ARTIFACTS / "fresh-install-generated.png"))
        assert page.inner_text("#status").startswith("✅ 1 sample(s) at 128×128, body, ")
        for source in _sources(page, "#gallery img"):
            response = page.request.get(source)
            assert response.status == 200, f"{source} is not served"
        assert "Error" not in page.inner_text("body"), log_path.read_text()[-2000:]
        browser.close()
    assert "InvalidPathError" not in log_path.read_text()


def _sources(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "images => images.map(image => image.src)")


def _image_size(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size
