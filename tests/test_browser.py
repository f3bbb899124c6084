"""End to end in Debian's headless Chromium, driven by Playwright: upload, pose, mode, generate, errors."""

from __future__ import annotations

import pytest

from tests.app_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    fill_small_generation,
    running_app,
    synthetic_photo,
    write_png,
)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(tmp_path_factory.mktemp("browser-app")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("#generate")
    yield page
    page.close()


def preview_sources(page) -> list[str]:
    return page.eval_on_selector_all("#pose-preview img", "images => images.map(image => image.src)")


def test_upload_see_the_pose_change_mode_and_generate(page, tmp_path):
    photo = write_png(tmp_path / "dancer.png", synthetic_photo())
    assert "random stand-ins" in page.inner_text("#stand-in-banner")

    page.set_input_files("#upload input[type=file]", str(photo))
    page.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
    assert page.inner_text("#pose-info") == "Photo, 240×320: 1 person."
    before_mode_change = preview_sources(page)
    assert len(before_mode_change) == 2  # the overlay and the drawn mode, in the before/after slider

    page.get_by_label("Full pose", exact=True).check()
    page.wait_for_function(
        "old => { const now = [...document.querySelectorAll('#pose-preview img')].map(i => i.src);"
        " return now.length === 2 && now[1] !== old[1]; }",
        arg=before_mode_change,
    )

    fill_small_generation(page, "a dancer on a stage", steps=3)
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#gallery .caption-label').length === 2")
    captions = page.locator("#gallery .caption-label").all_inner_texts()
    seed = page.input_value("#seed input")
    assert captions == ["pose conditioning", f"seed {seed}"]
    assert page.locator("#downloads").inner_text().count(".png") == 1
    assert f"Seeds: {seed}" in page.inner_text("#status")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "after-generate.png"), full_page=True)

    # A long run, cancelled while its live preview (an image without a caption) is shown: the gallery goes
    # back to the finished run's images, and its downloads, seed and status stay.
    downloads, status = page.inner_text("#downloads"), page.inner_text("#status")
    steps = page.locator("#steps input[type=number]")
    steps.fill("100")
    steps.press("Enter")
    page.click("#generate")
    page.wait_for_function(
        "document.querySelectorAll('#gallery img').length > 0"
        " && document.querySelectorAll('#gallery .caption-label').length === 0"
    )
    page.click("#cancel")
    page.wait_for_function(
        "expected => JSON.stringify([...document.querySelectorAll('#gallery .caption-label')]"
        ".map(label => label.innerText)) === JSON.stringify(expected)",
        arg=captions,
    )
    page.wait_for_timeout(1000)  # a late "Error" mark from the cancelled event would show by now
    assert "Error" not in page.inner_text("#gallery")
    assert page.input_value("#seed input") == seed
    assert (page.inner_text("#downloads"), page.inner_text("#status")) == (downloads, status)


def test_a_corrupt_upload_shows_the_error(page, tmp_path):
    corrupt = tmp_path / "holiday.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a real jpeg at all")
    page.set_input_files("#upload input[type=file]", str(corrupt))
    toast = page.locator(".toast-body", has_text="corrupt or truncated")
    toast.wait_for()
    assert "Error" in toast.inner_text()
    assert preview_sources(page) == []  # nothing was drawn from the broken file
