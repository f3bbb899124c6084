"""The Sweep section: pick an X (and a Y) parameter and their values, run the generation panel's request over
the grid and watch it fill in; and the /sweep API endpoint. Wiring and thin handlers over
pipelines.generation.sweep; the generation panel supplies every other parameter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
from PIL import Image

from pipelines.files import write_zip
from pipelines.generation import GenerationRequest, PoseInput
from pipelines.generation.sweep import (
    AXES,
    SweepPlan,
    SweepProgress,
    SweepResult,
    plan_sweep,
    render_grid,
    run_sweep,
)
from ui.handlers import (
    LOADING_GENERATION,
    PROGRESS,
    SAMPLER_API,
    GpuEvent,
    PoseStudio,
    Report,
    panel_request,
    request_of,
    session_of,
    stream_from_worker,
    until_cancelled,
    user_facing_errors,
)
from ui.zerogpu import gpu_task, sweep_seconds

if TYPE_CHECKING:
    from ui.layout import GenerationPanel, PosePanel

UI_EVENT = {"api_visibility": "private"}  # the page's own events (see ui.layout.UI_EVENT)

AXIS_CHOICES = [(axis.title, axis.name) for axis in AXES.values()]
NO_AXIS = ""  # the Y dropdown's "none": a one-row sweep
DEFAULT_X_AXIS = "guidance_scale"
ARCHIVE_NAME = "pose-studio-sweep.zip"
SWEEP_RUN = "sweep"  # the kind of run Cancel sweep stops (see ui.state.CancelFlags)
SWEEP_STOPPED_EARLY = "The sweep stopped early; the finished cells are kept."  # + the failing cell's error
AXIS_API = ("x_axis", "x_values", "y_axis", "y_values")
SWEEP_API = ("prompt", *AXIS_API, "negative_prompt", *SAMPLER_API)  # /sweep's parameters after `image`


@dataclass(frozen=True)
class SavedSweep:
    """A finished (or cancelled) sweep and its files on disk."""

    result: SweepResult
    images: list[Path]  # grid.png first, then each finished cell
    archive: Path

    def gallery(self) -> list[tuple[str, str]]:
        """The finished cells, each captioned with the values that set it apart."""
        plan, done = (
            self.result.plan,
            [cell for cell in self.result.plan.cells if self.result.images[cell.index]],
        )
        return [(str(path), plan.cell_label(cell)) for path, cell in zip(self.images[1:], done, strict=True)]

    def grid(self) -> str | None:
        return str(self.images[0]) if self.result.done else None

    def files(self) -> list[str]:
        """The downloads: the zip, the grid and each cell; none when no cell finished."""
        return [str(self.archive), *map(str, self.images)] if self.result.done else []

    def summary(self) -> str:
        result, plan = self.result, self.result.plan
        shape = f"{plan.columns}×{plan.rows} = {len(plan.cells)}" if plan.y else f"{len(plan.cells)}"
        seeds = {cell.request.seed for cell in plan.cells}
        seed_text = f"seed {seeds.pop()}" if len(seeds) == 1 else "seeds from the Seed axis"
        if result.cancelled and not result.done:
            return "Cancelled before any cell finished."
        if result.cancelled:
            return (
                f"Cancelled: {result.done} of {len(plan.cells)} cells done ({seed_text}); the rest are grey."
            )
        if result.error:
            return (
                f"Stopped after {result.done} of {len(plan.cells)} cells ({seed_text}); the rest are grey "
                f"because the next cell failed: {result.error}"
            )
        return f"{shape} cells, {seed_text}."


def _values_placeholder(axis_name: str) -> dict[str, Any]:
    return gr.update(placeholder=AXES[axis_name].example if axis_name else "")


class SweepHandlers:
    """The section's handlers over the app's engines, pose cache and cancel flags (`studio`)."""

    def __init__(self, studio: PoseStudio) -> None:
        self.studio = studio
        self.sweep_on_gpu = gpu_task(self.sweep_events, duration=lambda plan, pose: sweep_seconds(plan))

    def run_stream(
        self,
        upload: str | None,
        x_axis: str,
        x_values: str,
        y_axis: str,
        y_values: str,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
        **panel: Any,
    ) -> Iterator[tuple]:
        """Run sweep over the generation panel's values (see `panel_request`): "cell k of N" while denoising
        and the grid as cells finish, then the final grid, the cells, their downloads and a summary (grid,
        cells, files, status). The panel's samples count is not used: a cell is one image."""
        skip = gr.skip()
        axes = (x_axis, x_values, y_axis, y_values)
        updates = self._updates(upload, panel_request(**panel), axes, progress, session_of(request))
        with closing(updates):  # a closed handler closes the GPU function at once
            for update in updates:
                if isinstance(update, SavedSweep):
                    yield update.grid(), update.gallery(), update.files(), update.summary()
                elif isinstance(update, SweepProgress):
                    yield skip, skip, skip, update.describe()
                else:
                    yield update, skip, skip, skip

    def api(
        self,
        image: str,
        progress: gr.Progress = PROGRESS,
        *,
        x_axis: str,
        x_values: str,
        y_axis: str | None = None,
        y_values: str | None = None,
        width: int | None = None,
        height: int | None = None,
        **parameters: Any,
    ) -> Iterator[tuple]:
        """API /sweep: the grid as it fills in, then the grid, the cells captioned with their values, and the
        sweep's record (axes, values, each cell's parameters and seed, `cancelled`). `parameters` are
        GenerationRequest fields by name; the optional ones are keyword defaults, so clients may omit them."""
        base = request_of(width=width, height=height, **parameters)
        skip = gr.skip()
        updates = self._updates(image, base, (x_axis, x_values, y_axis, y_values), progress, session=None)
        with closing(updates):
            for update in updates:
                if isinstance(update, SavedSweep):
                    yield update.grid(), update.gallery(), update.result.to_json()
                elif isinstance(update, Image.Image):
                    yield update, skip, skip

    def arm(self, request: gr.Request | None = None) -> None:
        """Run sweep, before the sweep joins the queue: Cancel sweep can then stop it while it waits."""
        self.studio.cancel_flags.arm(session_of(request), SWEEP_RUN)

    def cancel(self, request: gr.Request | None = None) -> None:
        """The Cancel sweep button: stop this session's sweep at the next step, or before it starts if it
        is still waiting in the queue (not its generation)."""
        self.studio.cancel_flags.cancel(session_of(request), SWEEP_RUN)

    def _updates(
        self,
        upload: str | None,
        base: GenerationRequest,
        axes: tuple[str, str, str, str],
        progress: gr.Progress,
        session: str | None,
    ) -> Iterator[Image.Image | SweepProgress | SavedSweep]:
        """The one sweep core: progress reports, the grid redrawn after each cell, then the SavedSweep.
        Cancel sweep sets the run's flag: the GPU function is closed after its next event (at the next step)
        and the cells received so far make the result."""
        x_axis, x_values, y_axis, y_values = axes
        with user_facing_errors():
            y_axis, y_values = (y_axis, y_values or "") if y_axis else (None, "")  # API clients may send None
            settings = self.studio.settings
            plan = plan_sweep(base, x_axis or "", x_values or "", y_axis, y_values, settings=settings)
            pose = self.studio.prepare(upload).generation_input
            if not self.studio.generation_engine.is_loaded:
                progress(0, desc=LOADING_GENERATION)
            received = SweepResult(plan, [None] * len(plan.cells), [None] * len(plan.cells), cancelled=True)
            result = received  # until the GPU function's own result arrives
            events = self.sweep_on_gpu(plan, pose)
            with self.studio.cancel_flags.run(session, SWEEP_RUN) as flag, closing(events):
                for kind, payload in until_cancelled(events, flag):
                    if kind == "progress":
                        progress(payload.fraction, desc=payload.describe())
                        yield payload
                    elif kind == "cell":
                        received.add(payload)
                        yield render_grid(plan, received.images)
                    else:
                        result = payload
            if result.error:
                gr.Warning(f"{SWEEP_STOPPED_EARLY} {result.error}")
            yield self._save(result)

    def sweep_events(self, plan: SweepPlan, pose: PoseInput) -> Iterator[GpuEvent]:
        """The GPU function of a sweep (on ZeroGPU it runs in a forked worker): ("progress", SweepProgress)
        after each step, ("cell", SweepCellResult) as each cell finishes, then ("result", SweepResult).
        Closing it stops the engine at its next step."""
        engine = self.studio.generation_engine

        def work(report: Report, stop: threading.Event) -> SweepResult:
            return run_sweep(
                engine,
                plan,
                pose,
                progress=lambda update: report("progress", update),
                on_cell=lambda cell: report("cell", cell),
                cancel=stop,
            )

        yield from stream_from_worker(work, "sweep")

    def _save(self, result: SweepResult) -> SavedSweep:
        run_dir = self.studio.new_run_dir("sweep-")
        images = result.save(run_dir)  # grid, cells, conditioning.png, sweep.json
        archive = write_zip(run_dir / ARCHIVE_NAME, sorted(run_dir.iterdir()))
        return SavedSweep(result, images, archive)


def build_sweep_section(
    studio: PoseStudio,
    pose: PosePanel,
    generation: GenerationPanel,
    gpu: dict[str, Any],
    heavy: Callable[[Callable], Callable],
) -> None:
    """The Sweep accordion inside the current Blocks, its events, and /sweep, in the GPU concurrency group
    (`gpu`: the layout's concurrency settings; `heavy`: its wrapper of GPU-group handlers, which serves
    their images as files named uniquely per response)."""
    sweeps = SweepHandlers(studio)
    ui_event = UI_EVENT
    with gr.Accordion("X/Y sweep: compare settings side by side", open=False, elem_id="sweep"):
        gr.Markdown(
            "Every other parameter comes from the generation panel, and every cell uses the same seed unless "
            "Seed is an axis. Each cell is one image (Samples is not used). Values: lists `3, 5.5, 7.5`, "
            "ranges `4-10 (+2)` or `1-0 (-0.25)`, scheduler names; for Prompt S/R the first value is a word "
            "of the prompt and each value replaces it in "
            f"turn. At most {studio.settings.sweep_max_cells} cells."
        )
        with gr.Row():
            x_axis = gr.Dropdown(AXIS_CHOICES, value=DEFAULT_X_AXIS, label="X axis", elem_id="sweep-x-axis")
            x_values = gr.Textbox(
                value=AXES[DEFAULT_X_AXIS].example, label="X values", elem_id="sweep-x-values"
            )
        with gr.Row():
            y_axis = gr.Dropdown(
                [("none", NO_AXIS), *AXIS_CHOICES], value=NO_AXIS, label="Y axis", elem_id="sweep-y-axis"
            )
            y_values = gr.Textbox(label="Y values", elem_id="sweep-y-values")
        with gr.Row():
            run = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
            cancel = gr.Button("Cancel sweep", variant="stop", elem_id="sweep-cancel")
        status = gr.Markdown(elem_id="sweep-status")
        grid = gr.Image(label="Grid", type="pil", format="png", interactive=False, elem_id="sweep-grid")
        cells = gr.Gallery(
            label="Cells", columns=4, height="auto", format="png", interactive=False, elem_id="sweep-cells"
        )
        files = gr.File(
            label="Downloads: everything as a zip, the grid, and each cell (parameters in its PNG metadata)",
            file_count="multiple",
            interactive=False,
            elem_id="sweep-downloads",
        )
    for axis, values in ((x_axis, x_values), (y_axis, y_values)):
        axis.change(_values_placeholder, axis, values, queue=False, **ui_event)
    run.click(sweeps.arm, None, None, queue=False, **ui_event).then(
        heavy(sweeps.run_stream),
        [pose.upload, x_axis, x_values, y_axis, y_values],
        [grid, cells, files, status],
        inputs_kwargs=generation.fields,
        **gpu,
        **ui_event,
    )
    cancel.click(sweeps.cancel, None, None, queue=False, **ui_event)

    with gr.Row(visible=False):  # /sweep's own components; a hidden trigger, so only API clients call it
        trigger = gr.Button()
        axis_inputs = {name: gr.Textbox(label=name) for name in AXIS_API}
        api_outputs = [
            gr.Image(label="grid", format="png"),
            gr.Gallery(label="cells", format="png"),
            gr.JSON(),
        ]
    trigger.click(
        heavy(sweeps.api),
        pose.upload,
        api_outputs,
        inputs_kwargs=generation.api_inputs(SWEEP_API, axis_inputs),
        api_name="sweep",
        **gpu,
    )
