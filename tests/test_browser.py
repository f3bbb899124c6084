"""End to end in Debian's headless Chromium, driven by Playwright, at 1440×900 and 390×844: where Generate is,
the conditioning preview against the run's, people, the status line, send to panel, the run's zip."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from tests.app_helpers import (
    REPO,
    chromium_browser,
    fill_small_generation,
    running_app,
)
from tests.test_ui_handlers import hand_and_face_pixels

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT_MS = 60_000
PRESET = REPO / "assets" / "poses" / "t-pose.json"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
POSE_MODES = {"full-pose": "Full pose", "body-pose": "Body", "face-pose": "Face", "hand-pose": "Hands"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(tmp_path_factory.mktemp("browser-app")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as browser:
        yield browser


def open_page(browser, server, viewport=DESKTOP, **options):
    page = browser.new_page(viewport=viewport, **options)
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server)
    page.wait_for_selector("#generate")
    return page


@pytest.fixture
def page(browser, server):
    page = open_page(browser, server)
    yield page
    page.close()


def image_at(page, selector: str) -> np.ndarray:
    """The pixels the page shows in `selector`'s image, fetched from the server as the browser got them."""
    source = page.get_attribute(selector, "src")
    response = page.request.get(source)
    assert response.status == 200, source
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))


def status(page, selector: str = "#status") -> str:
    return page.inner_text(selector).strip()


def wait_for_status(page, prefix: str, selector: str = "#status", old: str | None = None) -> str:
    """The status line once it starts with `prefix` (and is no longer `old`, the text before the action)."""
    try:
        page.wait_for_function(
            "([selector, prefix, old]) => { const text = document.querySelector(selector).innerText.trim();"
            " return text.startsWith(prefix) && text !== old; }",
            arg=[selector, prefix, old],
        )
    except playwright_api.TimeoutError:
        pytest.fail(f"{selector} never started with {prefix!r}; it says {status(page, selector)!r}")
    return status(page, selector)


def wait_for_new_image(page, selector: str, old: str | None) -> None:
    page.wait_for_function(
        "([selector, old]) => { const image = document.querySelector(selector);"
        " return image && image.src && image.src !== old; }",
        arg=[selector, old],
    )


def load_preset_pose(page, name: str = "t-pose") -> None:
    shown = page.locator("#pose-conditioning img").count()
    old = page.get_attribute("#pose-conditioning img", "src") if shown else None
    page.click(f"#preset-{name}")
    wait_for_new_image(page, "#pose-conditioning img", old)


def test_generate_is_in_the_first_viewport_and_the_results_beside_the_controls(page, browser, server):
    box = page.locator("#generate").bounding_box()
    assert box["y"] + box["height"] <= DESKTOP["height"], f"Generate ends at y={box['y'] + box['height']}"
    preview, prompt = (
        page.locator("#pose-conditioning").bounding_box(),
        page.locator("#prompt").bounding_box(),
    )
    assert preview["x"] > prompt["x"] + prompt["width"]  # the results column is to the right
    assert preview["y"] < DESKTOP["height"] / 2  # and starts at the top
    for label in ("standing", "t-pose", "sitting"):  # presets above the fold, not under the results
        preset = page.locator(f"#preset-{label}").bounding_box()
        assert preset["y"] + preset["height"] <= DESKTOP["height"]
    assert not page.locator("#downloads").is_visible()  # nothing to download yet: no empty box
    page.click("#advanced button")
    assert page.locator("#width input[type=number]").is_disabled()  # the size comes from the pose
    page.click("#advanced button")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "page-1440.png"))

    phone = open_page(browser, server, PHONE, has_touch=True, is_mobile=True)
    order = [phone.locator(selector).bounding_box()["y"] for selector in ("#upload", "#prompt", "#generate")]
    assert order == sorted(order)
    generate, preview = (
        phone.locator("#generate").bounding_box(),
        phone.locator("#pose-conditioning").bounding_box(),
    )
    assert generate["y"] < preview["y"]  # right after the pose and the prompt, before the results
    assert generate["y"] < 1400, f"Generate is {generate['y']} px down on a phone"
    phone.screenshot(path=str(ARTIFACTS / "page-390.png"))
    phone.screenshot(path=str(ARTIFACTS / "page-390-full.png"), full_page=True)
    phone.close()


def test_the_galleries_conditioning_is_the_previews_pixel_for_pixel_in_every_pose_mode(page):
    load_preset_pose(page)
    fill_small_generation(page, "a dancer on a stage", steps=1, size=512)  # hands big enough to see
    drawn = {}
    for mode, label in POSE_MODES.items():
        page.get_by_label(label, exact=True).check()
        page.wait_for_function(
            "label => document.querySelector('#pose-conditioning').innerText.includes(label)",
            arg=f"{label.lower()}, 512×512",
        )
        page.wait_for_timeout(300)  # the image of that label is in
        preview = image_at(page, "#pose-conditioning img")
        before = status(page)
        page.click("#generate")
        wait_for_status(page, "✅", old=before)
        conditioning = image_at(page, "#gallery .thumbnail-item img")
        assert conditioning.shape == (512, 512, 3) and np.array_equal(conditioning, preview), mode
        drawn[mode] = preview
    hands, face = hand_and_face_pixels(drawn["full-pose"])
    assert hands > 0 and face > 0
    assert hand_and_face_pixels(drawn["body-pose"]) == (0, 0)
    page.screenshot(path=str(ARTIFACTS / "conditioning-hands.png"))


def test_a_mask_mode_says_so_at_generate_and_offers_a_pose_mode(page):
    load_preset_pose(page)
    page.get_by_label("Face mask", exact=True).check()
    notice = page.locator("#mask-notice")
    notice.wait_for(state="visible")
    assert "is a mask for inpainting, not a pose" in notice.inner_text()
    page.fill("#prompt textarea", "a dancer")
    page.click("#generate")
    assert "inpainting" in wait_for_status(page, "❌")
    page.click("#switch-mode")
    notice.wait_for(state="hidden")
    assert page.get_by_label("Full pose", exact=True).is_checked()


def test_status_line_errors_persist_without_toasts_or_badges(page, tmp_path):
    page.fill("#prompt textarea", "a dancer")
    page.click("#generate")
    text = wait_for_status(page, "❌")
    assert (
        text
        == "❌ Upload a photo, a pose JSON file or an OpenPose skeleton image first, or pick a pose preset."
    )
    page.click("#generate")  # again: the same line, not a second stacked message
    page.wait_for_timeout(1500)
    assert status(page) == text and page.locator(".toast-body").count() == 0
    assert "Error" not in page.inner_text("body")

    corrupt = tmp_path / "holiday.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not a real jpeg at all")
    page.set_input_files("#upload input[type=file]", str(corrupt))
    page.wait_for_function("document.querySelector('#pose-info').innerText.includes('corrupt or truncated')")
    page.wait_for_timeout(6000)  # longer than a toast lives: the message is still there
    assert "corrupt or truncated" in page.inner_text("#pose-info")
    assert page.locator("#pose-conditioning img").count() == 0
    page.screenshot(path=str(ARTIFACTS / "error-status.png"))


def test_generate_then_selection_seed_send_to_panel_cancel_and_the_zip(page, tmp_path):
    load_preset_pose(page)
    fill_small_generation(page, "a dancer on a stage", steps=2)
    page.click("#use-seed")
    assert wait_for_status(page, "⚠️") == (
        "⚠️ No sample is selected. Click a sample in the gallery first, then press this button again."
    )
    page.locator("#samples input[type=number]").fill("2")
    page.locator("#samples input[type=number]").press("Enter")
    page.locator("#prompt textarea").press("Enter")  # Enter in the prompt runs Generate
    summary = wait_for_status(page, "✅ 2 sample(s) at 128×128, body, Euler a, 2 steps")
    seeds = [int(seed) for seed in summary.split("Seeds: ")[1].rstrip(".").split(", ")]
    assert page.locator("#gallery .caption-label").all_inner_texts() == [
        "conditioning 128×128",
        f"#1 · seed {seeds[0]}",
        f"#2 · seed {seeds[1]}",
    ]
    page.screenshot(path=str(ARTIFACTS / "after-generate-1440.png"))

    # The zip holds the pose used, the conditioning, the samples and the record.
    zip_link = page.locator("#downloads tr", has_text=".zip").locator("a").first
    archive = page.request.get(zip_link.get_attribute("href"))
    with zipfile.ZipFile(io.BytesIO(archive.body())) as bundle:
        names = set(bundle.namelist())
        pose = json.loads(bundle.read("pose.json"))
    assert {"pose.json", "conditioning.png", "result.json"} < names and len(pose["people"]) == 1

    # Select sample 2, change the panel, then send the sample's settings back to it.
    page.locator("#gallery .thumbnail-item").nth(2).click()
    assert wait_for_status(page, "Sample #2 selected").startswith(f"Sample #2 selected (seed {seeds[1]})")
    page.keyboard.press("Escape")
    page.fill("#prompt textarea", "something else")
    page.locator("#steps input[type=number]").fill("9")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#send-to-panel")
    wait_for_status(page, f"✅ Settings from sample #2, seed {seeds[1]} are in the panel.")
    assert page.locator("#prompt textarea").input_value() == "a dancer on a stage"
    assert page.locator("#steps input[type=number]").input_value() == "2"
    assert page.locator("#seed input").input_value() == str(seeds[1])
    assert not page.get_by_label("Randomise seed").is_checked()

    # A PNG dropped on the page fills the panel the same way.
    sample = page.locator("#downloads tr", has_text=f"sample-1-seed-{seeds[0]}").locator("a").first
    png = tmp_path / "from-a-colleague.png"
    png.write_bytes(page.request.get(sample.get_attribute("href")).body())
    page.fill("#prompt textarea", "something else")
    page.set_input_files("#settings-png input[type=file]", str(png))
    wait_for_status(page, f"✅ Settings from from-a-colleague.png, seed {seeds[0]} are in the panel.")
    assert page.locator("#prompt textarea").input_value() == "a dancer on a stage"

    # Cancel a long run: the status says at which step, the finished run stays.
    captions = page.locator("#gallery .caption-label").all_inner_texts()
    page.locator("#steps input[type=number]").fill("100")
    page.locator("#steps input[type=number]").press("Enter")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#gallery .caption-label').length === 0")  # a preview
    page.click("#cancel")
    text = wait_for_status(page, "⏹ Cancelled at step ")
    assert text.endswith("of 100; the previous results are kept.")
    page.wait_for_function(
        "n => document.querySelectorAll('#gallery .caption-label').length === n", arg=len(captions)
    )
    assert page.locator("#gallery .caption-label").all_inner_texts() == captions
    assert "Error" not in page.inner_text("body")
    page.screenshot(path=str(ARTIFACTS / "after-cancel-1440.png"))


def test_several_people_are_numbered_and_chosen(page, tmp_path):
    data = json.loads(PRESET.read_text())
    second = json.loads(json.dumps(data["people"][0]))
    for key, values in second.items():
        if key.endswith("_2d"):
            second[key] = [v - 350 if i % 3 == 0 and values[i + 2] > 0 else v for i, v in enumerate(values)]
    data["people"].append(second)
    path = tmp_path / "two.json"
    path.write_text(json.dumps(data))
    page.set_input_files("#upload input[type=file]", str(path))
    page.wait_for_function("document.querySelector('#pose-info').innerText.includes('2 people')")
    both = image_at(page, "#pose-conditioning img")
    page.wait_for_function(  # everyone in, by default
        "JSON.stringify([...document.querySelectorAll('#people .token')].map(t => t.innerText.trim()))"
        " === JSON.stringify(['Person 1', 'Person 2'])"
    )
    page.wait_for_timeout(500)  # the updates that follow a new pose (size fields, editor) land first
    page.click('#people .token-remove[title="Remove 1"]')  # leave person 2 out
    # The summary and the preview come in one response: once it says so, the image is the new one.
    page.wait_for_function(
        "document.querySelector('#pose-info').innerText.includes('1 of 2 in the conditioning')"
    )
    one = image_at(page, "#pose-conditioning img")
    assert 0 < (one > 0).sum() < (both > 0).sum()
    page.screenshot(path=str(ARTIFACTS / "two-people-1440.png"))


def test_the_page_works_on_a_phone(browser, server):
    phone = open_page(browser, server, PHONE, has_touch=True, is_mobile=True)
    phone.tap("#preset-standing")
    phone.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
    fill_small_generation(phone, "a knight", steps=1)
    phone.tap("#generate")
    wait_for_status(phone, "✅ 1 sample(s) at 128×128")
    gallery = phone.locator("#gallery").bounding_box()
    assert gallery["width"] <= PHONE["width"]
    phone.screenshot(path=str(ARTIFACTS / "after-generate-390.png"), full_page=True)
    phone.close()
