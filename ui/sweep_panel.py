"""The sweep panel: pick an X (and a Y) parameter and their values, run the generation panel's request over
the grid and watch it fill in, send a cell's settings back to the panel; and the /sweep endpoint. Thin
handlers over pipelines.generation.sweep; the generation panel supplies every other parameter.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.generation import PoseInput
from pipelines.generation.sweep import AXES, SweepPlan, SweepProgress, SweepResult, plan_sweep, run_sweep
from ui.base import (
    LOADING_GENERATION,
    PROGRESS,
    UI_EVENT,
    GpuEvent,
    Job,
    Outputs,
    Report,
    by_component,
    error_status,
    session_of,
    stream_from_worker,
)
from ui.base import user_facing_errors as api_errors
from ui.generate_panel import SAMPLER_API, GenerateHandlers, panel_request, request_of
from ui.mcp_tools import as_tool
from ui.studio import PoseStudio
from ui.zerogpu import gpu_task, sweep_seconds

AXIS_CHOICES = [(axis.title, axis.name) for axis in AXES.values()]
NO_AXIS = ""  # the Y dropdown's "none": a one-row sweep
DEFAULT_X_AXIS = "guidance_scale"
ARCHIVE_NAME = "pose-studio-sweep.zip"
SWEEP_RUN = "sweep"  # the kind of run Cancel sweep stops (see ui.state.CancelFlags)
AXIS_API = ("x_axis", "x_values", "y_axis", "y_values")
SWEEP_API = ("prompt", *AXIS_API, "negative_prompt", *SAMPLER_API)  # /sweep's parameters after `image`
NO_CELL_SELECTED = "⚠️ No cell is selected. Click a cell under the grid first, then press this button again."


@dataclass(frozen=True)
class SavedSweep:
    """A finished (or cancelled) sweep and its files on disk."""

    result: SweepResult
    images: list[Path]  # grid.png first, then each finished cell
    archive: Path

    def cells(self) -> list[tuple[str, str]]:
        """The finished cells, each captioned with the values that set it apart."""
        plan = self.result.plan
        done = [cell for cell in plan.cells if self.result.images[cell.index]]
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
        if result.cancelled:
            done = f"{result.done} of {len(plan.cells)} cells done ({seed_text})"
            return f"⏹ Cancelled: {done}; the rest are grey."
        if result.error:
            return (
                f"⚠️ Stopped after {result.done} of {len(plan.cells)} cells ({seed_text}); the rest are grey "
                f"because the next cell failed: {result.error}"
            )
        return f"✅ {shape} cells, {seed_text}."


def _values_placeholder(axis_name: str) -> dict[str, Any]:
    return gr.update(placeholder=AXES[axis_name].example if axis_name else "")


class SweepHandlers:
    """The sweep's handlers over the studio's engines, pose cache and job runner."""

    def __init__(self, studio: PoseStudio) -> None:
        self.studio = studio
        self.sweep_on_gpu = gpu_task(self.sweep_events, duration=lambda plan, pose: sweep_seconds(plan))

    def run(
        self,
        upload: str | None,
        draw_mode: str,
        people: list[int] | None,
        x_axis: str,
        x_values: str,
        y_axis: str,
        y_values: str,
        edited: dict | None = None,
        loaded: dict | None = None,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
        **panel: Any,
    ) -> Iterator[Outputs]:
        """Run sweep over the generation panel's values: "cell k of N" while denoising and the grid as cells
        finish, then the final grid, the cells, their downloads and a summary. The panel's samples count is
        not used: a cell is one image. Cancelled before any cell finished, the previous sweep stays."""
        try:
            base = panel_request(draw_mode=draw_mode, **panel)
            axes = (x_axis, x_values, y_axis, y_values)
            saved = None
            pose = (upload, people, edited, loaded)
            for update in self._updates(pose, base, axes, progress, session_of(request)):
                if isinstance(update, SavedSweep):
                    saved = update
                elif isinstance(update, SweepProgress):
                    yield {"status": update.describe()}
                else:
                    yield {"grid": update}
            if not saved.result.done:  # nothing new to show: the previous sweep stays
                failed = saved.result.error and f"❌ The first cell failed: {saved.result.error}"
                yield {
                    "status": failed or "⏹ Cancelled before any cell finished; the previous sweep is kept."
                }
                return
            yield {
                "grid": saved.grid(),
                "cells": saved.cells(),
                "files": gr.update(value=saved.files(), visible=True),
                "sweep": [path for path, _ in saved.cells()],
                "selected": None,
                "status": saved.summary(),
            }
        except Exception as error:
            yield {"status": error_status(error)}

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
        draw_mode: str = "body-pose",
        **parameters: Any,
    ) -> Iterator[Outputs]:
        """API /sweep: the grid as it fills in, then the grid, the cells captioned with their values, and the
        sweep's record (axes, values, each cell's parameters and seed, `cancelled`). `parameters` are
        GenerationRequest fields by name; the optional ones are keyword defaults, so clients may omit them."""
        with api_errors():
            base = request_of(width=width, height=height, draw_mode=draw_mode, **parameters)
            axes = (x_axis, x_values, y_axis, y_values)
            for update in self._updates((image, None, None, None), base, axes, progress, session=None):
                if isinstance(update, SavedSweep):
                    yield {"grid": update.grid(), "cells": update.cells(), "record": update.result.to_json()}
                elif not isinstance(update, SweepProgress):
                    yield {"grid": update}

    def arm(self, request: gr.Request | None = None) -> None:
        """Run sweep, before the sweep joins the queue: Cancel sweep can then stop it while it waits."""
        self.studio.runner.arm(session_of(request), SWEEP_RUN)

    def cancel(self, request: gr.Request | None = None) -> Outputs:
        """Cancel sweep: stop this session's sweep at its next step, or before it starts if it still waits
        in the queue (not its generation)."""
        if self.studio.runner.cancel(session_of(request), SWEEP_RUN):
            return {"status": "⏹ Cancelling… the sweep stops at its next step; finished cells are kept."}
        return {"status": "No sweep is running, so there is nothing to cancel."}

    @staticmethod
    def select(cells: list[str] | None, event: gr.SelectData) -> Outputs:
        index = event.index
        if not cells or not 0 <= index < len(cells):
            return {"selected": None}
        return {
            "selected": index,
            "status": f"Cell {index + 1} selected: **Send cell to panel** takes its settings.",
        }

    @staticmethod
    def send_to_panel(selected: int | None, cells: list[str] | None) -> Outputs:
        """ "Send cell to panel": every setting of the selected cell, read back from its PNG's parameters."""
        if selected is None or not cells:
            return {"status": NO_CELL_SELECTED}
        return GenerateHandlers.settings_from_png(cells[selected], f"cell {selected + 1}")

    def _updates(
        self,
        pose_inputs: tuple[str | None, list[int] | None, dict | None, dict | None],
        base: Any,
        axes: tuple[str, str, str | None, str | None],
        progress: gr.Progress,
        session: str | None,
    ) -> Iterator[Any]:
        """The one sweep core: progress reports, the grid redrawn after each cell, then the SavedSweep.
        Cancel sweep sets the run's flag: the GPU function is closed after its next event (at the next step)
        and the cells received so far make the result."""
        x_axis, x_values, y_axis, y_values = axes
        y_axis, y_values = (y_axis, y_values or "") if y_axis else (None, "")  # API clients may send None
        plan = plan_sweep(base, x_axis or "", x_values or "", y_axis, y_values, settings=self.studio.settings)
        upload, people, edited, loaded = pose_inputs
        pose = self.studio.current(self.studio.prepare(upload), edited, loaded).generation_input(people)
        if not self.studio.generation_engine.is_loaded:
            progress(0, desc=LOADING_GENERATION)
        received = SweepResult(plan, [None] * len(plan.cells), [None] * len(plan.cells), cancelled=True)
        job = Job()
        events = self.sweep_on_gpu(plan, pose)
        for kind, payload in self.studio.runner.run(events, session, SWEEP_RUN, job):
            if kind == "progress":
                progress(payload.fraction, desc=payload.describe())
                yield payload
            elif kind == "cell":
                received.add(payload)
                yield received.grid()
        yield self._save(job.result or received)  # cancelled: the cells received so far

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
        run_dir = self.studio.runs.new("sweep-")
        images = result.save(run_dir)  # grid, cells, conditioning.png, pose.json, sweep.json
        return SavedSweep(result, images, self.studio.runs.archive(run_dir, ARCHIVE_NAME))


@dataclass
class SweepPanel:
    """The sweep accordion (full width, under the page's two columns) and /sweep."""

    handlers: SweepHandlers
    components: dict[str, Any] = field(default_factory=dict)

    def build(self, max_cells: int) -> None:
        c = self.components
        with gr.Accordion("X/Y sweep: compare settings side by side", open=False, elem_id="sweep"):
            gr.Markdown(
                "Every other parameter comes from the panel above, and every cell uses the same seed unless "
                "Seed is an axis. Each cell is one image (Samples is not used). Values: lists `3, 5.5, 7.5`, "
                "ranges `4-10 (+2)` or `1-0 (-0.25)`, scheduler names; for Prompt S/R the first value is a "
                f"word of the prompt and each value replaces it in turn. At most {max_cells} cells."
            )
            with gr.Row():
                c["x_axis"] = gr.Dropdown(
                    AXIS_CHOICES,
                    value=DEFAULT_X_AXIS,
                    label="X axis",
                    info="Varies across the columns.",
                    elem_id="sweep-x-axis",
                )
                c["x_values"] = gr.Textbox(
                    value=AXES[DEFAULT_X_AXIS].example,
                    label="X values",
                    info="One column per value.",
                    elem_id="sweep-x-values",
                )
            with gr.Row():
                c["y_axis"] = gr.Dropdown(
                    [("none", NO_AXIS), *AXIS_CHOICES],
                    value=NO_AXIS,
                    label="Y axis",
                    info="Optional: varies down the rows.",
                    elem_id="sweep-y-axis",
                )
                c["y_values"] = gr.Textbox(
                    label="Y values", info="One row per value.", elem_id="sweep-y-values"
                )
            with gr.Row():
                c["run"] = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
                c["cancel"] = gr.Button("Cancel sweep", variant="stop", elem_id="sweep-cancel")
            c["status"] = gr.Markdown(elem_id="sweep-status")
            with gr.Row():
                with gr.Column(scale=3):
                    c["grid"] = gr.Image(
                        label="Grid (the pose in its corner)",
                        type="pil",
                        format="png",
                        interactive=False,
                        buttons=["download", "fullscreen"],
                        elem_id="sweep-grid",
                    )
                with gr.Column(scale=2):
                    c["cells"] = gr.Gallery(
                        label="Cells at full size",
                        columns=3,
                        height="auto",
                        object_fit="contain",
                        format="png",
                        interactive=False,
                        elem_id="sweep-cells",
                    )
                    c["send_to_panel"] = gr.Button("Send cell to panel", size="sm", elem_id="sweep-send")
                    c["files"] = gr.File(
                        label="Downloads: a zip of everything, the grid, and each cell (settings in its PNG)",
                        file_count="multiple",
                        interactive=False,
                        visible=False,
                        elem_id="sweep-downloads",
                    )
            c["sweep"] = gr.State()  # the finished cells' files, in gallery order
            c["selected"] = gr.State()

    def wire(self, pose: Any, generation: Any, heavy: Callable[[Callable], Callable], gpu: dict) -> None:
        c, handlers = self.components, self.handlers
        for axis, values in ((c["x_axis"], c["x_values"]), (c["y_axis"], c["y_values"])):
            axis.change(_values_placeholder, axis, values, queue=False, **UI_EVENT)
        names = ("grid", "cells", "files", "sweep", "selected", "status")
        outputs = {name: c[name] for name in names}
        inputs = {
            "upload": pose["upload"],
            "draw_mode": pose["draw_mode"],
            "people": pose["people"],
            "edited": pose["editor"],
            "loaded": pose["loaded"],
            **{name: c[name] for name in AXIS_API},
            **generation.fields,
        }
        c["run"].click(handlers.arm, None, None, queue=False, **UI_EVENT).then(
            heavy(by_component(handlers.run, outputs)),
            None,
            list(outputs.values()),
            inputs_kwargs=inputs,
            show_progress_on=c["grid"],
            **gpu,
            **UI_EVENT,
        )
        status = {"status": c["status"]}
        c["cancel"].click(by_component(handlers.cancel, status), None, c["status"], queue=False, **UI_EVENT)
        chosen_cell = {"selected": c["selected"], "status": c["status"]}
        c["cells"].select(
            by_component(handlers.select, chosen_cell),
            c["sweep"],
            list(chosen_cell.values()),
            queue=False,
            **UI_EVENT,
        )
        filled = {**generation.outputs(pose["draw_mode"]), "status": c["status"]}
        fillers = {name: filled[name] for name in (*generation.fields, "draw_mode", "status")}
        c["send_to_panel"].click(
            by_component(handlers.send_to_panel, fillers),
            [c["selected"], c["sweep"]],
            list(fillers.values()),
            queue=False,
            **UI_EVENT,
        )

    def api(self, pose: Any, generation: Any, heavy: Callable[[Callable], Callable], gpu: dict) -> None:
        with gr.Row(visible=False):  # /sweep's own components; a hidden trigger, so only API clients call it
            trigger = gr.Button()
            axis_inputs = {name: gr.Textbox(label=name) for name in AXIS_API}
            outputs = {
                "grid": gr.Image(label="grid", format="png"),
                "cells": gr.Gallery(label="cells", format="png"),
                "record": gr.JSON(),
            }
        available = {
            **generation.fields,
            **generation["api_size"],
            **axis_inputs,
            "draw_mode": pose["draw_mode"],
        }
        trigger.click(
            as_tool("sweep", heavy(by_component(self.handlers.api, outputs))),
            pose["upload"],
            list(outputs.values()),
            inputs_kwargs={name: available[name] for name in SWEEP_API},
            api_name="sweep",
            **gpu,
        )
