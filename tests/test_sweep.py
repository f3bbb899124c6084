"""The X/Y sweep: value text, the plan (cap, seeds, batches), the grid image, and runs on the tiny preset."""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from pipelines.errors import GenerationError, ValidationError
from pipelines.generation import PNG_TEXT_KEY, GenerationEngine, GenerationRequest
from pipelines.generation.sweep import (
    GRID_BACKGROUND,
    GRID_MAX_CELL_PX,
    GRID_MAX_SIDE_PX,
    GRID_PLACEHOLDER,
    SweepCellResult,
    SweepProgress,
    grid_layout,
    parse_values,
    plan_sweep,
    render_grid,
    run_sweep,
)
from pipelines.pose import PoseResult, draw_conditioning, from_openpose_json, to_openpose_json
from pipelines.settings import Settings
from tests.app_helpers import REPO, run_out_of_memory_from_the_nth_unet_call

SETTINGS = Settings(preset="tiny", pose_models="tiny")
REQUEST = GenerationRequest(prompt="a dancer in a red coat", num_inference_steps=2, width=128, height=128)
RUN_SIZE = 64  # the runs below: an 8x8 latent, seconds on a CPU
STANDING = from_openpose_json((REPO / "assets" / "poses" / "standing.json").read_bytes())


@pytest.mark.parametrize(
    ("axis", "text", "values"),
    [
        ("guidance_scale", "3, 5.5, 7.5", [3.0, 5.5, 7.5]),
        ("num_inference_steps", "4-10 (+2)", [4, 6, 8, 10]),
        ("num_inference_steps", "10-7", [10, 9, 8, 7]),
        ("control_guidance_end", "1-0 (-0.25)", [1.0, 0.75, 0.5, 0.25, 0.0]),
        ("controlnet_scale", "0.1-0.3 (+0.1), 2", [0.1, 0.2, 0.3, 2.0]),
        ("seed", "-5--3, 12", [-5, -4, -3, 12]),
        ("num_inference_steps", "1-10 [5]", [1, 3, 5, 7, 10]),  # A1111's count form: fractions dropped
        ("guidance_scale", "1-10 [5]", [1.0, 3.25, 5.5, 7.75, 10.0]),
        ("control_guidance_end", "1-0 [3], 0.1", [1.0, 0.5, 0.0, 0.1]),
        ("seed", "7-9 [1]", [7]),
        ("scheduler", "euler A,  ddim", ["Euler a", "DDIM"]),
        ("Prompt S/R", 'red, "blue, green", gold', ["red", "blue, green", "gold"]),
        ("control_guidance_start", "0-0.5 (+0.25)", [0.0, 0.25, 0.5]),
        ("draw_mode", "Full-Pose, body-pose,hand-pose", ["full-pose", "body-pose", "hand-pose"]),
        ("Draw mode", "face-pose", ["face-pose"]),
    ],
)
def test_value_text_reads_lists_ranges_and_names(axis: str, text: str, values: list) -> None:
    assert parse_values(text, axis) == values


@pytest.mark.parametrize(
    ("axis", "text", "message"),
    [
        ("guidance_scale", "7,5x", 'X values: "7,5x" — item 2 ("5x") is not a number'),
        ("guidance_scale", "3,,4", 'X values: "3,,4" — item 2 is empty'),
        ("num_inference_steps", "20, 5.5", 'X values: "20, 5.5" — item 2 ("5.5") is not a whole number'),
        (
            "num_inference_steps",
            "4-10 (+0.5)",
            'X values: "4-10 (+0.5)" — item 1 ("4-10 (+0.5)") has a step "+0.5" that is not a whole number',
        ),
        (
            "guidance_scale",
            "3, 4-10 (-2)",
            'X values: "3, 4-10 (-2)" — item 2 ("4-10 (-2)") never reaches 10: '
            "the step -2 goes the other way",
        ),
        ("guidance_scale", "4-10 (0)", 'X values: "4-10 (0)" — item 1 ("4-10 (0)") has a step of 0'),
        (
            "guidance_scale",
            "4-1x0",
            'X values: "4-1x0" — item 1 ("4-1x0") is not a number or a range like "4-10 (+2)"',
        ),
        (
            "seed",
            "1-1e9",
            'X values: "1-1e9" — item 1 ("1-1e9") gives 1000000000 values; a range may give at most 1000',
        ),
        ("guidance_scale", "  ", 'X values: nothing to sweep; write values like "3, 5.5, 7.5"'),
        ("guidance_scale", "1-10 [0]", 'X values: "1-10 [0]" — item 1 ("1-10 [0]") has a count of 0'),
        (
            "guidance_scale",
            "1-10 [2.5]",
            'X values: "1-10 [2.5]" — item 1 ("1-10 [2.5]") has a count "2.5" that is not a whole number',
        ),
        (
            "num_inference_steps",
            "1-3 [5]",
            'X values: "1-3 [5]" — item 1 ("1-3 [5]") repeats values: '
            "at most 3 whole numbers lie from 1 to 3",
        ),
        (
            "draw_mode",
            "full-pose, face-mask",
            'X values: "full-pose, face-mask" — item 2 ("face-mask") is a mask for inpainting, not OpenPose '
            "conditioning; choose from: full-pose, body-pose, face-pose, hand-pose",
        ),
        (
            "draw_mode",
            "skeleton",
            'X values: "skeleton" — item 1 ("skeleton") is not a draw mode; choose from: full-pose, '
            "body-pose, face-pose, hand-pose",
        ),
        (
            "seed",
            "1-9 [5000]",
            'X values: "1-9 [5000]" — item 1 ("1-9 [5000]") gives 5000 values; a range may give at most 1000',
        ),
    ],
)
def test_bad_value_text_is_quoted_with_its_position(axis: str, text: str, message: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_values(text, axis, "X values")
    assert str(error.value) == message


def test_unknown_scheduler_suggests_the_closest_name() -> None:
    with pytest.raises(
        ValidationError,
        match=r'^Y values: "DDIM, Eulr a" — item 2 \("Eulr a"\) is not a '
        r'scheduler; did you mean "Euler a"\? choose from: DDIM, DPM Multi, ',
    ):
        parse_values("DDIM, Eulr a", "scheduler", "Y values")


def test_unknown_axis_lists_the_axes() -> None:
    with pytest.raises(ValidationError, match=r'^"cfg" is not a sweep axis; choose from: scheduler, '):
        plan_sweep(REQUEST, "cfg", "3, 4", settings=SETTINGS)


def test_cap_counts_cells_and_names_the_setting() -> None:
    with pytest.raises(ValidationError) as error:
        plan_sweep(REQUEST, "guidance_scale", "1-5", "seed", "1-4", settings=SETTINGS)
    assert str(error.value) == "this sweep has 5×4 = 20 cells; the limit is 16 (POSE_STUDIO_SWEEP_MAX_CELLS)"
    with pytest.raises(ValidationError, match=r"^this sweep has 17 cells; the limit is 16 "):
        plan_sweep(REQUEST, "seed", "1-17", settings=SETTINGS)
    wider = plan_sweep(
        REQUEST,
        "guidance_scale",
        "1-5",
        "seed",
        "1-4",
        settings=dataclasses.replace(SETTINGS, sweep_max_cells=20),
    )
    assert len(wider.cells) == 20


def test_values_are_checked_by_the_request_validation() -> None:
    """The ranges live in GenerationRequest.validate; the sweep only adds where the bad value came from."""
    with pytest.raises(ValidationError) as expected:
        dataclasses.replace(REQUEST, num_inference_steps=101).validate()
    with pytest.raises(ValidationError) as error:
        plan_sweep(REQUEST, "num_inference_steps", "1-200 (+50)", settings=SETTINGS)
    assert str(error.value) == f'X values: item 1 ("1-200 (+50)") gives 101: {expected.value}'


def test_a_guidance_start_at_or_after_the_end_is_refused_with_its_item() -> None:
    ending = dataclasses.replace(REQUEST, control_guidance_end=0.5)
    with pytest.raises(ValidationError) as error:
        plan_sweep(ending, "control_guidance_start", "0, 0.25-0.75 (+0.25)", settings=SETTINGS)
    assert str(error.value) == (
        'X values: item 2 ("0.25-0.75 (+0.25)") gives 0.5: control_guidance_start (0.5) must be below '
        "control_guidance_end (0.5): the ControlNet guides from the start to the end of that window"
    )
    plan = plan_sweep(
        ending, "control_guidance_start", "0, 0.25", "draw_mode", "full-pose, hand-pose", settings=SETTINGS
    )
    assert [(c.request.control_guidance_start, c.request.draw_mode) for c in plan.cells] == [
        (0.0, "full-pose"), (0.25, "full-pose"), (0.0, "hand-pose"), (0.25, "hand-pose"),
    ]  # fmt: skip


def test_the_same_axis_twice_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"^X and Y are both Seed; pick two different parameters$"):
        plan_sweep(REQUEST, "seed", "1, 2", "seed", "3", settings=SETTINGS)


def test_prompt_search_replace_swaps_the_first_value_in_turn() -> None:
    plan = plan_sweep(REQUEST, "prompt", "red, blue, gold", settings=SETTINGS)
    assert [cell.request.prompt for cell in plan.cells] == [
        "a dancer in a red coat",
        "a dancer in a blue coat",
        "a dancer in a gold coat",
    ]
    with pytest.raises(ValidationError) as error:
        plan_sweep(REQUEST, "prompt", "green, blue", settings=SETTINGS)
    assert str(error.value) == (
        'X values: item 1 ("green"): the first value "green" is not in the prompt; '
        "prompt S/R replaces that term with each value"
    )


def test_cells_are_row_major_and_share_one_resolved_seed() -> None:
    plan = plan_sweep(
        REQUEST, "guidance_scale", "3, 5.5, 7.5", "scheduler", "Euler a, DDIM", settings=SETTINGS
    )
    assert [(cell.row, cell.column) for cell in plan.cells] == [
        (0, 0),
        (0, 1),
        (0, 2),
        (1, 0),
        (1, 1),
        (1, 2),
    ]
    assert [(cell.request.scheduler, cell.request.guidance_scale) for cell in plan.cells] == [
        ("Euler a", 3.0),
        ("Euler a", 5.5),
        ("Euler a", 7.5),
        ("DDIM", 3.0),
        ("DDIM", 5.5),
        ("DDIM", 7.5),
    ]
    seeds = {cell.request.seed for cell in plan.cells}
    assert len(seeds) == 1 and seeds.pop() >= 0  # -1 drawn once for the whole grid
    assert plan.batches == tuple((index,) for index in range(6))  # nothing but seed may share a request


def test_consecutive_seeds_batch_into_multi_sample_requests() -> None:
    plan = plan_sweep(REQUEST, "seed", "1-6", "guidance_scale", "3, 7", settings=SETTINGS)
    # max_samples = 4 caps a batch; each row's seeds 1..6 are consecutive
    assert plan.batches == ((0, 1, 2, 3), (4, 5), (6, 7, 8, 9), (10, 11))
    columns = plan_sweep(REQUEST, "guidance_scale", "3, 7", "seed", "10, 11, 20", settings=SETTINGS)
    assert columns.batches == ((0, 2), (1, 3), (4,), (5,))  # seed 20 does not follow 11


@pytest.mark.parametrize(("max_samples", "batches"), [(1, ((0,), (1,), (2,))), (8, ((0, 1, 2),))])
def test_batches_stay_within_the_sample_limits(max_samples: int, batches: tuple) -> None:
    """POSE_STUDIO_MAX_SAMPLES may lower the batch size, never raise it past what a request accepts (4)."""
    settings = dataclasses.replace(SETTINGS, max_samples=max_samples)
    assert plan_sweep(REQUEST, "seed", "1-3", settings=settings).batches == batches
    assert plan_sweep(REQUEST, "seed", "1-6", settings=settings).batches[0] == tuple(
        range(min(max_samples, 4))
    )


def _solid(value: int, size: tuple[int, int] = (128, 128)) -> Image.Image:
    return Image.new("RGB", size, (value, 255 - value, 40))


def test_grid_places_cells_labels_and_placeholders() -> None:
    plan = plan_sweep(
        REQUEST, "guidance_scale", "3, 5.5, 7.5", "scheduler", "Euler a, DDIM", settings=SETTINGS
    )
    images = [_solid(30 * index) for index in range(6)]
    images[4] = images[5] = None
    grid = render_grid(plan, images)
    layout = grid_layout(plan, (128, 128))

    assert grid.size == layout.size
    left, top, right, bottom = layout.cells[0]
    assert (right - left, bottom - top) == (128, 128)
    assert layout.cells[2][2] < grid.width and layout.cells[5][3] < grid.height
    pixels = np.asarray(grid)
    for box, image in zip(layout.cells, images, strict=True):
        cell = pixels[box[1] : box[3], box[0] : box[2]]
        expected = np.asarray(image) if image is not None else np.full((128, 128, 3), GRID_PLACEHOLDER)
        np.testing.assert_array_equal(cell, expected)

    assert layout.x_title.text == "Guidance scale" and layout.y_title.text == "Scheduler"
    assert [label.text for label in layout.x_labels] == ["3", "5.5", "7.5"]
    assert [label.text for label in layout.y_labels] == ["Euler a", "DDIM"]
    strips = [
        pixels[text.box[1] : text.box[3], text.box[0] : text.box[2]]
        for text in (layout.x_title, layout.y_title, *layout.x_labels, *layout.y_labels)
    ]
    assert min(int((strip.min(axis=2) < 128).sum()) for strip in strips) > 10  # dark text on white
    x_label_strips = {strip.tobytes() for strip in strips[2:5]}
    assert len(x_label_strips) == 3  # the same-size boxes of "3", "5.5", "7.5" hold different text
    assert (pixels[: layout.x_title.box[1]] == GRID_BACKGROUND).all()


def test_a_one_axis_grid_has_no_row_labels_and_wraps_long_values() -> None:
    plan = plan_sweep(REQUEST, "prompt", "red, very long and winding scarlet, gold", settings=SETTINGS)
    layout = grid_layout(plan, (128, 128))
    assert layout.y_title is None and layout.y_labels == ()
    assert [label.text.count("\n") for label in layout.x_labels] == [0, 1, 0]
    assert layout.size[1] == layout.cells[0][3] + layout.font_size // 2
    grid = render_grid(plan, [_solid(0), None, None])
    assert grid.size == layout.size


def _photo_like(index: int, size: int = 1024) -> Image.Image:
    """Smooth colour with fine noise, deterministic: compresses about as a generated picture does."""
    rng = np.random.default_rng(index)
    field = Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).resize(
        (size, size), Image.BICUBIC
    )
    noise = rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(np.asarray(field, np.float64) + noise, 0, 255).astype(np.uint8))


def test_a_4x3_grid_of_1024_cells_fits_a_screen_with_the_cells_downscaled() -> None:
    plan = plan_sweep(
        REQUEST, "guidance_scale", "3, 5, 7, 9", "scheduler", "Euler a, DDIM, UniPC", settings=SETTINGS
    )
    images = [_photo_like(index) for index in range(12)]
    conditioning = Image.fromarray(draw_conditioning(STANDING, (1024, 1024), "full-pose"))
    grid = render_grid(plan, images, conditioning)
    layout = grid_layout(plan, (1024, 1024), (1024, 1024))
    assert grid.size == layout.size and max(grid.size) <= GRID_MAX_SIDE_PX
    assert max(layout.cell_size) <= GRID_MAX_CELL_PX and layout.cell_size[0] == layout.cell_size[1]
    pixels = np.asarray(grid)
    for (left, top, right, bottom), image in zip(layout.cells, images, strict=True):
        expected = image.resize(layout.cell_size, Image.Resampling.LANCZOS)
        assert np.array_equal(pixels[top:bottom, left:right], np.asarray(expected))
    # The pose, top left, above the Y labels and left of the X labels, with its caption.
    left, top, right, bottom = layout.pose
    assert right <= layout.cells[0][0] and bottom <= layout.cells[0][1]
    assert abs(right - left - layout.cell_size[0] / 2) <= 0.5 and right - left == bottom - top  # half a cell
    thumbnail = conditioning.resize((right - left, bottom - top), Image.Resampling.LANCZOS)
    assert np.array_equal(pixels[top:bottom, left:right], np.asarray(thumbnail))
    assert layout.pose_caption.text == "pose" and layout.pose_caption.box[3] <= top


def test_a_long_row_of_cells_shrinks_them_until_the_grid_fits() -> None:
    plan = plan_sweep(REQUEST, "seed", "1-16", settings=SETTINGS)
    layout = grid_layout(plan, (1024, 1536))
    assert max(layout.size) <= GRID_MAX_SIDE_PX and layout.cell_size[1] > layout.cell_size[0] >= 64
    small = grid_layout(plan_sweep(REQUEST, "seed", "1-2", settings=SETTINGS), (128, 128))
    assert small.cell_size == (128, 128)  # never upscaled


def _ink_inside(grid: Image.Image, layout, font_size: int) -> None:
    """Every text pixel lies inside its measured box: no caption is clipped or spills over another part."""
    font = ImageFont.load_default(size=font_size)
    draw = ImageDraw.Draw(grid)
    texts = [layout.x_title, *layout.x_labels, *layout.y_labels]
    for text in texts:
        left, top, right, bottom = text.box
        centre = ((left + right) / 2, (top + bottom) / 2)
        ink = draw.multiline_textbbox(centre, text.text, font=font, anchor="mm", align="center")
        assert left <= ink[0] and top <= ink[1] and ink[2] <= right and ink[3] <= bottom, text
    free = np.ones(grid.size[::-1], bool)
    for left, top, right, bottom in [*(text.box for text in texts), *layout.cells]:
        free[top:bottom, left:right] = False
    if layout.y_title is not None:
        left, top, right, bottom = layout.y_title.box
        free[top:bottom, left:right] = False
    assert (np.asarray(grid)[free] == GRID_BACKGROUND).all()


def test_long_captions_wrap_and_are_never_clipped() -> None:
    long_words = "supercalifragilisticexpialidocious-scarlet-velvet-coat"
    request = dataclasses.replace(REQUEST, prompt="a dancer in a red coat")
    plan = plan_sweep(
        request,
        "prompt",
        f"red, very long and winding scarlet with gold embroidery on the sleeves, {long_words}",
        "control_guidance_start",
        "0, 0.25",
        settings=SETTINGS,
    )
    for size in ((128, 128), (1024, 1024)):
        grid = render_grid(plan, [_photo_like(index, size[0]) for index in range(6)])
        layout = grid_layout(plan, size)
        assert grid.size == layout.size
        assert all(text.text.count("\n") >= 1 for text in layout.x_labels[1:])
        assert layout.x_labels[2].text.replace("\n", "") == long_words  # broken between letters, all kept
        _ink_inside(grid, layout, layout.font_size)


# --- Runs on the tiny preset ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> GenerationEngine:
    engine = GenerationEngine.from_settings(SETTINGS)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def pose() -> PoseResult:
    return from_openpose_json((REPO / "assets" / "poses" / "standing.json").read_bytes())


def run_request(**changes: object) -> GenerationRequest:
    return dataclasses.replace(REQUEST, width=RUN_SIZE, height=RUN_SIZE, **changes)


def test_a_run_fills_every_cell_with_one_seed_and_saves_its_parameters(engine, pose, tmp_path) -> None:
    plan = plan_sweep(
        run_request(seed=-1), "guidance_scale", "2, 9", "scheduler", "Euler a, DDIM", settings=SETTINGS
    )
    reports: list[SweepProgress] = []
    finished: list[SweepCellResult] = []
    result = run_sweep(engine, plan, pose, progress=reports.append, on_cell=finished.append)

    assert not result.cancelled and result.done == 4
    assert [cell.cell.index for cell in finished] == [0, 1, 2, 3]  # the grid fills in, cell by cell
    assert [report.describe() for report in reports[:2]] == [
        "cell 1 of 4 · step 1/2",
        "cell 1 of 4 · step 2/2",
    ]
    assert reports[-1].describe() == "cell 4 of 4 · step 2/2"
    fractions = [report.fraction for report in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(fractions) == 8

    seed = plan.cells[0].request.seed
    assert [parameters["seed"] for parameters in result.parameters] == [seed] * 4
    paths = result.save(tmp_path)
    assert [path.name for path in paths] == [
        "grid.png",
        "cell-01-r1c1.png",
        "cell-02-r1c2.png",
        "cell-03-r2c1.png",
        "cell-04-r2c2.png",
    ]
    texts = [Image.open(path).text[PNG_TEXT_KEY] for path in paths[1:]]
    assert all(f"Seed: {seed}," in text for text in texts)  # read back: one seed across the grid
    assert ["Sampler: Euler a" in text for text in texts] == [True, True, False, False]
    assert ["CFG scale: 9.0" in text for text in texts] == [False, True, False, True]
    assert all(f"Size: {RUN_SIZE}x{RUN_SIZE}" in text for text in texts)

    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert (saved["x"]["values"], saved["y"]["values"]) == ([2.0, 9.0], ["Euler a", "DDIM"])
    assert [cell["parameters"]["seed"] for cell in saved["cells"]] == [seed] * 4
    grid = Image.open(paths[0])
    assert grid.size == grid_layout(plan, (RUN_SIZE, RUN_SIZE), (RUN_SIZE, RUN_SIZE)).size  # with the pose
    assert saved["pose"] == "pose.json" and saved["conditioning"] == "conditioning.png"
    assert json.loads((tmp_path / "pose.json").read_text()) == to_openpose_json(
        pose.fit_to(RUN_SIZE, RUN_SIZE)
    )
    # same seed, different guidance: the cells differ, so each really ran with its own parameters
    first, second = (np.asarray(image, dtype=np.int16) for image in result.images[:2])
    assert np.abs(first - second).mean() > 1


def test_consecutive_seeds_run_as_one_request_with_the_images_of_separate_runs(
    engine, pose, monkeypatch
) -> None:
    plan = plan_sweep(run_request(), "guidance_scale", "3, 7", "seed", "10, 11", settings=SETTINGS)
    assert plan.batches == ((0, 2), (1, 3))  # each column: seeds 10 and 11 at one guidance scale
    calls: list[GenerationRequest] = []
    generate = engine.generate
    monkeypatch.setattr(
        engine, "generate", lambda request, *a, **k: calls.append(request) or generate(request, *a, **k)
    )
    reports: list[SweepProgress] = []
    finished: list[SweepCellResult] = []
    result = run_sweep(engine, plan, pose, progress=reports.append, on_cell=finished.append)

    assert [(call.guidance_scale, call.seed, call.samples) for call in calls] == [(3.0, 10, 2), (7.0, 10, 2)]
    assert [cell.cell.index for cell in finished] == [0, 2, 1, 3]
    # "cell k of N" counts cells as they run, so it only goes up though batch 2 holds cells 2 and 4
    assert [report.describe() for report in reports] == [
        "cells 1–2 of 4 · step 1/2",
        "cells 1–2 of 4 · step 2/2",
        "cells 3–4 of 4 · step 1/2",
        "cells 3–4 of 4 · step 2/2",
    ]
    assert [report.fraction for report in reports] == [0.25, 0.5, 0.75, 1.0]
    assert [parameters["seed"] for parameters in result.parameters] == [10, 10, 11, 11]
    for cell, image in zip(plan.cells, result.images, strict=True):
        alone = generate(cell.request, pose).images[0]
        # the engine's batch guarantee: within 1e-5 in floats, so at most one level in 8 bits
        assert np.abs(np.asarray(image, np.int16) - np.asarray(alone, np.int16)).max() <= 1
    first, second = (np.asarray(image, np.int16) for image in result.images[:2])
    assert np.abs(first - second).mean() > 1  # and the cells really differ


def test_cancel_stops_the_grid_and_keeps_the_done_cells(engine, pose) -> None:
    plan = plan_sweep(run_request(), "controlnet_scale", "0-1 (+0.5)", settings=SETTINGS)
    cancel = threading.Event()
    result = run_sweep(engine, plan, pose, on_cell=lambda cell: cancel.set(), cancel=cancel)
    assert result.cancelled and result.done == 1
    assert result.images[0] is not None and result.images[1:] == [None, None]
    grid = np.asarray(result.grid())
    layout = grid_layout(plan, (RUN_SIZE, RUN_SIZE), (RUN_SIZE, RUN_SIZE))  # with the pose
    for left, top, right, bottom in layout.cells[1:]:
        assert (grid[top:bottom, left:right] == GRID_PLACEHOLDER).all()
    assert json.loads(json.dumps(result.to_json()))["cells_done"] == 1


def test_cancel_during_a_cell_keeps_the_cells_before_it(engine, pose) -> None:
    plan = plan_sweep(run_request(), "num_inference_steps", "2, 3", settings=SETTINGS)
    cancel = threading.Event()

    def stop_in_second_cell(report: SweepProgress) -> None:
        if report.batch == (1,) and report.step == 2:
            cancel.set()

    result = run_sweep(engine, plan, pose, progress=stop_in_second_cell, cancel=cancel)
    assert result.cancelled and result.done == 1 and result.images[1] is None


def test_a_failing_cell_ends_the_sweep_and_keeps_the_cells_before_it(engine, pose, monkeypatch) -> None:
    plan = plan_sweep(run_request(num_inference_steps=2), "seed", "1, 3, 5", settings=SETTINGS)
    run_out_of_memory_from_the_nth_unet_call(monkeypatch, 3)  # the second cell's first step
    result = run_sweep(engine, plan, pose)
    assert result.done == 1 and result.images[1:] == [None, None] and not result.cancelled
    assert result.error.startswith("Out of GPU memory generating 1 x 64x64. Try fewer samples")
    record = json.loads(json.dumps(result.to_json()))
    assert (record["cells_done"], record["error"]) == (1, result.error)
    assert [cell["file"] for cell in record["cells"]] == ["cell-01-r1c1.png", None, None]


def test_a_sweep_whose_first_cell_fails_raises_the_error(engine, pose, monkeypatch) -> None:
    plan = plan_sweep(run_request(num_inference_steps=2), "seed", "1, 3", settings=SETTINGS)
    run_out_of_memory_from_the_nth_unet_call(monkeypatch, 1)
    with pytest.raises(GenerationError, match="Out of GPU memory generating 1 x 64x64"):
        run_sweep(engine, plan, pose)


def test_cli_writes_the_grid_the_cells_and_sweep_json(tmp_path, capsys) -> None:
    from pipelines.generation.__main__ import main

    arguments = ["sweep", "--pose", str(REPO / "assets" / "poses" / "standing.json"), "--prompt", "a dancer"]
    arguments += [
        "--x-axis",
        "num_inference_steps",
        "--x-values",
        "1-2",
        "--y-axis",
        "seed",
        "--y-values",
        "3, 4",
    ]
    arguments += [
        "--preset",
        "tiny",
        "--width",
        str(RUN_SIZE),
        "--height",
        str(RUN_SIZE),
        "--out",
        str(tmp_path),
    ]
    assert main(arguments) == 0
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert [(cell["x"], cell["y"], cell["parameters"]["seed"]) for cell in saved["cells"]] == [
        (1, 3, 3),
        (2, 3, 3),
        (1, 4, 4),
        (2, 4, 4),
    ]
    assert (
        Image.open(tmp_path / "grid.png").size
        == grid_layout(
            plan_sweep(run_request(), "num_inference_steps", "1-2", "seed", "3, 4", settings=SETTINGS),
            (64, 64),
            (64, 64),
        ).size
    )
    assert capsys.readouterr().out.splitlines()[0] == str(tmp_path / "grid.png")

    assert main([*arguments[:-1], str(tmp_path / "capped"), "--x-values", "1-9"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: this sweep has 9×2 = 18 cells; the limit is 16 (POSE_STUDIO_SWEEP_MAX_CELLS)"
    )


def test_cli_saves_the_done_cells_of_a_sweep_that_failed_and_exits_2(tmp_path, capsys, monkeypatch) -> None:
    from pipelines.generation.__main__ import main

    run_out_of_memory_from_the_nth_unet_call(monkeypatch, 2)  # the second cell (one step each)
    arguments = ["sweep", "--pose", str(REPO / "assets" / "poses" / "standing.json"), "--prompt", "a dancer"]
    arguments += ["--x-axis", "seed", "--x-values", "3, 5", "--num-inference-steps", "1", "--preset", "tiny"]
    arguments += ["--width", str(RUN_SIZE), "--height", str(RUN_SIZE), "--out", str(tmp_path)]
    assert main(arguments) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith(f"error: the sweep stopped after 1 of 2 cells, which are saved in {tmp_path}: ")
    assert "Out of GPU memory" in error
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert [cell["file"] for cell in saved["cells"]] == ["cell-01-r1c1.png", None]
    assert (tmp_path / "cell-01-r1c1.png").is_file() and (tmp_path / "grid.png").is_file()
