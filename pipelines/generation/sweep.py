"""X/Y parameter sweep: run one generation request over a grid of parameter values and lay the results out
as a labelled image, so a designer can compare settings side by side.

A thin layer over `GenerationEngine`: an axis names the `GenerationRequest` field its values set,
`GenerationRequest.validate()` stays the only place that knows the ranges, and the images are saved with
the engine's own PNG metadata."""

from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from pipelines.errors import Cancelled, UserError, ValidationError
from pipelines.files import save_image, write_text
from pipelines.generation.metadata import png_text
from pipelines.generation.request import (
    CONDITIONING_FILE_NAME,
    DRAFT_FIXED_FIELDS,
    POSE_FILE_NAME,
    REQUEST_BOUNDS,
    GenerationRequest,
    PoseInput,
    resolve_seed,
)
from pipelines.generation.schedulers import SCHEDULERS
from pipelines.pose.draw import CONDITIONING_MODES, DrawMode
from pipelines.settings import ENV_PREFIX, Settings

if TYPE_CHECKING:  # the engine (torch) loads on first use; the page imports this module before that
    from pipelines.generation.engine import GenerationEngine

RANGE_MAX_VALUES = 1000
"""A range may expand to at most this many values: a typo like `1-1e9` fails at once instead of filling
memory before the cell cap gets to speak."""

# ---------------------------------------------------------------------------------------------------------
# Value text: one comma item at a time


class _ItemError(ValueError):
    """One comma item is unreadable; the message is the phrase that follows the quoted item."""


_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(
    rf"(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})"
    rf"(?:\s*\(\s*(?P<step>{_NUMBER})\s*\)|\s*\[\s*(?P<count>[^\]]*?)\s*\])?"
)


def _decimal(token: str, number_type: type, part: str = "") -> Decimal:
    """`token` (already matched as a number) exact, so `1-0 (-0.25)` stops at 0 and `0.1-0.3 (+0.1)`
    reaches 0.3; `part` names the piece of a range in the message."""
    value = Decimal(token)
    if number_type is int and value != value.to_integral_value():
        where = f'has {part} "{token}" that ' if part else ""
        raise _ItemError(f"{where}is not a whole number")
    return value


def _read_numbers(token: str, number_type: type) -> list[Any]:
    """A number, or a range: `4-10` (step 1 or -1), `4-10 (+2)`, `1-0 (-0.25)`, or A1111's `1-10 [5]`
    (5 values evenly spaced from 1 to 10)."""
    if re.fullmatch(_NUMBER, token):
        return [number_type(_decimal(token, number_type))]
    match = _RANGE.fullmatch(token)
    if match is None:
        raise _ItemError("is not a number" + (' or a range like "4-10 (+2)"' if "-" in token else ""))
    start = _decimal(match["start"], number_type, "a start")
    end = _decimal(match["end"], number_type, "an end")
    if match["count"] is not None:
        return _spaced(start, end, match["count"], number_type)
    step = (
        _decimal(match["step"], number_type, "a step")
        if match["step"]
        else Decimal(1 if end >= start else -1)
    )
    if step == 0:
        raise _ItemError("has a step of 0")
    if (end - start) * step < 0:
        raise _ItemError(f"never reaches {end}: the step {step:+} goes the other way")
    count = int((end - start) / step) + 1
    if count > RANGE_MAX_VALUES:
        raise _ItemError(f"gives {count} values; a range may give at most {RANGE_MAX_VALUES}")
    return [number_type(start + step * index) for index in range(count)]


def _spaced(start: Decimal, end: Decimal, count_text: str, number_type: type) -> list[Any]:
    """`count` values from start to end, both included, evenly spaced; whole-number axes drop the fraction
    as A1111 does (`1-10 [5]` -> 1, 3, 5, 7, 10)."""
    if not re.fullmatch(r"\d+", count_text):
        raise _ItemError(f'has a count "{count_text}" that is not a whole number')
    count = int(count_text)
    if count == 0:
        raise _ItemError("has a count of 0")
    if count > RANGE_MAX_VALUES:
        raise _ItemError(f"gives {count} values; a range may give at most {RANGE_MAX_VALUES}")
    gaps = max(count - 1, 1)
    values = [number_type(start + (end - start) * index / gaps) for index in range(count)]
    if len(set(values)) < count:
        fit = int(abs(end - start)) + 1
        raise _ItemError(f"repeats values: at most {fit} whole numbers lie from {start} to {end}")
    return values


def _read_scheduler(token: str) -> list[Any]:
    """A scheduler name in any case and spacing, as its canonical spelling."""
    canonical = {" ".join(name.split()).casefold(): name for name in SCHEDULERS}
    key = " ".join(token.split()).casefold()
    if key in canonical:
        return [canonical[key]]
    close = difflib.get_close_matches(key, canonical, n=1)
    hint = f'did you mean "{canonical[close[0]]}"? ' if close else ""
    raise _ItemError(f"is not a scheduler; {hint}choose from: {', '.join(SCHEDULERS)}")


def _read_draw_mode(token: str) -> list[Any]:
    """A pose draw mode in any case; a mask mode is refused saying what it is for."""
    names = ", ".join(mode.value for mode in CONDITIONING_MODES)
    mode = next((mode for mode in DrawMode if mode.value == token.casefold()), None)
    if mode is None:
        raise _ItemError(f"is not a draw mode; choose from: {names}")
    if mode not in CONDITIONING_MODES:
        raise _ItemError(f"is a mask for inpainting, not OpenPose conditioning; choose from: {names}")
    return [mode.value]


@dataclass(frozen=True)
class Axis:
    """One parameter a sweep can vary."""

    name: str  # the GenerationRequest field it sets; also its key in the CLI, the API and sweep.json
    title: str  # drawn on the grid and shown in the UI
    read: Callable[[str], list[Any]]  # one comma item -> its value(s); raises _ItemError
    example: str  # value text shown as a placeholder and in messages


def _read_term(token: str) -> list[Any]:
    return [token]


# Module-level readers (no lambdas), so a plan pickles: on ZeroGPU it travels to the GPU worker.
_whole_numbers = partial(_read_numbers, number_type=int)
_numbers = partial(_read_numbers, number_type=float)

AXES: dict[str, Axis] = {
    axis.name: axis
    for axis in (
        Axis("scheduler", "Scheduler", _read_scheduler, "Euler a, DDIM"),
        Axis("num_inference_steps", "Steps", _whole_numbers, "10-30 (+10)"),
        Axis("guidance_scale", "Guidance scale", _numbers, "3, 5.5, 7.5"),
        Axis("controlnet_scale", "ControlNet scale", _numbers, "0.5-1 (+0.25)"),
        Axis("seed", "Seed", _whole_numbers, "1, 2, 3, 4"),
        Axis("control_guidance_start", "ControlNet start", _numbers, "0-0.5 (+0.25)"),
        Axis("control_guidance_end", "ControlNet end", _numbers, "1-0.5 (-0.25)"),
        Axis("draw_mode", "Draw mode", _read_draw_mode, "full-pose, body-pose"),
        # Prompt S/R: the first value is a term of the prompt, and each value replaces it in turn.
        Axis("prompt", "Prompt S/R", _read_term, "red, blue, green"),
    )
}


def axis_by_name(name: str) -> Axis:
    """The axis called `name` (its key or its title, any case)."""
    for axis in AXES.values():
        if name.strip().casefold() in (axis.name, axis.title.casefold()):
            return axis
    raise ValidationError(f'"{name}" is not a sweep axis; choose from: {", ".join(AXES)}')


def format_value(value: Any) -> str:
    """A value as it is drawn on the grid: `5.5`, not `5.500000`; text as it is."""
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class _Item:
    """A value and the comma item it came from, so a value the request refuses can be traced back."""

    value: Any
    number: int  # 1-based
    token: str


def _read_items(text: str, axis: Axis, label: str) -> list[_Item]:
    if not text.strip():
        raise ValidationError(f'{label}: nothing to sweep; write values like "{axis.example}"')
    # csv so that prompt S/R values may hold commas inside quotes: `"red, white", blue`
    tokens = next(csv.reader([text.replace("\n", ",")], skipinitialspace=True))
    items = []
    for number, token in enumerate((raw.strip() for raw in tokens), 1):
        try:
            if not token:
                raise _ItemError("is empty")
            items.extend(_Item(value, number, token) for value in axis.read(token))
        except _ItemError as error:
            item = f'item {number} ("{token}")' if token else f"item {number}"
            raise ValidationError(f'{label}: "{text.strip()}" — {item} {error}') from None
    return items


def parse_values(text: str, axis: str | Axis, label: str = "Values") -> list[Any]:
    """The values written in `text` for `axis`: comma lists (`3, 5.5, 7.5`), ranges (`4-10 (+2)`,
    `1-0 (-0.25)`, `1-10 [5]`), scheduler names in any case. Raises ValidationError quoting the bad item."""
    axis = axis if isinstance(axis, Axis) else axis_by_name(axis)
    return [item.value for item in _read_items(text, axis, label)]


# ---------------------------------------------------------------------------------------------------------
# Plan


@dataclass(frozen=True)
class AxisValues:
    """One axis of a planned sweep with the values it takes, in order."""

    axis: Axis
    values: tuple[Any, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(format_value(value) for value in self.values)


@dataclass(frozen=True)
class SweepCell:
    """One image of the grid: its place and the exact request that makes it."""

    index: int  # row-major: row * columns + column
    row: int
    column: int
    request: GenerationRequest


@dataclass(frozen=True)
class SweepPlan:
    """A validated sweep: cells in row-major order, and the batches they run in."""

    x: AxisValues
    y: AxisValues | None
    cells: tuple[SweepCell, ...]
    batches: tuple[tuple[int, ...], ...]  # cell indices; a batch is one multi-sample request

    @property
    def columns(self) -> int:
        return len(self.x.values)

    @property
    def rows(self) -> int:
        return len(self.y.values) if self.y else 1

    def cell_label(self, cell: SweepCell) -> str:
        """What sets the cell apart, e.g. "Guidance scale 5.5 · Scheduler DDIM"."""
        parts = [(self.x, cell.column), *([(self.y, cell.row)] if self.y else [])]
        return " · ".join(f"{values.axis.title} {values.labels[index]}" for values, index in parts)

    def to_json(self) -> dict[str, Any]:
        def axis(values: AxisValues) -> dict[str, Any]:
            return {"axis": values.axis.name, "title": values.axis.title, "values": list(values.values)}

        y = axis(self.y) if self.y else None
        return {"x": axis(self.x), "y": y, "rows": self.rows, "columns": self.columns}


def plan_sweep(
    request: GenerationRequest,
    x_axis: str,
    x_values: str,
    y_axis: str | None = None,
    y_values: str = "",
    *,
    settings: Settings,
) -> SweepPlan:
    """Check the axes and their values against the cap and the request's own validation, and lay out the
    cells. Every cell gets the same seed unless seed is an axis: a random seed (-1) is drawn once, here."""
    request.validate()
    x = axis_by_name(x_axis)
    y = axis_by_name(y_axis) if y_axis else None
    if y is x:
        raise ValidationError(f"X and Y are both {x.title}; pick two different parameters")
    fixed = [axis.title for axis in (x, y) if axis is not None and axis.name in DRAFT_FIXED_FIELDS]
    if request.draft and fixed:
        raise ValidationError(f"Draft mode fixes {fixed[0]}; turn Draft off to sweep it")
    x_items = _read_items(x_values, x, "X values")
    y_items = _read_items(y_values, y, "Y values") if y else []
    _check_cap(len(x_items), len(y_items) if y else None, settings.sweep_max_cells)

    base = dataclasses.replace(request, samples=1)
    if AXES["seed"] not in (x, y):
        base = dataclasses.replace(base, seed=resolve_seed(base.seed))
    xs, x_changes = _axis_changes(base, x, x_items, "X values")
    ys, y_changes = _axis_changes(base, y, y_items, "Y values") if y else ((), [{}])
    cells = tuple(
        SweepCell(row * len(xs) + column, row, column, dataclasses.replace(base, **x_change, **y_change))
        for row, y_change in enumerate(y_changes)
        for column, x_change in enumerate(x_changes)
    )
    max_batch = min(settings.max_samples, int(REQUEST_BOUNDS["samples"].high))
    return SweepPlan(
        x=AxisValues(x, xs),
        y=AxisValues(y, ys) if y else None,
        cells=cells,
        batches=_batches(cells, max_batch),
    )


def _check_cap(columns: int, rows: int | None, max_cells: int) -> None:
    cells = columns * (rows or 1)
    if cells > max_cells:
        shape = f"{columns}×{rows} = {cells}" if rows else f"{cells}"
        raise ValidationError(
            f"this sweep has {shape} cells; the limit is {max_cells} ({ENV_PREFIX}SWEEP_MAX_CELLS)"
        )


def _axis_changes(
    base: GenerationRequest, axis: Axis, items: Sequence[_Item], label: str
) -> tuple[tuple[Any, ...], list[dict[str, Any]]]:
    """The values of `axis` (a seed of -1 drawn now, so sweep.json reproduces the grid) and the request
    fields each sets, checked by `GenerationRequest.validate` so the ranges live in one place; a refused
    value is reported with the item it came from."""
    values = tuple(resolve_seed(item.value) if axis.name == "seed" else item.value for item in items)
    changes = []
    for item, value in zip(items, values, strict=True):
        try:
            change = _request_change(base, axis, values[0], value)
            dataclasses.replace(base, **change).validate()
        except ValidationError as error:
            origin = f'item {item.number} ("{item.token}")'
            if format_value(value) != item.token:
                origin += f" gives {format_value(value)}"
            raise ValidationError(f"{label}: {origin}: {error}") from None
        changes.append(change)
    return values, changes


def _request_change(base: GenerationRequest, axis: Axis, first: Any, value: Any) -> dict[str, Any]:
    """The field one value sets; prompt S/R replaces the first value, a term of the prompt, by `value`."""
    if axis.name != "prompt":
        return {axis.name: value}
    if first not in base.prompt:
        raise ValidationError(
            f'the first value "{first}" is not in the prompt; prompt S/R replaces that term with each value'
        )
    return {"prompt": base.prompt.replace(first, value)}


def _batches(cells: Sequence[SweepCell], max_batch: int) -> tuple[tuple[int, ...], ...]:
    """Cells whose requests differ only by consecutive seeds share one multi-sample request, since the
    engine gives sample k the seed + k; any other difference needs a request of its own."""
    batches: list[list[SweepCell]] = []
    for cell in cells:
        follows = dataclasses.replace(cell.request, seed=cell.request.seed - 1)
        batch = next((b for b in batches if b[-1].request == follows and len(b) < max_batch), None)
        if batch is None:
            batches.append([cell])
        else:
            batch.append(cell)
    return tuple(tuple(cell.index for cell in batch) for batch in batches)


# ---------------------------------------------------------------------------------------------------------
# Run


@dataclass(frozen=True)
class SweepProgress:
    """Where a running sweep is: the batch of cells now denoising and its step."""

    cells_done: int
    cells_total: int
    batch: tuple[int, ...]  # cell indices now running
    step: int
    steps: int

    @property
    def fraction(self) -> float:
        """Of the whole grid, counting every cell alike."""
        running = len(self.batch) * self.step / self.steps if self.steps else 0.0
        return (self.cells_done + running) / self.cells_total

    def describe(self) -> str:
        """ "cell k of N", k counting the cells in the order they run, so it only ever goes up."""
        first, last = self.cells_done + 1, self.cells_done + len(self.batch)
        cells = f"cell {first}" if first == last else f"cells {first}–{last}"
        return f"{cells} of {self.cells_total} · step {self.step}/{self.steps}"


@dataclass(frozen=True)
class SweepCellResult:
    """A finished cell, passed to `on_cell` so a caller can redraw the grid as it fills in, or build the
    result of a sweep stopped before it returned (see `SweepResult.add`)."""

    cell: SweepCell
    image: Image.Image
    parameters: dict[str, Any]  # the resolved request of this one image (its own seed)
    conditioning: Image.Image  # the pose image of its batch (the same for every cell but a draw-mode axis)
    models: dict[str, str]
    pose: dict | None = None  # the OpenPose JSON of the pose drawn (GenerationResult.pose)


def run_sweep(
    engine: GenerationEngine,
    plan: SweepPlan,
    pose: PoseInput,
    *,
    progress: Callable[[SweepProgress], None] | None = None,
    on_cell: Callable[[SweepCellResult], None] | None = None,
    cancel: threading.Event | None = None,
) -> SweepResult:
    """Run the plan batch by batch. Cancelling stops the grid and keeps the cells already done (the result
    says `cancelled`). So does a cell that fails with a UserError (out of memory, say) once some cells are
    done: the result keeps them and says why in `error`. A failure before any cell is done propagates."""
    total = len(plan.cells)
    result = SweepResult(plan, [None] * total, [None] * total)
    for batch in plan.batches:
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break

        def on_step(step: int, steps: int, batch: tuple[int, ...] = batch, done: int = result.done) -> None:
            progress(SweepProgress(done, total, batch, step, steps))

        request = dataclasses.replace(plan.cells[batch[0]].request, samples=len(batch))
        try:
            generated = engine.generate(request, pose, progress=on_step if progress else None, cancel=cancel)
        except Cancelled:
            result.cancelled = True
            break
        except UserError as error:
            if not result.done:
                raise
            result.error = str(error)
            break
        for index, image, seed in zip(batch, generated.images, generated.seeds, strict=True):
            parameters = {**generated.parameters, "samples": 1, "seed": seed}
            finished = SweepCellResult(
                plan.cells[index], image, parameters, generated.conditioning, generated.models, generated.pose
            )
            result.add(finished)
            if on_cell is not None:
                on_cell(finished)
    return result


GRID_FILE_NAME = "grid.png"
SWEEP_FILE_NAME = "sweep.json"


@dataclass
class SweepResult:
    """The images of a sweep so far, in row-major cell order (None: not done)."""

    plan: SweepPlan
    images: list[Image.Image | None]
    parameters: list[dict[str, Any] | None]  # per cell: the resolved request of its image
    # The pose image of the first cell done: every cell's, unless draw mode is an axis.
    conditioning: Image.Image | None = None
    pose: dict | None = None  # the OpenPose JSON of the pose drawn, the same for every cell
    models: dict[str, str] = dataclasses.field(default_factory=dict)  # for the PNG metadata
    cancelled: bool = False
    error: str | None = None  # why a cell failed, ending the sweep early (the cells before it are kept)

    @property
    def done(self) -> int:
        return sum(image is not None for image in self.images)

    def add(self, finished: SweepCellResult) -> None:
        """Record a finished cell: its image and parameters, and the pose, conditioning and models it shares
        with the others (the first cell's conditioning is kept)."""
        index = finished.cell.index
        self.images[index], self.parameters[index] = finished.image, finished.parameters
        self.conditioning = self.conditioning or finished.conditioning
        self.pose, self.models = finished.pose, finished.models

    def grid(self) -> Image.Image | None:
        """The labelled grid, grey where a cell is not done; None while no cell is."""
        return render_grid(self.plan, self.images, self.conditioning) if self.done else None

    def cell_file_name(self, cell: SweepCell) -> str:
        return f"cell-{cell.index + 1:02d}-r{cell.row + 1}c{cell.column + 1}.png"

    def to_json(self) -> dict[str, Any]:
        """sweep.json and the API's record: the axes, and each cell's values, file and parameters."""
        plan = self.plan
        cells = [
            {
                "index": cell.index,
                "row": cell.row,
                "column": cell.column,
                "x": plan.x.values[cell.column],
                "y": plan.y.values[cell.row] if plan.y else None,
                "file": self.cell_file_name(cell) if parameters else None,
                "parameters": parameters,
            }
            for cell, parameters in zip(plan.cells, self.parameters, strict=True)
        ]
        return {
            **plan.to_json(),
            "grid": GRID_FILE_NAME if self.done else None,
            "conditioning": CONDITIONING_FILE_NAME if self.conditioning else None,
            "pose": POSE_FILE_NAME if self.pose is not None else None,
            "models": self.models,
            "cancelled": self.cancelled,
            "error": self.error,
            "cells_done": self.done,
            "cells": cells,
        }

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write grid.png, each finished cell as a PNG carrying its own parameters (the engine's metadata),
        conditioning.png, pose.json (when the pose was not a skeleton image) and sweep.json into `out_dir`,
        each atomically; returns the image paths, grid first."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        if (grid := self.grid()) is not None:
            paths.append(save_image(grid, out / GRID_FILE_NAME))
        for cell, image, parameters in zip(self.plan.cells, self.images, self.parameters, strict=True):
            if image is not None:
                metadata = png_text(parameters, parameters["seed"], self.models)
                paths.append(save_image(image, out / self.cell_file_name(cell), pnginfo=metadata))
        if self.conditioning is not None:
            save_image(self.conditioning, out / CONDITIONING_FILE_NAME)
        if self.pose is not None:
            write_text(out / POSE_FILE_NAME, json.dumps(self.pose) + "\n")
        write_text(out / SWEEP_FILE_NAME, json.dumps(self.to_json(), indent=2) + "\n")
        return paths


# ---------------------------------------------------------------------------------------------------------
# Grid image

GRID_BACKGROUND = (255, 255, 255)
GRID_TEXT = (0, 0, 0)
GRID_PLACEHOLDER = (160, 160, 160)  # a cell not generated (yet, or ever after a cancel)
# The grid is for a screen; the cells at full size are the zip's. A cell's longest side is at most
# GRID_MAX_CELL_PX, and cells shrink further so that the grid's longest side is at most GRID_MAX_SIDE_PX.
GRID_MAX_CELL_PX = 512
GRID_MAX_SIDE_PX = 2048
GRID_MIN_CELL_PX = 32  # a grid too wide even at this cell size goes over GRID_MAX_SIDE_PX
GRID_POSE_FRACTION = 0.5  # the pose thumbnail (top left corner) fits in this fraction of a cell
GRID_POSE_CAPTION = "pose"

Box = tuple[int, int, int, int]  # left, top, right, bottom


@dataclass(frozen=True)
class GridText:
    """A piece of text on the grid, centred in its box; lines already wrapped to fit the box."""

    box: Box
    text: str


@dataclass(frozen=True)
class GridLayout:
    """Where each part of a grid image sits, and the text drawn there."""

    size: tuple[int, int]
    font_size: int
    cell_size: tuple[int, int]  # a cell as drawn in the grid (the images downscaled to it)
    cells: tuple[Box, ...]  # row-major, like the plan's cells
    x_title: GridText
    x_labels: tuple[GridText, ...]
    y_title: GridText | None  # drawn turned a quarter left
    y_labels: tuple[GridText, ...]
    pose: Box | None = None  # the pose thumbnail in the top left corner
    pose_caption: GridText | None = None


def _grid_font(cell_size: tuple[int, int]) -> ImageFont.FreeTypeFont:
    """Text scales with the cells so labels stay readable at 128 px and at 512 px."""
    return ImageFont.load_default(size=max(12, min(cell_size) // 16))


_MEASURE = ImageDraw.Draw(Image.new("RGB", (1, 1)))


def text_size(text: str, font: ImageFont.FreeTypeFont) -> tuple[int, int]:
    """The smallest box that holds the ink of `text` drawn centred in it, as the grid draws it (anchor "mm"
    centres on the line metrics, not on the ink, so the box reaches as far as the ink does on either side)."""
    left, top, right, bottom = _MEASURE.multiline_textbbox(
        (0, 0), text, font=font, anchor="mm", align="center"
    )
    return math.ceil(2 * max(-left, right)), math.ceil(2 * max(-top, bottom))


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """Words over lines no wider than `width`; a word wider than that alone is broken between letters, so a
    long prompt S/R value stays inside its column."""
    lines = [""]

    def add(piece: str, joiner: str) -> None:
        joined = f"{lines[-1]}{joiner}{piece}" if lines[-1] else piece
        if lines[-1] and font.getlength(joined) > width:
            lines.append(piece)
        else:
            lines[-1] = joined

    for word in text.split():
        if font.getlength(word) <= width:
            add(word, " ")
            continue
        add(word[0], " ")
        for letter in word[1:]:
            add(letter, "")
    return "\n".join(lines)


def _fit(size: tuple[int, int], bound: tuple[float, float]) -> tuple[int, int]:
    scale = min(bound[0] / size[0], bound[1] / size[1])
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def grid_layout(
    plan: SweepPlan,
    image_size: tuple[int, int],
    pose_size: tuple[int, int] | None = None,
    *,
    max_cell_px: int = GRID_MAX_CELL_PX,
    max_side_px: int = GRID_MAX_SIDE_PX,
) -> GridLayout:
    """The geometry and text of `plan`'s grid for images of `image_size` (width, height), with a pose
    thumbnail of `pose_size` when given: cells downscaled to at most `max_cell_px`, and further until the
    grid's longest side is at most `max_side_px` (unless cells would go below GRID_MIN_CELL_PX)."""
    scale = min(1.0, max_cell_px / max(image_size))
    while True:
        cell = (max(1, round(image_size[0] * scale)), max(1, round(image_size[1] * scale)))
        layout = _layout_at(plan, cell, pose_size)
        over = max(layout.size) / max_side_px
        if over <= 1 or max(cell) <= GRID_MIN_CELL_PX:
            return layout
        # The labels do not shrink with the cells: aim a little lower each time, so this ends.
        scale = max(scale * min(1 / over, 0.98), GRID_MIN_CELL_PX / max(image_size))


def _layout_at(plan: SweepPlan, cell_size: tuple[int, int], pose_size: tuple[int, int] | None) -> GridLayout:
    """X title and values above the columns, Y title and values left of the rows, the pose top left; every
    text area is measured with the font and grows to hold its wrapped text."""
    font = _grid_font(cell_size)
    width, height = cell_size
    pad, gap = font.size // 2, max(2, font.size // 6)

    x_texts = [_wrap(label, font, width - 2 * pad) for label in plan.x.labels]
    x_labels_height = max(text_size(text, font)[1] for text in x_texts) + pad
    y_texts = [_wrap(label, font, width) for label in plan.y.labels] if plan.y else []
    y_sizes = [text_size(text, font) for text in y_texts]
    y_labels_width = max((text_width + 2 * pad for text_width, _ in y_sizes), default=0)
    row_heights = [max(height, text_height + 2 * pad) for _, text_height in y_sizes] or [height]

    pose = _fit(pose_size, (width * GRID_POSE_FRACTION, height * GRID_POSE_FRACTION)) if pose_size else None
    caption_height = text_size(GRID_POSE_CAPTION, font)[1] + pad if pose else 0
    body_height = sum(row_heights) + gap * (len(row_heights) - 1)
    y_title = _wrap(plan.y.axis.title, font, body_height) if plan.y else ""
    y_title_width = text_size(y_title, font)[1] + pad if plan.y else 0
    # The corner (above the Y labels, left of the X labels) holds the pose: it widens the label column.
    left = pad + y_title_width + max(y_labels_width, (pose[0] + pad) if pose else 0)
    columns_width = plan.columns * width + (plan.columns - 1) * gap
    x_title = _wrap(plan.x.axis.title, font, columns_width)
    x_title_height = text_size(x_title, font)[1]
    top = pad + max(x_title_height + pad + x_labels_height, (pose[1] + caption_height + pad) if pose else 0)

    x_title_top = top - x_labels_height - pad - x_title_height
    lefts = [left + column * (width + gap) for column in range(plan.columns)]
    row_tops = [top + sum(row_heights[:row]) + row * gap for row in range(plan.rows)]
    tops = [
        row_top + (row_height - height) // 2
        for row_top, row_height in zip(row_tops, row_heights, strict=True)
    ]
    right, bottom = lefts[-1] + width, row_tops[-1] + row_heights[-1]
    pose_box = caption = None
    if pose:
        pose_left = left - pad - pose[0]
        caption = GridText((pose_left, pad, left - pad, pad + caption_height), GRID_POSE_CAPTION)
        pose_box = (pose_left, pad + caption_height, left - pad, pad + caption_height + pose[1])
    return GridLayout(
        size=(right + pad, bottom + pad),
        font_size=font.size,
        cell_size=cell_size,
        cells=tuple(
            (lefts[cell.column], tops[cell.row], lefts[cell.column] + width, tops[cell.row] + height)
            for cell in plan.cells
        ),
        x_title=GridText((left, x_title_top, right, x_title_top + x_title_height), x_title),  # on its labels
        x_labels=tuple(
            GridText((x0, top - x_labels_height, x0 + width, top - pad // 2), text)
            for x0, text in zip(lefts, x_texts, strict=True)
        ),
        y_title=GridText((pad, top, pad + y_title_width, bottom), y_title) if plan.y else None,
        y_labels=tuple(
            GridText(
                (left - y_labels_width, row_tops[row], left - pad, row_tops[row] + row_heights[row]), text
            )
            for row, text in enumerate(y_texts)
        ),
        pose=pose_box,
        pose_caption=caption,
    )


def _draw_text(draw: ImageDraw.ImageDraw, text: GridText, font: ImageFont.FreeTypeFont) -> None:
    left, top, right, bottom = text.box
    centre = ((left + right) / 2, (top + bottom) / 2)
    draw.multiline_text(centre, text.text, fill=GRID_TEXT, font=font, anchor="mm", align="center")


def render_grid(
    plan: SweepPlan,
    images: Sequence[Image.Image | None],
    conditioning: Image.Image | None = None,
    **limits: int,
) -> Image.Image:
    """The labelled grid, sized for a screen (see `grid_layout`, which takes `limits`): `images` in
    row-major cell order, None for a cell not done (a grey placeholder), and the pose `conditioning` as a
    thumbnail top left when given. At least one image must be there: the cells take its size."""
    image_size = next(image.size for image in images if image is not None)
    layout = grid_layout(plan, image_size, conditioning.size if conditioning else None, **limits)
    font = _grid_font(layout.cell_size)
    grid = Image.new("RGB", layout.size, GRID_BACKGROUND)
    draw = ImageDraw.Draw(grid)
    for (left, top, right, bottom), image in zip(layout.cells, images, strict=True):
        if image is None:
            draw.rectangle((left, top, right - 1, bottom - 1), fill=GRID_PLACEHOLDER)
        else:
            grid.paste(_resized(image, layout.cell_size), (left, top))
    if conditioning is not None and layout.pose is not None and layout.pose_caption is not None:
        left, top, right, bottom = layout.pose
        grid.paste(_resized(conditioning, (right - left, bottom - top)), (left, top))
        _draw_text(draw, layout.pose_caption, font)
    for text in (layout.x_title, *layout.x_labels, *layout.y_labels):
        _draw_text(draw, text, font)
    if layout.y_title is not None:  # drawn upright on its own strip, then turned
        left, top, right, bottom = layout.y_title.box
        title = Image.new("RGB", (bottom - top, right - left), GRID_BACKGROUND)
        _draw_text(ImageDraw.Draw(title), GridText((0, 0, *title.size), layout.y_title.text), font)
        grid.paste(title.rotate(90, expand=True), (left, top))
    return grid


def _resized(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    image = image.convert("RGB")
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


# ---------------------------------------------------------------------------------------------------------
# Command line
