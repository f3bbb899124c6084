"""The pose editor (ui/editor.py) alone in a page, in Debian's headless Chromium driven by Playwright: drags
with mouse and touch, the person tools, hide/show, undo/redo, loading, and no request off the machine."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import gradio as gr
import pytest

from pipelines.pose import edits
from pipelines.pose.edits import grid_step
from pipelines.pose.keypoints import PoseResult, from_openpose_json, to_openpose_json
from pipelines.settings import Settings
from tests.app_helpers import REPO, chromium_browser, free_port, synthetic_photo
from ui.editor import STANDING_TEMPLATE, create_editor, load_pose, photo_data_url, unsaved_edits

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("EDITOR_SCREENSHOTS", REPO / "tests" / "artifacts" / "editor"))
TIMEOUT_MS = 30_000
VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}
CANVAS = (896, 1152)  # the standing template's canvas
EDITOR = "#pose-editor"


def standing() -> PoseResult:
    return from_openpose_json(STANDING_TEMPLATE.read_bytes())


def build_app(changes: list[dict]) -> gr.Blocks:
    """Only the editor, plus what a page does with it: show the pose the server got (each one also appended
    to `changes`), load a pose, ask whether there are unsaved edits."""
    settings = Settings()

    def receive(value: dict) -> str:
        changes.append(value)
        return json.dumps(value)

    photo = photo_data_url(synthetic_photo(448, 576))
    with gr.Blocks() as demo:
        panel = create_editor(standing(), background=photo, settings=settings)
        received = gr.Textbox(elem_id="received", label="The pose the server got")
        unsaved = gr.Textbox(elem_id="unsaved", label="Unsaved edits")
        gr.Textbox(elem_id="prompt", label="A text field of the page", interactive=True)
        load = gr.Button("Load the standing pose", elem_id="load")
        ask = gr.Button("Unsaved?", elem_id="ask")
        push = gr.Button("Set a pose from the page", elem_id="push")
        panel.html.change(receive, inputs=panel.html, outputs=received)
        load.click(lambda: load_pose(standing(), photo, settings), outputs=panel.load_outputs)
        push.click(
            lambda value: to_openpose_json(edits.move_person(from_openpose_json(value), 0, -100, 0)),
            panel.html,
            panel.html,
        )
        ask.click(
            lambda value, loaded: str(unsaved_edits(value, loaded, settings)),
            [panel.html, panel.loaded],
            unsaved,
        )
    return demo


CHANGES: list[dict] = []  # every pose the page's change handler got, in order


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    demo = build_app(CHANGES)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as browser:
        yield browser


class EditorPage:
    """One browser page on the editor app, recording every request it makes."""

    def __init__(self, browser, server: str, viewport: str):
        self.context = browser.new_context(viewport=VIEWPORTS[viewport], has_touch=viewport == "phone")
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.viewport = viewport
        self.page.goto(server)
        self.page.wait_for_selector(f"{EDITOR} circle[data-part]")

    def joint(self, person: int, part: str, index: int):
        return self.page.locator(
            f'{EDITOR} [data-person="{person}"][data-part="{part}"][data-index="{index}"]'
        )

    def centre(self, person: int, part: str, index: int) -> tuple[float, float]:
        self.joint(person, part, index).scroll_into_view_if_needed()
        box = self.joint(person, part, index).bounding_box()
        return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def received(self) -> str:
        return self.page.input_value("#received textarea")

    def wait_received(self, before: str) -> dict:
        """The pose the server got next (after `before`)."""
        self.page.wait_for_function(
            "before => document.querySelector('#received textarea').value !== before", arg=before
        )
        return json.loads(self.received())

    def wait_received_equal(self, expected: dict, timeout_s: float = 20) -> None:
        """Until the server's latest pose is `expected` (change events queue up behind fast key presses)."""
        deadline = time.monotonic() + timeout_s
        while self.received() == "" or json.loads(self.received()) != expected:
            assert time.monotonic() < deadline, "the server never got the expected pose"
            self.page.wait_for_timeout(100)

    def settled_received(self) -> str:
        """The server's latest pose once no new one has come for a second."""
        latest = self.received()
        while True:
            self.page.wait_for_timeout(1000)
            if self.received() == latest:
                return latest
            latest = self.received()

    def tool(self, name: str) -> None:
        before = self.received()
        self.page.click(f'{EDITOR} [data-tool="{name}"]')
        return self.wait_received(before)

    def mouse_drag(self, start: tuple[float, float], dx: float, dy: float, steps: int = 8) -> None:
        mouse = self.page.mouse
        mouse.move(*start)
        mouse.down()
        mouse.move(start[0] + dx, start[1] + dy, steps=steps)
        mouse.up()

    def touch_drag(self, start: tuple[float, float], dx: float, dy: float, steps: int = 8) -> None:
        """A finger drag as Chromium gets one from a touch screen (it makes the pointer events itself)."""
        cdp = self.context.new_cdp_session(self.page)
        cdp.send(
            "Input.dispatchTouchEvent",
            {"type": "touchStart", "touchPoints": [{"x": start[0], "y": start[1]}]},
        )
        for step in range(1, steps + 1):
            point = {"x": start[0] + dx * step / steps, "y": start[1] + dy * step / steps}
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    def drag(self, start: tuple[float, float], dx: float, dy: float) -> None:
        """Mouse or finger, from a whole screen pixel (Chromium keeps touch points to a coarser grid)."""
        start = (round(start[0]), round(start[1]))
        (self.touch_drag if self.viewport == "phone" else self.mouse_drag)(start, dx, dy)

    def scale(self) -> tuple[float, float]:
        """Canvas pixels per screen pixel across and down: canvas size / displayed size (of the black canvas
        drawn, which the layout's 1/64 px rounding may leave a hair narrower than the svg box)."""
        box = self.page.locator(f"{EDITOR} .pe-backdrop").bounding_box()
        return CANVAS[0] / box["width"], CANVAS[1] / box["height"]

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{self.viewport}-{name}.png"))

    def attribute(self, name: str) -> str:
        return self.page.get_attribute(EDITOR, name)

    def close(self) -> None:
        assert not self.errors, self.errors
        hosts = {urlparse(url).hostname for url in self.requests if urlparse(url).scheme in ("http", "https")}
        schemes = {urlparse(url).scheme for url in self.requests}
        assert hosts == {"127.0.0.1"}, self.requests
        assert schemes <= {"http", "data", "blob"}, schemes
        self.context.close()


@pytest.fixture(params=list(VIEWPORTS))
def editor(request, browser, server) -> Iterator[EditorPage]:
    page = EditorPage(browser, server, request.param)
    yield page
    page.close()


def test_dragging_body_joint_4_moves_only_that_joint_by_the_canvas_distance(editor):
    editor.shot("loaded")
    before = editor.page.evaluate("() => 0")  # the page is up; the server has not been told anything yet
    assert before == 0 and editor.received() == ""
    loaded = load_pose(standing(), settings=Settings())[1]
    start = editor.centre(0, "body", 4)
    changes_before = len(CHANGES)
    editor.drag(start, 0, -60)
    pose = editor.wait_received("")
    editor.page.wait_for_timeout(500)
    assert len(CHANGES) == changes_before + 1  # one drag, one change event, however many moves
    step = grid_step(*CANVAS)
    old = loaded["people"][0]["pose_keypoints_2d"]
    new = pose["people"][0]["pose_keypoints_2d"]
    assert new[12] == old[12]
    assert new[13] == pytest.approx(old[13] - 60 * editor.scale()[1], abs=step)
    assert new[14] == old[14] == 1
    moved_y = new[13]
    # Every other number, in every part, is exactly what was loaded.
    new[13] = old[13]
    assert pose == loaded
    assert editor.joint(0, "body", 4).get_attribute("cy") == str(moved_y)
    assert editor.attribute("data-unsaved") == "true"
    editor.shot("dragged-right-wrist")
    # The server side agrees: the edited pose differs from the loaded one.
    editor.page.click("#ask")
    editor.page.wait_for_function("document.querySelector('#unsaved textarea').value === 'True'")


def test_mirror_swaps_left_and_right_and_twice_gives_the_original(editor):
    original = load_pose(standing(), settings=Settings())[1]
    editor.drag(editor.centre(0, "body", 4), -20, -80)  # raise the right wrist, so the two sides differ
    raised = editor.wait_received("")
    editor.page.click(f'{EDITOR} [data-part="body"][data-index="1"]')  # select the person by its neck
    assert editor.attribute("data-selected") == "0"
    once = editor.tool("mirror")
    body, raised_body = once["people"][0]["pose_keypoints_2d"], raised["people"][0]["pose_keypoints_2d"]
    assert body[7 * 3 + 1] == raised_body[4 * 3 + 1]  # the raised wrist is now the left one
    assert body[4 * 3 + 1] == raised_body[7 * 3 + 1] == original["people"][0]["pose_keypoints_2d"][7 * 3 + 1]
    left, right = once["people"][0]["hand_left_keypoints_2d"], raised["people"][0]["hand_right_keypoints_2d"]
    assert [left[i] for i in range(1, 63, 3)] == [right[i] for i in range(1, 63, 3)]  # hands traded places
    editor.shot("mirrored")
    twice = editor.tool("mirror")
    assert twice == raised
    editor.shot("mirrored-twice")


def test_add_delete_undo_redo(editor):
    two = editor.tool("add")
    assert len(two["people"]) == 2 and editor.attribute("data-people") == "2"
    assert editor.attribute("data-selected") == "1"
    assert editor.page.locator(f'{EDITOR} [data-person="1"][data-part]').count() == 128
    editor.shot("added")
    one = editor.tool("delete")
    assert len(one["people"]) == 1 and editor.attribute("data-people") == "1"
    editor.shot("deleted")
    assert len(editor.tool("undo")["people"]) == 2
    assert len(editor.tool("undo")["people"]) == 1
    assert editor.attribute("data-undo") == "0"
    assert len(editor.tool("redo")["people"]) == 2
    # The keyboard: Ctrl+Shift+Z redoes the delete, Ctrl+Z undoes it.
    before = editor.received()
    editor.page.locator(EDITOR).focus()
    editor.page.keyboard.press("Control+Shift+Z")
    assert len(editor.wait_received(before)["people"]) == 1
    before = editor.received()
    editor.page.keyboard.press("Control+Z")
    assert len(editor.wait_received(before)["people"]) == 2
    assert editor.page.locator(f"{EDITOR} [data-part]").count() == 256
    # Ctrl+Z in a text field elsewhere on the page is that field's, not the editor's.
    editor.page.fill("#prompt textarea", "a dancer")
    editor.page.keyboard.press("Control+Z")
    editor.page.wait_for_timeout(300)
    assert editor.attribute("data-people") == "2" and editor.attribute("data-redo") == "1"


def test_hide_a_joint_writes_zeros_and_draws_nothing_then_show_brings_it_back(editor):
    editor.page.click(f'{EDITOR} [data-part="body"][data-index="4"]')
    hidden = editor.tool("hide")
    assert hidden["people"][0]["pose_keypoints_2d"][12:15] == [0, 0, 0]
    assert editor.joint(0, "body", 4).count() == 0
    assert editor.page.locator(f'{EDITOR} [data-part="body"]').count() == 17
    editor.shot("hidden-wrist")
    editor.page.select_option(f"{EDITOR} select.pe-hidden", "body/4")
    shown = editor.tool("show")
    elbow = hidden["people"][0]["pose_keypoints_2d"][9:12]
    assert shown["people"][0]["pose_keypoints_2d"][12:15] == [
        pytest.approx(elbow[0] + 0.02 * CANVAS[0], abs=grid_step(*CANVAS)),
        elbow[1],
        1,
    ]
    assert "next to body point 3" in editor.page.inner_text(f"{EDITOR} .pe-status")


def test_hands_and_face_can_be_hidden_from_view_and_the_photo_toggled(editor):
    assert editor.page.locator(f"{EDITOR} [data-part]").count() == 128
    editor.page.uncheck(f'{EDITOR} [data-toggle="face"]')
    editor.page.uncheck(f'{EDITOR} [data-toggle="hands"]')
    assert editor.page.locator(f"{EDITOR} [data-part]").count() == 18
    assert editor.page.is_visible(f"{EDITOR} .pe-photo")
    editor.page.uncheck(f'{EDITOR} [data-toggle="photo"]')
    assert not editor.page.is_visible(f"{EDITOR} .pe-photo")
    editor.shot("body-only-no-photo")
    assert editor.received() == ""  # showing and hiding changes no pose


def test_moving_and_scaling_a_person_and_reset_and_load(editor):
    start = editor.centre(0, "body", 1)
    # A limb (not a joint) moves the whole person: the neck-to-hip bone, grabbed halfway down.
    hip = editor.centre(0, "body", 8)
    limb = ((start[0] + hip[0]) / 2, (start[1] + hip[1]) / 2)
    editor.drag(limb, 30, 0)
    moved = editor.wait_received("")
    loaded = load_pose(standing(), settings=Settings())[1]
    dx = moved["people"][0]["pose_keypoints_2d"][0] - loaded["people"][0]["pose_keypoints_2d"][0]
    assert dx == pytest.approx(30 * editor.scale()[0], abs=grid_step(*CANVAS))
    assert moved["people"][0]["pose_keypoints_2d"][1] == loaded["people"][0]["pose_keypoints_2d"][1]
    larger = editor.tool("larger")
    neck_y = larger["people"][0]["pose_keypoints_2d"][4]
    assert neck_y < moved["people"][0]["pose_keypoints_2d"][4]  # the neck rises as the person grows
    editor.shot("moved-and-larger")
    back = editor.tool("reset")
    assert back == loaded
    assert editor.attribute("data-unsaved") == "false"
    assert editor.attribute("data-undo") == "3"
    # The page loads a pose: history starts again.
    editor.page.click("#load")
    editor.page.wait_for_function("document.querySelector('#pose-editor').dataset.undo === '0'")
    assert editor.page.is_disabled(f'{EDITOR} [data-tool="undo"]')


def test_raising_the_right_arm_and_carrying_the_hand_along(editor):
    """Toward "waving with the right hand": elbow out, wrist up, then the whole hand dragged to the wrist
    (Drag: whole hand), each step one undoable edit. Screenshots of each step."""
    loaded = load_pose(standing(), settings=Settings())[1]
    across, down = editor.scale()
    step = grid_step(*CANVAS)

    def to_screen(dx: float, dy: float) -> tuple[int, int]:
        return round(dx / across), round(dy / down)

    body = loaded["people"][0]["pose_keypoints_2d"]
    elbow, wrist = (body[9], body[10]), (body[12], body[13])
    before = editor.received()
    editor.drag(editor.centre(0, "body", 3), *to_screen(250 - elbow[0], 300 - elbow[1]))
    before = json.dumps(editor.wait_received(before))
    editor.shot("wave-1-elbow-out")
    wrist_move = to_screen(230 - wrist[0], 160 - wrist[1])
    editor.drag(editor.centre(0, "body", 4), *wrist_move)
    raised = editor.wait_received(before)
    editor.shot("wave-2-wrist-up")
    new_wrist = raised["people"][0]["pose_keypoints_2d"][12:14]
    assert new_wrist == [
        pytest.approx(wrist[0] + wrist_move[0] * across, abs=step),
        pytest.approx(wrist[1] + wrist_move[1] * down, abs=step),
    ]
    # The right hand still hangs where the wrist was; drag it (by a fingertip) up to the new wrist.
    editor.page.select_option(f"{EDITOR} select.pe-drag-mode", "part")
    hand = raised["people"][0]["hand_right_keypoints_2d"]
    editor.drag(editor.centre(0, "right_hand", 12), *wrist_move)
    carried = editor.wait_received(json.dumps(raised))
    moved_hand = carried["people"][0]["hand_right_keypoints_2d"]
    for index in range(21):
        x, y, score = hand[index * 3 : index * 3 + 3]
        assert moved_hand[index * 3 : index * 3 + 3] == [
            pytest.approx(x + wrist_move[0] * across, abs=step),
            pytest.approx(y + wrist_move[1] * down, abs=step),
            score,
        ]
    for field in ("pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d"):
        assert carried["people"][0][field] == raised["people"][0][field]
    editor.shot("wave-3-hand-carried")
    assert editor.attribute("data-undo") == "3"
    # Turn the hand about its wrist end, 6 x 30 degrees, so the fingers point up: waving.
    editor.page.click(f'{EDITOR} [data-part="right_hand"][data-index="20"]')
    for _ in range(6):
        waving = editor.tool("turn_right")
    turned = waving["people"][0]["hand_right_keypoints_2d"]
    root = moved_hand[0:2]
    assert turned[0:2] == root
    for index in range(1, 21):
        x, y = moved_hand[index * 3 : index * 3 + 2]
        assert turned[index * 3 : index * 3 + 2] == [
            pytest.approx(2 * root[0] - x, abs=1e-3),
            pytest.approx(2 * root[1] - y, abs=1e-3),
        ]
    editor.shot("wave-4-hand-turned-up")


def test_fifty_five_steps_undo_back_to_the_loaded_pose_and_redo_forward(editor):
    if editor.viewport == "phone":
        pytest.skip("history is the same code at every size; one viewport is enough")
    loaded = load_pose(standing(), settings=Settings())[1]
    for step in range(55):
        editor.drag(editor.centre(0, "body", 7), 0, 3 if step % 2 else -4)
    editor.page.wait_for_function("document.querySelector('#pose-editor').dataset.undo === '55'")
    edited = editor.settled_received()
    assert json.loads(edited) != loaded
    editor.page.locator(EDITOR).focus()
    for _ in range(55):
        editor.page.keyboard.press("Control+Z")
    editor.page.wait_for_function("document.querySelector('#pose-editor').dataset.undo === '0'")
    editor.wait_received_equal(loaded)
    assert editor.attribute("data-unsaved") == "false" and editor.attribute("data-redo") == "55"
    for _ in range(55):
        editor.page.keyboard.press("Control+Shift+Z")
    editor.page.wait_for_function("document.querySelector('#pose-editor').dataset.redo === '0'")
    editor.wait_received_equal(json.loads(edited))


def test_a_pose_the_page_sets_is_drawn_and_is_one_undo_step(editor):
    loaded = load_pose(standing(), settings=Settings())[1]
    editor.page.click("#push")
    editor.page.wait_for_function("document.querySelector('#pose-editor').dataset.undo === '1'")
    nose = editor.joint(0, "body", 0)
    assert float(nose.get_attribute("cx")) == loaded["people"][0]["pose_keypoints_2d"][0] - 100
    assert editor.attribute("data-unsaved") == "true"
    editor.page.locator(EDITOR).focus()
    editor.page.keyboard.press("Control+Z")
    editor.wait_received_equal(loaded)
    assert float(nose.get_attribute("cx")) == loaded["people"][0]["pose_keypoints_2d"][0]
