"""The generation panel: the prompt and every parameter, Generate and Cancel, the status line, the samples and
their downloads, "Use this seed" and "Send to panel"; and the /generate endpoint.

`GenerateHandlers` is the behaviour (tests call it directly); `GeneratePanel` owns the components and wires
them. The denoising is the GPU function `generation_events`: plain inputs, plain events out, so that on
ZeroGPU it runs in a forked worker while the cache, cancel flags and files stay here (see ui/zerogpu.py).
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

import gradio as gr

from pipelines.errors import ValidationError
from pipelines.generation.metadata import RECORD_KEYS, parse_infotext, read_png_infotext
from pipelines.generation.request import REQUEST_BOUNDS, GenerationRequest, GenerationResult, PoseInput
from pipelines.generation.schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from pipelines.pose import DrawMode
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
from ui.components import raw_values
from ui.mcp_tools import as_tool
from ui.pose_panel import DRAW_MODE_LABELS, is_mask, pose_size_bucket
from ui.studio import PoseStudio
from ui.zerogpu import generation_seconds, gpu_task

GENERATION_RUN = "generation"  # the kind of run the Cancel button stops (the sweep has its own)
FLOAT_FIELDS = {name for name, kind in get_type_hints(GenerationRequest).items() if kind is float}
# The public API parameters after `image`, in the hosted APIs' order; gradio_client users call them by name.
SAMPLER_API = (
    "scheduler",
    "num_inference_steps",
    "guidance_scale",
    "controlnet_scale",
    "seed",
    "width",
    "height",
    "draft",
    "draw_mode",
)
GENERATE_API = ("prompt", "negative_prompt", "samples", *SAMPLER_API)
DEFAULT_SIZE = 1024
SLIDER_STEPS = {
    "num_inference_steps": 1,
    "guidance_scale": 0.5,
    "controlnet_scale": 0.05,
    "control_guidance_start": 0.05,
    "control_guidance_end": 0.05,
    "width": 64,
    "height": 64,
    "samples": 1,
}
NO_SELECTION = "Click a sample in the gallery first, then press this button again."
MASK_NOTICE = (
    "**{mode}** is a mask for inpainting, not a pose: the ControlNet cannot follow it. Generate uses a pose "
    "mode; switch to one here, or pick Body, Face or Hands above."
)
CANCELLING = "⏹ Cancelling… the run stops at its next step."
NOTHING_TO_CANCEL = "Nothing is running, so there is nothing to cancel."
# The panel's values a PNG's parameters fill in, beside the request fields themselves.
PANEL_TOGGLES = {"randomize_seed": False}


def panel_request(randomize_seed: bool, auto_size: bool, **fields: Any) -> GenerationRequest:
    """The panel's values (keyed by GenerationRequest field) as a request: its two toggles stand for seed -1
    and no size. Generate and the sweep both read the panel through it."""
    if randomize_seed:
        fields["seed"] = -1
    if auto_size:
        fields["width"] = fields["height"] = None
    return request_of(**fields)


def request_of(**fields: Any) -> GenerationRequest:
    """A request from raw component values (ui.components), which the engine validates. JSON (the browser's)
    sends a whole float such as 1.0 as 1, which diffusers refuses for its scales, so a number in a float
    field is made a float; anything else (text, true/false) is left for the engine to refuse."""
    return GenerationRequest(
        **{name: _as_float(value) if name in FLOAT_FIELDS else value for name, value in fields.items()}
    )


def _as_float(value: Any) -> Any:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value


def seeds_text(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


@dataclass(frozen=True)
class SavedRun:
    """A finished generation and its files: PNGs carrying their parameters, and one zip of everything."""

    result: GenerationResult
    conditioning: Path
    samples: list[Path]
    archive: Path

    def gallery(self) -> list[tuple[str, str]]:
        """The conditioning first, then each sample captioned with its number and seed."""
        width, height = self.result.conditioning.size
        return [(str(self.conditioning), f"conditioning {width}×{height}"), *self.sample_items()]

    def sample_items(self) -> list[tuple[str, str]]:
        return [
            (str(path), f"#{index + 1} · seed {seed}")
            for index, (path, seed) in enumerate(zip(self.samples, self.result.seeds, strict=True))
        ]

    def api_items(self) -> list[tuple[str, str]]:
        """/generate's samples, each captioned with its seed, as the hosted API's clients read them."""
        return [
            (str(path), f"seed {seed}") for path, seed in zip(self.samples, self.result.seeds, strict=True)
        ]

    def state(self) -> dict[str, Any]:
        """What the page keeps of the run for "Use this seed" and "Send to panel"."""
        return {"seeds": self.result.seeds, "samples": [str(path) for path in self.samples]}

    def summary(self) -> str:
        parameters, timings = self.result.parameters, self.result.timings
        mode = DRAW_MODE_LABELS[DrawMode(parameters["draw_mode"])].lower()
        return (
            f"✅ {len(self.samples)} sample(s) at {parameters['width']}×{parameters['height']}, {mode}, "
            f"{parameters['scheduler']}, {parameters['num_inference_steps']} steps, in "
            f"{timings['total']:.1f} s. Seeds: {seeds_text(self.result.seeds)}."
        )


class GenerateHandlers:
    """Generate, Cancel, the gallery's selection, the seed and panel fillers, and /generate."""

    def __init__(self, studio: PoseStudio) -> None:
        self.studio = studio
        # On ZeroGPU a GPU function, made once, before the app launches (ZeroGPU registers them then).
        self.generate_on_gpu = gpu_task(
            self.generation_events, duration=lambda request, pose: generation_seconds(request)
        )

    def arm(self, request: gr.Request | None = None) -> None:
        """Before a run joins the queue: Cancel can then stop it while it waits."""
        self.studio.runner.arm(session_of(request), GENERATION_RUN)

    def cancel(self, request: gr.Request | None = None) -> Outputs:
        """The Cancel button: stop this session's generation at its next step (not its sweep)."""
        if self.studio.runner.cancel(session_of(request), GENERATION_RUN):
            return {"status": CANCELLING}
        return {"status": NOTHING_TO_CANCEL}

    def run(
        self,
        upload: str | None,
        draw_mode: str,
        people: list[int] | None,
        finished: list,
        edited: dict | None = None,
        loaded: dict | None = None,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
        **panel: Any,
    ) -> Iterator[Outputs]:
        """Generate: live previews in the gallery, then the conditioning and the samples, their downloads, the
        seed used, and a summary in the status line. A cancelled or failed run says so there and shows the
        last finished gallery (`finished`) again, with its downloads untouched. The pose is the editor's
        (`edited`) once it differs from what was loaded into it (`loaded`)."""
        session = session_of(request)
        step = None
        job = Job()
        try:
            generation_request = panel_request(draw_mode=draw_mode, **panel)
            pose = (upload, people, edited, loaded)
            for kind, payload in self._events(pose, generation_request, progress, session, job):
                if kind == "progress":  # nothing to show: a point where Gradio may close this handler
                    step = payload
                    yield {}
                else:
                    yield {"gallery": payload}
            if not job.finished:
                when = "before it started" if step is None else "at step {} of {}".format(*step)
                yield {"gallery": finished, "status": f"⏹ Cancelled {when}; the previous results are kept."}
                return
            saved = self._save(job.result)
            notices = self.studio.new_notices(self.studio.generation_engine.notices, session)
            gallery = saved.gallery()
            yield {
                "gallery": gallery,
                "finished": gallery,
                "downloads": gr.update(value=[str(saved.archive), *map(str, saved.samples)], visible=True),
                "seed": saved.result.seeds[0],
                "run": saved.state(),
                "selected": None,
                "status": " ".join([saved.summary(), *(f"⚠️ {notice}" for notice in notices)]),
            }
        except Exception as error:
            yield {"gallery": finished, "status": error_status(error)}

    def api(
        self,
        image: str,
        progress: gr.Progress = PROGRESS,
        *,
        width: int | None = None,
        height: int | None = None,
        draw_mode: str = DrawMode.BODY_POSE.value,
        **parameters: Any,
    ) -> Iterator[Outputs]:
        """API /generate: previews while denoising, then the samples (captioned with their seeds) and the
        seeds. `parameters` are GenerationRequest fields by name (seed -1 picks a random one); width, height
        and draw_mode are keyword defaults so API clients may leave them out."""
        with api_errors():
            generation_request = request_of(width=width, height=height, draw_mode=draw_mode, **parameters)
            job = Job()
            for kind, payload in self._events(
                (image, None, None, None), generation_request, progress, None, job
            ):
                # Every step yields: a client's cancel closes this handler there, closing the GPU function.
                yield {"images": payload} if kind == "preview" else {}
            if job.finished:
                saved = self._save(job.result)
                yield {"images": saved.api_items(), "seeds": saved.result.seeds}

    def _events(
        self,
        pose_inputs: tuple[str | None, list[int] | None, dict | None, dict | None],
        generation_request: GenerationRequest,
        progress: gr.Progress,
        session: str | None,
        job: Job,
    ) -> Iterator[GpuEvent]:
        """The one generation core: ("progress", (step, total)) and ("preview", images) while the GPU function
        runs, its result in `job`. Checks the request before reading the upload. `pose_inputs`: the upload,
        the ticked people, the editor's value and what was loaded into it."""
        upload, people, edited, loaded = pose_inputs
        generation_request.validate()
        self._check_samples_cap(generation_request.samples)
        pose = self.studio.current(self.studio.prepare(upload), edited, loaded).generation_input(people)
        if not self.studio.generation_engine.is_loaded:
            progress(0, desc=LOADING_GENERATION)
        events = self.generate_on_gpu(generation_request, pose)
        for kind, payload in self.studio.runner.run(events, session, GENERATION_RUN, job):
            if kind == "progress":
                progress(payload, desc="Denoising", unit="steps")
            yield kind, payload

    def generation_events(self, request: GenerationRequest, pose: PoseInput) -> Iterator[GpuEvent]:
        """The GPU function of a generation (on ZeroGPU it runs in a forked worker): ("progress", (step,
        total)) after each step, ("preview", images) every few steps, then ("result", GenerationResult).
        Closing it stops the engine at its next step."""
        engine = self.studio.generation_engine

        def work(report: Report, stop: threading.Event) -> GenerationResult:
            return engine.generate(
                request,
                pose,
                progress=lambda step, total: report("progress", (step, total)),
                preview=lambda images, step, total: report("preview", list(images)),
                cancel=stop,
            )

        yield from stream_from_worker(work, "generate")

    def _check_samples_cap(self, samples: int) -> None:
        """The server's own cap on samples (`max_samples`), below the engine's range; the slider shows it."""
        cap = min(self.studio.settings.max_samples, int(REQUEST_BOUNDS["samples"].high))
        if samples > cap:
            raise ValidationError(f"samples must be an integer between 1 and {cap} (got {samples!r})")

    def _save(self, result: GenerationResult) -> SavedRun:
        run_dir = self.studio.runs.new()
        samples = result.save(run_dir)  # the samples, conditioning.png, pose.json and result.json
        archive = self.studio.runs.archive(run_dir, f"pose-studio-seed-{result.seeds[0]}.zip")
        return SavedRun(result, run_dir / "conditioning.png", samples, archive)

    # ----- the gallery and the panel ------------------------------------------------------------------

    @staticmethod
    def select(run: dict | None, event: gr.SelectData) -> Outputs:
        """Gallery selection: which sample (the conditioning comes first and is no sample)."""
        index = event.index - 1
        seeds = (run or {}).get("seeds", [])
        if not 0 <= index < len(seeds):
            return {"selected": None, "status": "The conditioning is selected: click a sample to pick it."}
        return {
            "selected": index,
            "status": f"Sample #{index + 1} selected (seed {seeds[index]}): **Use this seed** keeps the "
            "rest of the panel, **Send to panel** takes all of its settings.",
        }

    @staticmethod
    def use_seed(selected: int | None, run: dict | None) -> Outputs:
        """ "Use this seed": the selected sample's seed in the seed field, and no more random seeds."""
        if selected is None or not run:
            return {"status": f"⚠️ No sample is selected. {NO_SELECTION}"}
        seed = run["seeds"][selected]
        return {
            "seed": seed,
            "randomize_seed": False,
            "status": f"Seed {seed} (sample #{selected + 1}) is set.",
        }

    def send_to_panel(self, selected: int | None, run: dict | None) -> Outputs:
        """ "Send to panel": every setting of the selected sample, read back from its PNG's parameters."""
        if selected is None or not run:
            return {"status": f"⚠️ No sample is selected. {NO_SELECTION}"}
        return self.settings_from_png(run["samples"][selected], f"sample #{selected + 1}")

    @staticmethod
    def settings_from_png(path: str | None, what: str = "") -> Outputs:
        """A PNG made by Pose Studio (or AUTOMATIC1111): its parameters text into the panel; the same reading
        as the CLI's --from-png. What could not be used is said in the status line."""
        if not path:
            return {}
        try:
            parsed = parse_infotext(read_png_infotext(path))
        except Exception as error:
            return {"status": error_status(error)}
        fields = dict(parsed.fields)
        outputs: Outputs = {name: value for name, value in fields.items() if name != "samples"}
        outputs |= PANEL_TOGGLES
        if "width" in fields:
            outputs["auto_size"] = False
            outputs["width"] = gr.update(value=fields["width"], interactive=True)
            outputs["height"] = gr.update(value=fields["height"], interactive=True)
        notes = [*parsed.notes, *parsed.unreadable.values()]
        unused = [key for key in parsed.ignored if key not in RECORD_KEYS]
        if unused:
            notes.append(f"not used: {', '.join(unused)}")
        source = what or Path(path).name
        seed = f", seed {fields['seed']}" if "seed" in fields else ""
        outputs["status"] = f"✅ Settings from {source}{seed} are in the panel." + "".join(
            f" ⚠️ {note}." for note in notes
        )
        return outputs

    @staticmethod
    def sync_size(auto_size: bool, pose_size: list[int] | None, width: int, height: int) -> Outputs:
        """Width and Height show the size a run will use: disabled, at the pose's SDXL bucket, while the size
        comes from the pose."""
        if not auto_size:
            return {"width": gr.update(interactive=True), "height": gr.update(interactive=True)}
        bucket_width, bucket_height = pose_size_bucket(pose_size, width, height)
        return {
            "width": gr.update(value=bucket_width, interactive=False),
            "height": gr.update(value=bucket_height, interactive=False),
        }

    @staticmethod
    def mask_notice(draw_mode: str) -> Outputs:
        """While a mask mode is picked, Generate's row says so and offers a pose mode."""
        if not is_mask(draw_mode):
            return {"mask_row": gr.update(visible=False)}
        label = DRAW_MODE_LABELS[DrawMode(draw_mode)]
        return {"mask_row": gr.update(visible=True), "mask_text": MASK_NOTICE.format(mode=label)}


def _slider(
    name: str, label: str, value: float, info: str, maximum: float | None = None, **kwargs
) -> gr.Slider:
    """A slider over the engine's range for `name`, optionally capped lower by a setting. It hands on the raw
    value (ui.components), which the engine checks: a float for an integer field is refused, not rounded.
    Integer fields get precision 0, so the API docs call them integers."""
    bounds = REQUEST_BOUNDS[name]
    high = bounds.high if maximum is None else min(bounds.high, maximum)
    precision = 0 if bounds.integer else None
    return raw_values(
        gr.Slider(
            bounds.low,
            high,
            value=value,
            step=SLIDER_STEPS[name],
            precision=precision,
            label=label,
            info=info,
            **kwargs,
        )
    )


@dataclass
class GeneratePanel:
    """The controls, Generate and the status line (left column, `controls()`), the results (right column,
    `results()`); `fields` are the values a request is made of, keyed by the handlers' parameter names."""

    handlers: GenerateHandlers
    components: dict[str, Any] = field(default_factory=dict)
    fields: dict[str, gr.components.Component] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.components[name]

    def prompt(self) -> None:
        self.fields["prompt"] = gr.Textbox(
            label="Prompt",
            lines=1,  # Gradio submits on Enter only in a one-line box (it still grows to max_lines)
            max_lines=6,
            placeholder="a dancer on a stage, studio lighting",
            info="What the image shows. Enter runs Generate; Shift+Enter starts a new line.",
            elem_id="prompt",
        )

    def buttons(self) -> None:
        c = self.components
        with gr.Row():
            c["generate"] = gr.Button("Generate", variant="primary", scale=3, elem_id="generate")
            c["cancel"] = gr.Button("Cancel", variant="stop", scale=1, elem_id="cancel")
        with gr.Row(visible=False, elem_id="mask-notice") as c["mask_row"]:
            c["mask_text"] = gr.Markdown()
            c["switch_mode"] = gr.Button("Use Full pose", size="sm", scale=0, elem_id="switch-mode")
        c["status"] = gr.Markdown(
            "Pick a pose preset or upload a photo, write a prompt, then Generate.", elem_id="status"
        )

    def controls(self, max_samples: int) -> None:
        defaults = GenerationRequest(prompt="")
        f = self.fields
        f["negative_prompt"] = gr.Textbox(
            label="Negative prompt",
            value="blurry, low quality, deformed hands",
            info="What to keep out of the image.",
        )
        with gr.Row():
            f["samples"] = _slider(
                "samples",
                "Samples",
                defaults.samples,
                "Images per run.",
                maximum=max_samples,
                elem_id="samples",
            )
            f["scheduler"] = gr.Dropdown(
                choices=list(SCHEDULERS),
                value=DEFAULT_SCHEDULER,
                label="Scheduler",
                info="The sampler; A1111 names.",
            )
        f["num_inference_steps"] = _slider(
            "num_inference_steps",
            "Steps",
            defaults.num_inference_steps,
            "More: finer detail, slower.",
            elem_id="steps",
        )
        f["guidance_scale"] = _slider(
            "guidance_scale", "Guidance scale", defaults.guidance_scale, "How closely to follow the prompt."
        )
        f["controlnet_scale"] = _slider(
            "controlnet_scale",
            "ControlNet scale",
            defaults.controlnet_scale,
            "How closely to follow the pose.",
        )
        with gr.Row(equal_height=True):
            f["seed"] = raw_values(
                gr.Number(
                    label="Seed",
                    value=0,
                    precision=0,
                    minimum=-1,
                    info="Sample k uses seed + k.",
                    min_width=200,
                    elem_id="seed",
                )
            )
            f["randomize_seed"] = gr.Checkbox(
                label="Randomise seed", value=True, info="A new seed every run.", elem_id="randomize-seed"
            )
        f["draft"] = gr.Checkbox(
            label="Draft",
            value=defaults.draft,
            info="A 4-step look (SDXL-Lightning) while you tune; untick for the final image.",
            elem_id="draft",
        )
        with gr.Accordion("Size and ControlNet timing", open=False, elem_id="advanced"):
            f["auto_size"] = gr.Checkbox(
                label="Size from the pose",
                value=True,
                info="The SDXL size nearest the pose's aspect ratio; untick to set your own.",
                elem_id="auto-size",
            )
            with gr.Row():
                f["width"] = _slider(
                    "width",
                    "Width",
                    DEFAULT_SIZE,
                    "Pixels; a multiple of 8.",
                    interactive=False,
                    elem_id="width",
                )
                f["height"] = _slider(
                    "height",
                    "Height",
                    DEFAULT_SIZE,
                    "Pixels; a multiple of 8.",
                    interactive=False,
                    elem_id="height",
                )
            with gr.Row():
                f["control_guidance_start"] = _slider(
                    "control_guidance_start",
                    "Control guidance start",
                    defaults.control_guidance_start,
                    "Fraction of the steps before the pose starts guiding.",
                    elem_id="guidance-start",
                )
                f["control_guidance_end"] = _slider(
                    "control_guidance_end",
                    "Control guidance end",
                    defaults.control_guidance_end,
                    "Fraction of the steps after which the pose stops guiding.",
                    elem_id="guidance-end",
                )
            f["thick_lines"] = gr.Checkbox(
                label="Thick lines",
                value=defaults.thick_lines,
                info="Strokes as wide as xinsir's ControlNet was trained on at this size.",
                elem_id="thick-lines",
            )
        self.components["settings_png"] = gr.File(
            label="Settings from a PNG: drop an image made by Pose Studio to fill in this panel",
            file_types=[".png"],
            type="filepath",
            height=90,
            elem_id="settings-png",
        )
        with gr.Row(visible=False):
            self.components["api_size"] = {
                name: raw_values(gr.Number(label=name, precision=0)) for name in ("width", "height")
            }

    def results(self) -> None:
        c = self.components
        c["gallery"] = gr.Gallery(
            label="The conditioning, then the samples",
            columns=2,
            height="auto",
            object_fit="contain",
            format="png",
            buttons=["download", "download_all", "fullscreen"],
            interactive=False,
            elem_id="gallery",
        )
        with gr.Row():
            c["use_seed"] = gr.Button("Use this seed", size="sm", elem_id="use-seed")
            c["send_to_panel"] = gr.Button("Send to panel", size="sm", elem_id="send-to-panel")
        c["downloads"] = gr.File(
            label="Downloads: everything as a zip (with pose.json), and each PNG (settings in its metadata)",
            file_count="multiple",
            interactive=False,
            visible=False,
            elem_id="downloads",
        )
        c["run"] = gr.State()  # the last finished run's seeds and sample files
        c["selected"] = gr.State()  # the selected sample's index
        c["finished"] = gr.State([])  # the last finished run's gallery, shown again after a cancel or error

    def outputs(self, pose_draw_mode: gr.components.Component) -> dict[str, Any]:
        """Every output a handler may name: the panel's components, its fields, and the pose's draw mode."""
        c = self.components
        named = {name: c[name] for name in ("gallery", "finished", "downloads", "run", "selected", "status")}
        return {
            **named,
            **self.fields,
            "draw_mode": pose_draw_mode,
            "mask_row": c["mask_row"],
            "mask_text": c["mask_text"],
        }

    def wire(self, pose: Any, heavy: Callable[[Callable], Callable], gpu: dict) -> None:
        """Generate (button and Enter), Cancel, the gallery, the seed and panel fillers, the size fields and
        the mask notice. `pose` is the pose panel (its upload, draw mode, people and pose size)."""
        c, handlers = self.components, self.handlers
        outputs = self.outputs(pose["draw_mode"])

        def keyed(handler: Callable, names: tuple[str, ...]) -> dict:
            wanted = {name: outputs[name] for name in names}
            return {"fn": by_component(handler, wanted), "outputs": list(wanted.values())}

        run_outputs = ("gallery", "finished", "downloads", "seed", "run", "selected", "status")
        inputs = {
            "upload": pose["upload"],
            "draw_mode": pose["draw_mode"],
            "people": pose["people"],
            "finished": c["finished"],
            "edited": pose["editor"],
            "loaded": pose["loaded"],
            **self.fields,
        }
        run = keyed(handlers.run, run_outputs)
        for trigger in (c["generate"].click, self.fields["prompt"].submit):
            trigger(handlers.arm, None, None, queue=False, **UI_EVENT).then(
                heavy(run["fn"]),
                None,
                run["outputs"],
                inputs_kwargs=inputs,
                show_progress_on=c["gallery"],
                **gpu,
                **UI_EVENT,
            )
        c["cancel"].click(**keyed(handlers.cancel, ("status",)), queue=False, **UI_EVENT)
        c["gallery"].select(
            **keyed(handlers.select, ("selected", "status")), inputs=c["run"], queue=False, **UI_EVENT
        )
        fillers = (*self.fields, "draw_mode", "status")
        c["use_seed"].click(
            **keyed(handlers.use_seed, ("seed", "randomize_seed", "status")),
            inputs=[c["selected"], c["run"]],
            queue=False,
            **UI_EVENT,
        )
        c["send_to_panel"].click(
            **keyed(handlers.send_to_panel, fillers),
            inputs=[c["selected"], c["run"]],
            queue=False,
            **UI_EVENT,
        )
        c["settings_png"].upload(
            **keyed(handlers.settings_from_png, fillers), inputs=c["settings_png"], queue=False, **UI_EVENT
        )
        size = [self.fields["auto_size"], pose["pose_size"], self.fields["width"], self.fields["height"]]
        for trigger in (self.fields["auto_size"].change, pose["pose_size"].change):
            trigger(**keyed(handlers.sync_size, ("width", "height")), inputs=size, queue=False, **UI_EVENT)
        pose["draw_mode"].change(
            **keyed(handlers.mask_notice, ("mask_row", "mask_text")),
            inputs=pose["draw_mode"],
            queue=False,
            **UI_EVENT,
        )
        c["switch_mode"].click(
            lambda: DrawMode.FULL_POSE.value, None, pose["draw_mode"], queue=False, **UI_EVENT
        )

    def api(self, pose: Any, heavy: Callable[[Callable], Callable], gpu: dict) -> None:
        """/generate: the hosted API's signature (plus optional width, height and draw mode) over the page's
        core; its outputs in a hidden row, a hidden trigger, so only API clients call it."""
        with gr.Row(visible=False):
            trigger = gr.Button()
            outputs = {"images": gr.Gallery(label="images", format="png"), "seeds": gr.JSON(label="seeds")}
        available = {**self.fields, **self.components["api_size"], "draw_mode": pose["draw_mode"]}
        trigger.click(
            as_tool("generate", heavy(by_component(self.handlers.api, outputs))),
            pose["upload"],
            list(outputs.values()),
            inputs_kwargs={name: available[name] for name in GENERATE_API},
            api_name="generate",
            **gpu,
        )
