"""The pose editor inside the real page (`python app.py --preset tiny`), in headless Chromium: a drag is the
pose the preview, Generate, a mode switch and the sweep use; the standing preset turned into "waving with the
right hand" and generated from, in screenshots; touch on a phone; no request leaves 127.0.0.1."""

from __future__ import annotations

import io
import json
import zipfile
from urllib.parse import urlparse

import numpy as np
import pytest
from PIL import Image

from pipelines.generation import GenerationRequest
from pipelines.generation.inputs import conditioning_for
from pipelines.pose.keypoints import from_openpose_json
from tests.app_helpers import (
    REPO,
    chromium_browser,
    fill_small_generation,
    running_app,
)

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

SHOTS = REPO / "tests" / "artifacts" / "editor-page"
STANDING = json.loads((REPO / "assets" / "poses" / "standing.json").read_text())
TIMEOUT_MS = 60_000
EDITOR = "#pose-editor"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(tmp_path_factory.mktemp("editor-page")) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as browser:
        yield browser


class Page:
    """The app in one browser page, recording every request it makes."""

    def __init__(self, browser, server: str, viewport: dict, touch: bool = False) -> None:
        self.context = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.goto(server)
        self.page.wait_for_selector("#generate")

    def standing_in_the_editor(self) -> None:
        self.page.click("#preset-standing")
        self.page.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
        self.page.click("#editor button")
        self.page.wait_for_selector(f'{EDITOR} circle[data-person="0"][data-part="body"][data-index="4"]')

    def centre(self, part: str, index: int) -> tuple[float, float]:
        joint = self.page.locator(f'{EDITOR} [data-person="0"][data-part="{part}"][data-index="{index}"]')
        joint.scroll_into_view_if_needed()
        box = joint.bounding_box()
        return round(box["x"] + box["width"] / 2), round(box["y"] + box["height"] / 2)

    def scale(self) -> tuple[float, float]:
        """Canvas pixels per screen pixel, across and down."""
        box = self.page.locator(f"{EDITOR} .pe-backdrop").bounding_box()
        return STANDING["canvas_width"] / box["width"], STANDING["canvas_height"] / box["height"]

    def drag(self, start: tuple[float, float], dx: float, dy: float) -> None:
        mouse = self.page.mouse
        mouse.move(*start)
        mouse.down()
        mouse.move(start[0] + dx, start[1] + dy, steps=8)
        mouse.up()

    def touch_drag(self, start: tuple[float, float], dx: float, dy: float) -> None:
        cdp = self.context.new_cdp_session(self.page)
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]},
        )
        for step in range(1, 9):
            point = {"x": start[0] + dx * step / 8, "y": start[1] + dy * step / 8}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    def wait_for_redraw(self, old_source: str | None) -> None:
        """The preview redrawn after an edit: the summary says the pose is edited and a new image is in."""
        self.page.wait_for_function(
            "old => document.querySelector('#pose-info').innerText.includes('Edited in the editor')"
            " && document.querySelector('#pose-conditioning img')?.src !== old",
            arg=old_source,
        )

    def image(self, selector: str) -> np.ndarray:
        response = self.page.request.get(self.page.get_attribute(selector, "src"))
        return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))

    def generate(self) -> str:
        before = self.page.inner_text("#status")
        self.page.click("#generate")
        self.page.wait_for_function(
            "old => { const text = document.querySelector('#status').innerText;"
            " return text.startsWith('✅') && text !== old; }",
            arg=before,
        )
        return self.page.inner_text("#status")

    def zip_member(self, selector: str, name: str) -> bytes:
        link = self.page.locator(f"{selector} tr", has_text=".zip").locator("a").first
        with zipfile.ZipFile(io.BytesIO(self.page.request.get(link.get_attribute("href")).body())) as bundle:
            return bundle.read(name)

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"))

    def close(self) -> None:
        hosts = {urlparse(url).hostname for url in self.requests if urlparse(url).scheme in ("http", "https")}
        assert hosts == {"127.0.0.1"}, sorted(set(self.requests))
        self.context.close()


def body_point(pose: dict, index: int) -> list[float]:
    return pose["people"][0]["pose_keypoints_2d"][index * 3 : index * 3 + 3]


def test_a_drag_is_the_pose_of_the_preview_generate_a_mode_switch_and_the_sweep(browser, server):
    app = Page(browser, server, {"width": 1440, "height": 900})
    app.standing_in_the_editor()
    fill_small_generation(app.page, "a dancer waving", steps=1, size=256)
    app.page.wait_for_function("document.querySelector('#pose-conditioning').innerText.includes('256×256')")
    before = app.image("#pose-conditioning img")
    _, down = app.scale()

    old = app.page.get_attribute("#pose-conditioning img", "src")
    app.drag(app.centre("body", 4), 0, -60)  # body joint 4, the right wrist, 60 screen pixels up
    app.wait_for_redraw(old)
    edited_preview = app.image("#pose-conditioning img")
    assert not np.array_equal(edited_preview, before)
    app.generate()
    run_pose = json.loads(app.zip_member("#downloads", "pose.json"))  # at the output size, 256×256
    with Image.open(io.BytesIO(app.zip_member("#downloads", "conditioning.png"))) as conditioning:
        assert np.array_equal(np.asarray(conditioning.convert("RGB")), edited_preview)

    # Only that joint moved, by 60 × (canvas size / displayed size), mapped onto the 256² output.
    fit = 256 / STANDING["canvas_height"]
    offset = (256 - STANDING["canvas_width"] * fit) / 2
    for index in range(18):
        x, y, score = body_point(STANDING, index)
        moved_y = y - 60 * down if index == 4 else y
        expected = [x * fit + offset, moved_y * fit] if score > 0 else [0, 0]
        assert body_point(run_pose, index)[:2] == pytest.approx(expected, abs=0.01), index

    # A mode switch keeps the edit: the preview is the edited pose drawn in the new mode.
    app.page.get_by_label("Full pose", exact=True).check()
    app.page.wait_for_function("document.querySelector('#pose-conditioning').innerText.includes('full pose')")
    app.page.wait_for_timeout(300)
    request = GenerationRequest(prompt="", draw_mode="full-pose", width=256, height=256)
    expected = conditioning_for(request, from_openpose_json(run_pose)).image
    assert np.array_equal(app.image("#pose-conditioning img"), expected)

    # The sweep uses it too.
    app.page.click("#sweep button")  # its default: guidance scale 3, 5.5 and 7.5
    app.page.click("#sweep-run")
    try:
        app.page.wait_for_function(
            "document.querySelector('#sweep-status').innerText.startsWith('✅ 3 cells')"
        )
    except playwright_api.TimeoutError:
        app.shot("sweep-failed")
        pytest.fail(f"the sweep says {app.page.inner_text('#sweep-status')!r}")
    assert json.loads(app.zip_member("#sweep-downloads", "pose.json")) == run_pose
    app.shot("drag-generate-sweep-1440")
    app.close()


def test_the_standing_preset_turned_into_waving_with_the_right_hand(browser, server):
    """Elbow out, wrist up above the head, the hand carried to the wrist and turned so the fingers point up;
    a screenshot of each step, then Generate."""
    app = Page(browser, server, {"width": 1440, "height": 900})
    app.standing_in_the_editor()
    app.page.get_by_label("Full pose", exact=True).check()
    app.shot("wave-0-standing")
    across, down = app.scale()
    elbow, wrist = body_point(STANDING, 3), body_point(STANDING, 4)
    steps = [
        ("body", 3, (250 - elbow[0]) / across, (330 - elbow[1]) / down, "wave-1-elbow-out"),
        ("body", 4, (230 - wrist[0]) / across, (170 - wrist[1]) / down, "wave-2-wrist-up"),
    ]
    for part, index, dx, dy, name in steps:
        old = app.page.get_attribute("#pose-conditioning img", "src")
        app.drag(app.centre(part, index), round(dx), round(dy))
        app.wait_for_redraw(old)
        app.shot(name)
    app.page.select_option(f"{EDITOR} select.pe-drag-mode", "part")  # drag the whole hand
    old = app.page.get_attribute("#pose-conditioning img", "src")
    app.drag(app.centre("right_hand", 0), round((230 - wrist[0]) / across), round((170 - wrist[1]) / down))
    app.wait_for_redraw(old)
    app.shot("wave-3-hand-carried")
    app.page.click(f'{EDITOR} [data-person="0"][data-part="right_hand"][data-index="20"]')
    for _ in range(6):  # 6 × 30°: the fingers point up
        app.page.click(f'{EDITOR} [data-tool="turn_right"]')
        app.page.wait_for_timeout(400)
    app.page.wait_for_timeout(1000)
    app.shot("wave-4-hand-turned")
    app.page.fill("#prompt textarea", "a woman waving hello with her right hand, street, sunny day")
    fill_small_generation(app.page, "a woman waving hello with her right hand", steps=2, size=256)
    status = app.generate()
    assert status.startswith("✅ 1 sample(s) at 256×256, full pose")
    app.page.locator("#results").scroll_into_view_if_needed()
    app.shot("wave-5-generated")
    pose = json.loads(app.zip_member("#downloads", "pose.json"))
    hand = np.array(pose["people"][0]["hand_right_keypoints_2d"]).reshape(21, 3)
    wrist_y = body_point(pose, 4)[1]
    assert hand[[4, 8, 12, 16, 20], 1].max() < wrist_y  # every fingertip above the wrist: a raised hand
    assert body_point(pose, 4)[1] < body_point(pose, 2)[1]  # the wrist above the right shoulder
    app.close()


def test_the_editor_in_the_page_on_a_phone_with_touch(browser, server):
    app = Page(browser, server, {"width": 390, "height": 844}, touch=True)
    app.standing_in_the_editor()
    old = app.page.get_attribute("#pose-conditioning img", "src")
    app.touch_drag(app.centre("body", 4), 0, -40)
    app.wait_for_redraw(old)
    app.shot("phone-touch-drag")
    app.close()


def test_a_new_preset_asks_before_replacing_edits(browser, server):
    """Unsaved edits: a new preset asks first; "Cancel" keeps the edited pose (and its file), "OK" replaces
    it."""
    app = Page(browser, server, {"width": 1440, "height": 900})
    app.standing_in_the_editor()
    old = app.page.get_attribute("#pose-conditioning img", "src")
    app.drag(app.centre("body", 4), 0, -60)
    app.wait_for_redraw(old)
    edited = app.image("#pose-conditioning img")
    asked: list[str] = []

    def answer(dialog, accept: bool) -> None:
        asked.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    app.page.once("dialog", lambda dialog: answer(dialog, accept=False))
    app.page.click("#preset-t-pose")
    app.page.wait_for_function(
        "document.querySelector('#pose-info').innerText.startsWith('Kept your edited pose')"
    )
    assert asked == ["Replace your edited pose with the new one? Your edits will be lost."]
    assert "standing\n.json" in app.page.inner_text("#upload")  # the file the edits belong to
    assert app.page.get_attribute("#pose-editor", "data-unsaved") == "true"
    app.page.wait_for_timeout(500)
    assert np.array_equal(app.image("#pose-conditioning img"), edited)

    app.page.once("dialog", lambda dialog: answer(dialog, accept=True))
    app.page.click("#preset-t-pose")
    app.page.wait_for_function("document.querySelector('#pose-info').innerText.includes('t-pose.json')")
    assert len(asked) == 2
    app.shot("asks-accepted")
    app.page.wait_for_function("document.querySelector('#pose-editor').dataset.unsaved === 'false'")
    app.close()
