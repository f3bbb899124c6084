"""ZeroGPU, emulated (a Space cannot be reached from here): the durations and settings as pure functions, the
fork that ZeroGPU makes, and the real app (`python app.py --preset tiny`) with tests/zerogpu_emulation/spaces
on its path, which runs every GPU function in a forked child and logs each call (see that module)."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import threading
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from pipelines.generation import GenerationRequest
from pipelines.generation.sweep import AXES, plan_sweep
from pipelines.settings import Settings
from tests.app_helpers import (
    PANEL,
    REPO,
    chromium_browser,
    fill_small_generation,
    running_app,
    synthetic_photo,
    write_png,
)
from tests.zerogpu_emulation import spaces as fake_spaces
from ui import zerogpu
from ui.studio import PoseStudio
from ui.sweep_panel import SweepHandlers
from ui.zerogpu import MAX_SECONDS, generation_seconds, gpu_task, sweep_seconds, zerogpu_settings

EMULATION = REPO / "tests" / "zerogpu_emulation"
POSE = REPO / "assets" / "poses" / "standing.json"
JOB_TIMEOUT_S = 120
TIMEOUT_MS = 60_000


# ----- pure functions ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "seconds"),
    [
        ({}, 23),  # 1 sample × 30 steps at an SDXL bucket (1 MP): 15 + 7.5
        ({"samples": 4, "num_inference_steps": 100}, 115),  # 15 + 4 × 100 × 0.25
        ({"samples": 2, "num_inference_steps": 40, "width": 1536, "height": 1536}, 60),  # 2.25 MP: 15 + 45
        ({"samples": 4, "num_inference_steps": 100, "width": 2048, "height": 2048}, MAX_SECONDS),  # capped
        ({"num_inference_steps": 2, "width": 128, "height": 128}, 16),  # 15 + 0.0078, rounded up
    ],
)
def test_a_generations_duration_grows_with_samples_steps_and_pixels(request_fields, seconds):
    assert generation_seconds(GenerationRequest(prompt="a", **request_fields)) == seconds


def test_a_sweeps_duration_adds_up_its_cells():
    settings = Settings()
    steps = plan_sweep(GenerationRequest(prompt="a"), "num_inference_steps", "10, 20, 30", settings=settings)
    assert sweep_seconds(steps) == 15 + 15  # (10 + 20 + 30) steps × 0.25 s at 1 MP
    seeds = plan_sweep(
        GenerationRequest(prompt="a", num_inference_steps=20), "seed", "1, 2, 3", settings=settings
    )
    assert len(seeds.batches) == 1 and sweep_seconds(seeds) == 15 + 15  # one 3-sample batch of 20 steps
    grid = plan_sweep(
        GenerationRequest(prompt="a", num_inference_steps=100), "guidance_scale", "3, 5, 7, 9", "seed",
        "1, 2, 3, 4", settings=settings,
    )  # fmt: skip
    assert len(grid.cells) == 16 and sweep_seconds(grid) == MAX_SECONDS


def test_zerogpu_places_the_engine_on_cuda_and_keeps_dwpose_on_the_cpu():
    placed = zerogpu_settings(Settings())
    assert (placed.device, placed.pose_device, placed.draft_copy) == ("cuda", "cpu", "device")
    explicit = Settings(device="cpu", pose_device="cuda", draft_copy="cpu")  # explicit choices stay
    assert zerogpu_settings(explicit) == explicit


def test_zerogpu_is_told_by_the_platform_and_the_package(monkeypatch):
    monkeypatch.setattr(zerogpu, "spaces", None)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert not zerogpu.on_zerogpu()  # no `spaces` package: not a Space
    monkeypatch.setattr(zerogpu, "spaces", fake_spaces)
    assert zerogpu.on_zerogpu()
    monkeypatch.setenv("SPACES_ZERO_GPU", "")  # a Space on other hardware has `spaces` too
    assert not zerogpu.on_zerogpu()


@pytest.mark.parametrize("axis", sorted(AXES))
def test_every_sweep_plan_pickles_so_it_can_reach_the_gpu_worker(axis):
    plan = plan_sweep(GenerationRequest(prompt="a red cat"), axis, AXES[axis].example, settings=Settings())
    restored = pickle.loads(pickle.dumps(plan))
    assert (restored.cells, restored.batches, restored.to_json()) == (
        plan.cells,
        plan.batches,
        plan.to_json(),
    )


# ----- the fork ---------------------------------------------------------------------------------------------


def _convolve(size: int) -> torch.Tensor:
    torch.manual_seed(0)
    images, layer = torch.randn(8, 32, size, size), torch.nn.Conv2d(32, 32, 3)
    with torch.no_grad():
        return layer(images)


def _convolutions(size: int):
    yield float(_convolve(size).sum())


def _gpu_call_log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def emulated_zerogpu(monkeypatch, tmp_path) -> Path:
    """This process as a ZeroGPU Space: ui.zerogpu sees the fake `spaces`; returns its call log."""
    monkeypatch.setattr(zerogpu, "spaces", fake_spaces)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.setenv(fake_spaces.LOG_ENV, str(tmp_path / "calls.jsonl"))
    monkeypatch.setattr(fake_spaces, "STOP_GRACE_S", 10)
    return tmp_path / "calls.jsonl"


@pytest.mark.skipif(torch.get_num_threads() < 2, reason="one CPU thread: there is no thread pool to lose")
def test_a_fork_after_torch_started_its_threads_hangs_unless_the_worker_uses_one(emulated_zerogpu):
    """ZeroGPU forks its worker from the server, whose torch thread pool has run (loading the models, an
    earlier request on the same thread). A fork does not carry the pool over: the child's first multi-threaded
    op waits for it forever. gpu_task's wrapper runs the worker on one thread, and the result is the same."""
    expected = float(_convolve(128).sum())
    raw = fake_spaces.GPU(duration=5)(_convolutions)
    with pytest.raises(TimeoutError):  # the thread that started the pool forks: the child hangs
        _with_timeout(lambda: (_convolve(128), list(raw(128)))[1], seconds=8)
    hung = _gpu_call_log(emulated_zerogpu)[-1]
    assert (hung["outcome"], hung["exitcode"]) == ("error", -15)  # it never answered, and was terminated
    wrapped = gpu_task(_convolutions, duration=lambda size: 5)
    result = _with_timeout(lambda: (_convolve(128), list(wrapped(128)))[1], seconds=60)
    assert result == [pytest.approx(expected, rel=1e-4)]
    calls = [(c["function"], c["duration"]) for c in _gpu_call_log(emulated_zerogpu) if c["event"] == "call"]
    assert calls == [("_convolutions", 5), ("_convolutions", 5)]


def _with_timeout(work, seconds: float):
    """`work()` in a thread; TimeoutError if it has not finished after `seconds`, once the forked children
    are terminated (the call then sees its pipe close and ends)."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except Exception as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for child in multiprocessing.active_children():
            child.terminate()
        thread.join(30)
        raise TimeoutError(f"no result within {seconds} s")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def test_a_sweep_cancelled_in_its_gpu_worker_keeps_the_cells_that_came_back(emulated_zerogpu, tmp_path):
    """In this process, under the fake: Cancel sweep during the second cell closes the GPU function; the main
    process builds the result from the cells it received, conditioning and metadata included."""
    studio = PoseStudio(Settings(preset="tiny", pose_models="tiny", cache_dir=str(tmp_path / "cache")))
    sweeps, session = SweepHandlers(studio), SimpleNamespace(session_hash="zerogpu-sweep-cancel")

    def progress(fraction: float, desc: str = "") -> None:
        if desc.startswith("cell 2 of 3"):
            sweeps.cancel(session)

    panel = PANEL | {
        "num_inference_steps": 4,
        "width": 64,
        "height": 64,
        "draw_mode": "body-pose",
        "people": None,
    }
    axes = {"x_axis": "seed", "x_values": "1, 3, 5", "y_axis": "", "y_values": ""}
    *_, final = sweeps.run(str(POSE), **axes, **panel, progress=progress, request=session)
    assert final["status"] == "⏹ Cancelled: 1 of 3 cells done (seeds from the Seed axis); the rest are grey."
    assert [caption for _, caption in final["cells"]] == ["Seed 1"]
    with zipfile.ZipFile(final["files"]["value"][0]) as bundle:
        names = ["cell-01-r1c1.png", "conditioning.png", "grid.png", "pose.json", "sweep.json"]
        assert sorted(bundle.namelist()) == names
        assert json.loads(bundle.read("sweep.json"))["cancelled"] is True
    call, end = [record for record in _gpu_call_log(emulated_zerogpu) if record["event"] != "import"]
    assert (call["function"], end["outcome"], end["exitcode"]) == ("sweep_events", "closed", 0)


# ----- the app under the emulation --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_on_zerogpu(tmp_path_factory):
    """`python app.py --preset tiny` as on a ZeroGPU Space: the fake `spaces` on its path and the platform's
    variables set; `--device cpu` only because there is no CUDA here (on ZeroGPU "auto" becomes cuda)."""
    tmp = tmp_path_factory.mktemp("zerogpu-app")
    calls = tmp / "gpu-calls.jsonl"
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(EMULATION), os.environ.get("PYTHONPATH")])),
        "SPACES_ZERO_GPU": "true",
        "SPACE_ID": "pose-studio/emulated-zerogpu",
        fake_spaces.LOG_ENV: str(calls),
    }
    with running_app(tmp, "--device", "cpu", env=env) as url:
        yield url, calls, tmp / "app.log"


@pytest.fixture(scope="module")
def client(app_on_zerogpu) -> Client:
    return Client(app_on_zerogpu[0], verbose=False)


def gpu_calls(app_on_zerogpu, event: str = "call") -> list[dict]:
    return [record for record in _gpu_call_log(app_on_zerogpu[1]) if record["event"] == event]


def ended(app_on_zerogpu, call: dict) -> list[dict]:
    return [record for record in gpu_calls(app_on_zerogpu, "end") if record["pid"] == call["pid"]]


def wait_for(condition, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.1)
    return value


@pytest.mark.server
def test_spaces_comes_before_torch_and_the_engines_load_before_the_first_request(app_on_zerogpu):
    _, calls, app_log = app_on_zerogpu
    assert _gpu_call_log(calls) == [{"event": "import", "torch_imported_before": False}]  # no GPU call yet
    # The server answers, no request has come, and both engines are loaded (in the main process).
    assert (
        "ZeroGPU: loaded at start-up: generation on cpu (float32), pose on CPUExecutionProvider"
        in app_log.read_text()
    )


@pytest.mark.server
def test_pose_detection_runs_on_the_cpu_without_a_gpu_call(app_on_zerogpu, client, tmp_path):
    photo = write_png(tmp_path / "photo.png", synthetic_photo())
    before = len(gpu_calls(app_on_zerogpu))
    _, pose_json = client.predict(image=handle_file(str(photo)), draw_mode="body-pose", api_name="/dwpose")
    assert len(pose_json["people"]) == 1
    assert len(gpu_calls(app_on_zerogpu)) == before


@pytest.mark.server
def test_a_bad_request_is_refused_without_a_gpu_call(app_on_zerogpu, client):
    before = len(gpu_calls(app_on_zerogpu))
    with pytest.raises(AppError) as error:
        client.predict(image=handle_file(str(POSE)), prompt="  ", api_name="/generate")
    assert str(error.value) == "prompt must not be empty"
    assert len(gpu_calls(app_on_zerogpu)) == before


@pytest.mark.server
def test_generate_is_one_gpu_call_asking_for_its_duration(app_on_zerogpu, client):
    before = len(gpu_calls(app_on_zerogpu))
    arguments = {"prompt": "a knight", "samples": 2, "num_inference_steps": 2, "seed": 5}
    size = {"width": 128, "height": 96}
    images, seeds = client.predict(image=handle_file(str(POSE)), **arguments, **size, api_name="/generate")
    assert seeds == [5, 6] and [item["caption"] for item in images] == ["seed 5", "seed 6"]
    assert all(Path(item["image"]).is_file() for item in images)  # saved by the main process, served from it
    (call,) = gpu_calls(app_on_zerogpu)[before:]
    expected = generation_seconds(GenerationRequest(**arguments, **size))
    assert (call["function"], call["duration"]) == ("generation_events", expected)
    (end,) = wait_for(lambda: ended(app_on_zerogpu, call))
    assert (end["outcome"], end["exitcode"]) == ("done", 0)


@pytest.mark.server
def test_a_cancelled_generation_stops_its_gpu_child(app_on_zerogpu, client):
    before = len(gpu_calls(app_on_zerogpu))
    long_run = {"prompt": "a knight", "num_inference_steps": 100, "seed": 1, "width": 512, "height": 512}
    job = client.submit(image=handle_file(str(POSE)), **long_run, api_name="/generate")
    (call,) = wait_for(lambda: gpu_calls(app_on_zerogpu)[before:])
    wait_for(lambda: job.status().progress_data)  # denoising in the child, its steps streamed back
    job.cancel()
    (end,) = wait_for(lambda: ended(app_on_zerogpu, call))
    assert (end["outcome"], end["exitcode"]) == ("closed", 0)  # stopped by the close, not terminated
    with pytest.raises(ProcessLookupError):
        os.kill(call["pid"], 0)  # the child is gone
    quick = {"prompt": "a knight", "num_inference_steps": 1, "seed": 3, "width": 64, "height": 64}
    _, seeds = client.predict(image=handle_file(str(POSE)), **quick, api_name="/generate")
    assert seeds == [3]  # and the next run works


@pytest.mark.server
def test_a_sweep_is_one_gpu_call_asking_for_its_cells_duration(app_on_zerogpu, client):
    before = len(gpu_calls(app_on_zerogpu))
    base = {"prompt": "a dancer", "seed": 4, "width": 64, "height": 64}
    axis = {"x_axis": "num_inference_steps", "x_values": "1, 2"}
    grid, cells, record = client.predict(image=handle_file(str(POSE)), **base, **axis, api_name="/sweep")
    assert Path(grid).is_file() and [cell["caption"] for cell in cells] == ["Steps 1", "Steps 2"]
    assert record["cells_done"] == 2 and not record["cancelled"]
    plan = plan_sweep(GenerationRequest(**base), *axis.values(), settings=Settings())
    assert [(c["function"], c["duration"]) for c in gpu_calls(app_on_zerogpu)[before:]] == [
        ("sweep_events", sweep_seconds(plan))
    ]


# ----- the page under the emulation -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    with chromium_browser() as browser:
        yield browser


@pytest.mark.browser
def test_the_page_on_zerogpu_upload_mode_generate_cancel_sweep_and_a_preset(
    app_on_zerogpu, browser, tmp_path
):
    url = app_on_zerogpu[0]
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#generate")
    calls = len(gpu_calls(app_on_zerogpu))

    # Upload -> pose, then a mode switch: CPU work in the main process, no GPU call.
    page.set_input_files(
        "#upload input[type=file]", str(write_png(tmp_path / "dancer.png", synthetic_photo()))
    )
    page.wait_for_function("document.querySelector('#pose-info').innerText.includes('1 person')")
    page.get_by_label("Full pose", exact=True).check()
    page.wait_for_timeout(1500)
    assert len(gpu_calls(app_on_zerogpu)) == calls

    # Generate: one GPU call; the images and downloads come back from the main process.
    fill_small_generation(page, "a dancer on a stage", steps=2)
    page.click("#generate")
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('✅')")
    assert page.locator("#gallery .caption-label").count() == 2
    assert page.locator("#downloads").inner_text().count(".png") == 1
    assert [c["function"] for c in gpu_calls(app_on_zerogpu)[calls:]] == ["generation_events"]
    page.screenshot(path=str(tmp_path / "zerogpu-generate.png"), full_page=True)

    # Cancel a long run: its child is closed and gone.
    for selector, value in (("#steps", 100), ("#width", 512), ("#height", 512)):
        field = page.locator(f"{selector} input[type=number]")
        field.fill(str(value))
        field.press("Enter")
    calls = len(gpu_calls(app_on_zerogpu))
    page.click("#generate")
    (call,) = wait_for(lambda: gpu_calls(app_on_zerogpu)[calls:])
    page.wait_for_function(
        "document.querySelectorAll('#gallery img').length > 0"
        " && document.querySelectorAll('#gallery .caption-label').length === 0"
    )  # a live preview, streamed back from the child
    page.click("#cancel")
    (end,) = wait_for(lambda: ended(app_on_zerogpu, call))
    assert end["outcome"] == "closed"
    page.wait_for_function("document.querySelector('#status').innerText.startsWith('⏹ Cancelled at step')")

    # Sweep, then Cancel sweep during its second cell: the GPU function is closed, the done cell kept. The
    # cells are long enough (100 steps at 256²) that the page shows "cell 2 of 3" on a quiet machine too.
    for selector, value in (("#steps", 100), ("#width", 256), ("#height", 256)):
        field = page.locator(f"{selector} input[type=number]")
        field.fill(str(value))
        field.press("Enter")
    page.click("#sweep button")
    page.fill("#sweep-x-values textarea", "3, 5, 7")
    calls = len(gpu_calls(app_on_zerogpu))
    page.click("#sweep-run")
    page.wait_for_function("document.querySelector('#sweep-status').innerText.includes('cell 2 of 3')")
    page.click("#sweep-cancel")
    page.wait_for_function(
        "document.querySelector('#sweep-status').innerText.startsWith('⏹ Cancelled: 1 of 3')"
    )
    (call,) = gpu_calls(app_on_zerogpu)[calls:]
    (end,) = wait_for(lambda: ended(app_on_zerogpu, call))
    assert (call["function"], end["outcome"]) == ("sweep_events", "closed")

    # A preset: its pose is parsed and drawn in the main process, with no GPU call.
    calls = len(gpu_calls(app_on_zerogpu))
    page.click("#preset-standing")
    page.wait_for_function("document.querySelector('#pose-info').innerText.startsWith('Pose JSON')")
    assert "Error" not in page.inner_text("body")
    assert gpu_calls(app_on_zerogpu)[calls:] == []
    page.screenshot(path=str(tmp_path / "zerogpu-preset.png"), full_page=True)
    page.close()
