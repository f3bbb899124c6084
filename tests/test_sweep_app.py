"""The Sweep section: its handler in-process (Cancel), then the real app (`python app.py --preset tiny`):
/sweep through gradio_client, and the section once in headless Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from pipelines.generation import PNG_TEXT_KEY, GenerationRequest
from pipelines.generation.sweep import AXES, GRID_PLACEHOLDER, grid_layout, plan_sweep
from pipelines.settings import Settings
from tests.app_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PANEL,
    REPO,
    fill_small_generation,
    run_out_of_memory_from_the_nth_unet_call,
    running_app,
)
from ui.generate_panel import GenerateHandlers
from ui.studio import PoseStudio
from ui.sweep_panel import SweepHandlers

POSE = REPO / "assets" / "poses" / "standing.json"
SIZE = 64
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> PoseStudio:
    cache = tmp_path_factory.mktemp("cache")
    return PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=str(cache)))


def grey_cells(grid: str, x_axis: str, x_values: str) -> list[bool]:
    """Per cell of a one-axis grid of SIZE² cells: whether it is the grey placeholder (not done)."""
    pixels = np.asarray(Image.open(grid).convert("RGB"))
    plan = plan_sweep(GenerationRequest(prompt="a"), x_axis, x_values, settings=Settings())
    return [
        bool((pixels[top:bottom, left:right] == GRID_PLACEHOLDER).all())
        for left, top, right, bottom in grid_layout(plan, (SIZE,) * 2, (SIZE,) * 2).cells
    ]


POSE_PANEL = {"draw_mode": "body-pose", "people": None}


def test_cancel_button_stops_the_grid_and_keeps_the_done_cells(studio) -> None:
    session = SimpleNamespace(session_hash="sweep-cancel")
    sweeps = SweepHandlers(studio)

    def progress(fraction: float, desc: str = "") -> None:
        if desc.startswith("cell 2 of 3"):
            sweeps.cancel(session)  # the Cancel sweep button, while the second cell denoises

    panel = PANEL | POSE_PANEL | {"num_inference_steps": 4, "width": SIZE, "height": SIZE}
    axes = {"x_axis": "seed", "x_values": "1, 3, 5", "y_axis": "", "y_values": ""}  # 3 separate requests
    updates = list(sweeps.run(str(POSE), **axes, **panel, progress=progress, request=session))

    final = updates[-1]
    assert final["status"] == "⏹ Cancelled: 1 of 3 cells done (seeds from the Seed axis); the rest are grey."
    assert [caption for _, caption in final["cells"]] == ["Seed 1"]
    files = final["files"]["value"]
    assert [Path(path).name for path in files] == ["pose-studio-sweep.zip", "grid.png", "cell-01-r1c1.png"]
    assert grey_cells(final["grid"], "seed", "1, 3, 5") == [False, True, True]
    statuses = [update.get("status", "") for update in updates]
    assert any(status.startswith("cell 1 of 3 · step ") for status in statuses)  # "cell k of N" status


def test_cancel_sweep_reaches_a_sweep_still_waiting_in_the_queue_and_keeps_the_last_grid(
    studio, monkeypatch
) -> None:
    session = SimpleNamespace(session_hash="sweep-cancel-queued")
    sweeps = SweepHandlers(studio)
    sweeps.arm(session)  # Run sweep: armed before the sweep joins the queue
    sweeps.cancel(session)  # Cancel sweep while it waits
    run_out_of_memory_from_the_nth_unet_call(monkeypatch, 1)  # the UNet must not run at all
    panel = PANEL | POSE_PANEL | {"num_inference_steps": 2, "width": SIZE, "height": SIZE}
    axes = {"x_axis": "seed", "x_values": "1, 3", "y_axis": "", "y_values": ""}
    updates = list(sweeps.run(str(POSE), **axes, **panel, request=session))
    # No cell finished: only the status changes, so the previous grid, cells and downloads stay on the page.
    assert updates == [{"status": "⏹ Cancelled before any cell finished; the previous sweep is kept."}]
    sweeps.arm(session)  # the next Run sweep is not cancelled
    monkeypatch.undo()
    *_, final = sweeps.run(str(POSE), **axes, **panel, request=session)
    assert [caption for _, caption in final["cells"]] == ["Seed 1", "Seed 3"]


def test_the_generation_cancel_button_does_not_stop_a_sweep(studio) -> None:
    session = SimpleNamespace(session_hash="generation-cancel")
    generation = GenerateHandlers(studio)

    def progress(fraction: float, desc: str = "") -> None:
        if desc.startswith("cell 1 of 2"):
            generation.cancel(session)  # the generation panel's Cancel, while the sweep runs

    panel = PANEL | POSE_PANEL | {"num_inference_steps": 2, "width": SIZE, "height": SIZE}
    axes = {"x_axis": "seed", "x_values": "1, 3", "y_axis": "", "y_values": ""}
    *_, final = SweepHandlers(studio).run(str(POSE), **axes, **panel, progress=progress, request=session)
    assert [caption for _, caption in final["cells"]] == ["Seed 1", "Seed 3"]
    assert final["status"] == "✅ 2 cells, seeds from the Seed axis."


def test_a_failing_cell_keeps_the_done_cells_and_says_why(studio, monkeypatch) -> None:
    run_out_of_memory_from_the_nth_unet_call(monkeypatch, 3)  # the second cell's first step
    panel = PANEL | POSE_PANEL | {"num_inference_steps": 2, "width": SIZE, "height": SIZE}
    axes = {"x_axis": "seed", "x_values": "1, 3, 5", "y_axis": "", "y_values": ""}
    *_, final = SweepHandlers(studio).run(str(POSE), **axes, **panel)
    assert [caption for _, caption in final["cells"]] == ["Seed 1"]
    files = final["files"]["value"]
    assert [Path(path).name for path in files] == ["pose-studio-sweep.zip", "grid.png", "cell-01-r1c1.png"]
    assert grey_cells(final["grid"], "seed", "1, 3, 5") == [False, True, True]
    assert final["status"].startswith(
        "⚠️ Stopped after 1 of 3 cells (seeds from the Seed axis); the rest are grey because the next cell "
        "failed: Out of GPU memory generating 1 x 64x64."
    )


def test_a_cells_settings_go_back_to_the_panel(studio) -> None:
    panel = PANEL | POSE_PANEL | {"num_inference_steps": 2, "width": SIZE, "height": SIZE}
    axes = {"x_axis": "guidance_scale", "x_values": "3, 9", "y_axis": "", "y_values": ""}
    sweeps = SweepHandlers(studio)
    *_, final = sweeps.run(str(POSE), **axes, **panel)
    assert sweeps.send_to_panel(None, final["sweep"])["status"].startswith("⚠️ No cell is selected.")
    assert sweeps.select(final["sweep"], SimpleNamespace(index=1))["selected"] == 1
    filled = sweeps.send_to_panel(1, final["sweep"])
    assert filled["status"] == "✅ Settings from cell 2, seed 7 are in the panel."
    assert (filled["guidance_scale"], filled["seed"], filled["num_inference_steps"]) == (9.0, 7, 2)
    assert (filled["width"]["value"], filled["height"]["value"], filled["auto_size"]) == (SIZE, SIZE, False)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    with running_app(tmp_path_factory.mktemp("sweep-app")) as url:
        yield url


@pytest.fixture(scope="module")
def client(server) -> Client:
    return Client(server, verbose=False)


def sweep(client: Client, **arguments: object) -> tuple:
    defaults = {"image": handle_file(str(POSE)), "prompt": "a dancer", "num_inference_steps": 2}
    return client.predict(**defaults, width=SIZE, height=SIZE, **arguments, api_name="/sweep")


@pytest.mark.server
def test_sweep_endpoint_returns_the_grid_the_cells_and_their_seeds(client) -> None:
    grid, cells, record = sweep(
        client, x_axis="guidance_scale", x_values="2, 9", y_axis="seed", y_values="5, 6"
    )
    plan = plan_sweep(
        GenerationRequest(prompt="a dancer"), "guidance_scale", "2, 9", "seed", "5, 6", settings=Settings()
    )
    assert Image.open(grid).size == grid_layout(plan, (SIZE, SIZE), (SIZE, SIZE)).size  # with the pose
    assert [cell["caption"] for cell in cells] == [
        "Guidance scale 2 · Seed 5",
        "Guidance scale 9 · Seed 5",
        "Guidance scale 2 · Seed 6",
        "Guidance scale 9 · Seed 6",
    ]
    texts = [Image.open(cell["image"]).text[PNG_TEXT_KEY] for cell in cells]
    assert ["Seed: 5," in text for text in texts] == [True, True, False, False]
    assert ["CFG scale: 9.0" in text for text in texts] == [False, True, False, True]
    assert not record["cancelled"]
    assert [cell["parameters"]["seed"] for cell in record["cells"]] == [5, 5, 6, 6]
    assert json.loads(json.dumps(record))["y"] == {"axis": "seed", "title": "Seed", "values": [5, 6]}


@pytest.mark.server
def test_sweep_without_a_seed_axis_uses_one_seed_everywhere(client) -> None:
    _, cells, record = sweep(client, x_axis="scheduler", x_values="euler a, DDIM, unipc", seed=-1)
    assert [cell["caption"] for cell in cells] == ["Scheduler Euler a", "Scheduler DDIM", "Scheduler UniPC"]
    seeds = {cell["parameters"]["seed"] for cell in record["cells"]}
    assert len(seeds) == 1 and seeds.pop() >= 0


@pytest.mark.server
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"x_axis": "guidance_scale", "x_values": "7,5x"},
            'X values: "7,5x" — item 2 ("5x") is not a number',
        ),
        (
            {"x_axis": "seed", "x_values": "1-5", "y_axis": "guidance_scale", "y_values": "1-4"},
            "this sweep has 5×4 = 20 cells; the limit is 16 (POSE_STUDIO_SWEEP_MAX_CELLS)",
        ),
    ],
)
def test_sweep_endpoint_reports_bad_values(client, arguments: dict, message: str) -> None:
    with pytest.raises(AppError) as error:
        sweep(client, **arguments)
    assert str(error.value) == message


@pytest.mark.server
@pytest.mark.browser
def test_sweep_section_in_the_browser(server, tmp_path) -> None:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh test installs it)")
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(server)
        page.set_input_files("#upload input[type=file]", str(POSE))
        page.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
        page.click("#sweep button")  # open the accordion first: it mounts its fields as it opens
        x_values = page.locator("#sweep-x-values textarea")
        playwright_api.expect(x_values).to_have_value(AXES["guidance_scale"].example)
        fill_small_generation(page, "a dancer on a stage", steps=2)
        x_values.fill("2, 5, 9")
        x_values.press("Tab")
        playwright_api.expect(x_values).to_have_value("2, 5, 9")
        page.click("#sweep-run")
        page.wait_for_function("document.querySelectorAll('#sweep-cells .caption-label').length === 3")
        captions = page.locator("#sweep-cells .caption-label").all_inner_texts()
        assert captions == ["Guidance scale 2", "Guidance scale 5", "Guidance scale 9"]
        assert page.inner_text("#sweep-status").startswith("✅ 3 cells, seed ")
        downloads = page.locator("#sweep-downloads").inner_text()
        assert downloads.count(".png") == 4  # the grid and 3 cells
        assert "pose-studio-sweep\n.zip" in downloads
        grid_source = page.get_attribute("#sweep-grid img", "src")
        assert grid_source
        Path(REPO / "tests" / "artifacts").mkdir(exist_ok=True)
        page.screenshot(path=str(REPO / "tests" / "artifacts" / "sweep.png"), full_page=True)
        browser.close()
