"""The one-page Blocks layout: pose on the left, generation on the right, the gallery below; wiring only.

All GPU and heavy work (detection on upload and on a draw-mode change that misses the cache, generation, the
/dwpose, /generate and /sweep endpoints, example caching) shares one concurrency group, so one queue orders it
and `concurrency_limit` from the settings bounds it. Only drawing a cached pose runs outside it. On ZeroGPU
only the denoising inside the handlers asks for a GPU (see ui/zerogpu.py); nothing is wrapped here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from pipelines.generation import DEFAULT_SCHEDULER, SCHEDULERS, GenerationRequest
from pipelines.generation.request import REQUEST_BOUNDS
from pipelines.pose import DrawMode
from pipelines.pose.models import CPU, CUDA, expected_providers, requested_providers
from ui.components import raw_values
from ui.handlers import (
    DRAW_MODE_LABELS,
    GENERATE_API,
    PoseStudio,
    restore_gallery,
    select_sample,
    use_seed,
)
from ui.sweep import build_sweep_section

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
GPU_GROUP = "gpu"
RENDER_GROUP = "render"  # drawing a cached pose: CPU only, never waits behind a generation, never detects

STAND_IN_BANNER = (
    "⚠️ **Tiny preset:** the pose and image models are small *random* stand-ins, so detections and samples "
    "are noise. Start with `--preset sdxl` for DWPose and SDXL."
)
CSS = """
#stand-in-banner { background: #fff4e5; border: 1px solid #f0b35b; border-radius: 8px; padding: 4px 12px; }
#pose-info p { margin: 0; }
"""
THEME = gr.themes.Soft()

# (file under assets/poses, prompt) for the examples; their results are cached lazily, on first use.
EXAMPLES = (
    ("standing.json", "a knight in silver armour standing in a castle courtyard, golden hour"),
    ("t-pose.json", "an astronaut in a white spacesuit on the moon, earth in the sky"),
    ("arms-raised.json", "a dancer celebrating on a festival stage, confetti, stage lights"),
    ("walking.json", "a woman in a red coat walking down a snowy street at night"),
    ("sitting.json", "an old fisherman sitting on a wooden pier, morning fog"),
    ("hands-on-hips.json", "a superhero in a blue suit on a rooftop, city skyline"),
)

# Slider steps of the generation controls; their ranges are the engine's own REQUEST_BOUNDS.
SLIDER_STEPS = {
    "num_inference_steps": 1,
    "guidance_scale": 0.5,
    "controlnet_scale": 0.05,
    "control_guidance_end": 0.05,
    "width": 64,
    "height": 64,
    "samples": 1,
}
DEFAULT_SIZE = 1024
# The page's own events: left out of the API docs and of what the client libraries may call. (Gradio still
# serves them to raw HTTP, as the page needs them; ui.sessions keeps each to its own session.)
UI_EVENT = {"api_visibility": "private"}


PROVIDER_NAMES = {CUDA: "CUDA", CPU: "CPU"}
POSE_GPU_FALLBACK = (
    "⚠️ DWPose was asked to run on the GPU but runs on the CPU: this onnxruntime has no working CUDA "
    "provider. Install `onnxruntime-gpu` instead of `onnxruntime` (README, *GPU machine*)."
)


def runtime_line(studio: PoseStudio) -> str:
    """Where each model runs, e.g. "DWPose: CUDA · SDXL: cuda fp16": the sessions' providers once DWPose has
    run, before that the providers this onnxruntime will give it; with a warning when a GPU was asked for
    DWPose and it runs on the CPU. Read on every page load."""
    from pipelines.generation.engine import DTYPES  # torch: imported once the page is up

    settings, engine = studio.settings, studio.generation_engine
    loaded = studio.pose_estimator.loaded_providers.values()
    used = {providers[0] for providers in loaded} or {expected_providers(settings.pose_device)[0]}
    dtype = {value: name for name, value in DTYPES.items()}[engine.dtype]
    sdxl = "SDXL (tiny stand-in)" if engine.is_stand_in else "SDXL"
    pose = " + ".join(sorted(PROVIDER_NAMES.get(provider, provider) for provider in used))
    line = f"Runs on: DWPose: {pose} · {sdxl}: {engine.device.type} {dtype}"
    if CUDA in requested_providers(settings.pose_device) and CUDA not in used:
        line += f"\n\n{POSE_GPU_FALLBACK}"
    return line


def _slider(name: str, label: str, value: float, maximum: float | None = None, **kwargs) -> gr.Slider:
    """A slider over the engine's range for `name`, optionally capped lower by a setting. It hands on the
    raw value (ui.components), which the engine checks: a float for an integer field is refused, not
    rounded. Integer fields get precision 0, so the API docs call them integers."""
    bounds = REQUEST_BOUNDS[name]
    high = bounds.high if maximum is None else min(bounds.high, maximum)
    precision = 0 if bounds.integer else None
    return raw_values(
        gr.Slider(
            bounds.low, high, value=value, step=SLIDER_STEPS[name], precision=precision, label=label, **kwargs
        )
    )


@dataclass
class PosePanel:
    upload: gr.File
    draw_mode: gr.Radio
    info: gr.Markdown
    preview: gr.ImageSlider
    pose_json: gr.JSON

    @property
    def outputs(self) -> list:
        return [self.preview, self.pose_json, self.info]


@dataclass
class GenerationPanel:
    """The generation controls. `fields` is the one list of the panel's values, in the panel's order, keyed by
    the handlers' parameter names: GenerationRequest fields, plus the randomize_seed and auto_size toggles."""

    fields: dict[str, gr.Component]
    api_size: dict[str, gr.Number]  # hidden, empty by default: the API's optional width and height
    generate: gr.Button
    cancel: gr.Button

    def api_inputs(self, names: Sequence[str], own: dict[str, gr.Component]) -> dict[str, gr.Component]:
        """An endpoint's `inputs_kwargs`: its public parameter `names`, in order, from its `own` hidden
        components, the optional size, or else the panel."""
        available = self.fields | self.api_size | own
        return {name: available[name] for name in names}


@dataclass
class OutputPanel:
    status: gr.Markdown
    gallery: gr.Gallery
    downloads: gr.File
    use_seed: gr.Button
    seeds: gr.State  # seeds of the samples shown, in gallery order after the conditioning
    selected_seed: gr.State
    finished: gr.State  # the last finished run's gallery, shown again when a run is cancelled or fails


def _pose_panel() -> PosePanel:
    upload = gr.File(
        label="Photo, pose JSON or OpenPose skeleton image",
        file_types=["image", ".json"],
        type="filepath",
        elem_id="upload",
    )
    draw_mode = gr.Radio(
        choices=[(label, mode.value) for mode, label in DRAW_MODE_LABELS.items()],
        value=DrawMode.BODY_POSE.value,
        label="Draw mode",
        elem_id="draw-mode",
    )
    info = gr.Markdown(elem_id="pose-info")
    preview = gr.ImageSlider(
        label="Pose preview: photo with the pose ◀ ▶ the drawn mode",
        type="numpy",
        format="png",
        interactive=False,
        elem_id="pose-preview",
    )
    with gr.Accordion("OpenPose JSON", open=False):
        pose_json = gr.JSON(show_label=False, elem_id="pose-json")
    return PosePanel(upload, draw_mode, info, preview, pose_json)


def _generation_panel(max_samples: int) -> GenerationPanel:
    defaults = GenerationRequest(prompt="")
    fields: dict[str, gr.Component] = {}
    fields["prompt"] = gr.Textbox(
        label="Prompt", lines=2, placeholder="a dancer on a stage, studio lighting", elem_id="prompt"
    )
    fields["negative_prompt"] = gr.Textbox(
        label="Negative prompt", value="blurry, low quality, deformed hands"
    )
    with gr.Row():
        fields["samples"] = _slider(
            "samples", "Samples", defaults.samples, maximum=max_samples, elem_id="samples"
        )
        fields["scheduler"] = gr.Dropdown(
            choices=list(SCHEDULERS), value=DEFAULT_SCHEDULER, label="Scheduler"
        )
    fields["num_inference_steps"] = _slider(
        "num_inference_steps", "Steps", defaults.num_inference_steps, elem_id="steps"
    )
    fields["guidance_scale"] = _slider("guidance_scale", "Guidance scale", defaults.guidance_scale)
    fields["controlnet_scale"] = _slider("controlnet_scale", "ControlNet scale", defaults.controlnet_scale)
    with gr.Row(equal_height=True):
        fields["seed"] = raw_values(gr.Number(label="Seed", value=0, precision=0, minimum=-1, elem_id="seed"))
        fields["randomize_seed"] = gr.Checkbox(label="Randomise seed", value=True, elem_id="randomize-seed")
    fields["draft"] = gr.Checkbox(
        label="Draft: a 4-step look (SDXL-Lightning); untick for the final image",
        value=defaults.draft,
        elem_id="draft",
    )
    with gr.Accordion("Advanced", open=False, elem_id="advanced"):
        fields["auto_size"] = gr.Checkbox(
            label="Size from the pose (nearest SDXL bucket)", value=True, elem_id="auto-size"
        )
        with gr.Row():
            fields["width"] = _slider("width", "Width", DEFAULT_SIZE, elem_id="width")
            fields["height"] = _slider("height", "Height", DEFAULT_SIZE, elem_id="height")
        fields["control_guidance_end"] = _slider(
            "control_guidance_end", "Control guidance end", defaults.control_guidance_end
        )
        with gr.Row():
            fields["include_hands"] = gr.Checkbox(
                label="Hands in the conditioning", value=defaults.include_hands
            )
            fields["include_face"] = gr.Checkbox(
                label="Face in the conditioning", value=defaults.include_face
            )
            fields["thick_lines"] = gr.Checkbox(
                label="Thick lines (as xinsir trained)", value=defaults.thick_lines
            )
    with gr.Row():
        generate = gr.Button("Generate", variant="primary", elem_id="generate")
        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
    with gr.Row(visible=False):
        api_size = {name: raw_values(gr.Number(label=name, precision=0)) for name in ("width", "height")}
    return GenerationPanel(fields, api_size, generate, cancel)


def _output_panel() -> OutputPanel:
    status = gr.Markdown(elem_id="status")
    gallery = gr.Gallery(
        label="Pose conditioning, then the samples",
        columns=4,
        height="auto",
        object_fit="contain",
        format="png",
        buttons=["download", "download_all", "fullscreen"],
        interactive=False,
        elem_id="gallery",
    )
    with gr.Row():
        use_seed_button = gr.Button("Use this seed", scale=0, elem_id="use-seed")
        downloads = gr.File(
            label="Downloads: everything as a zip, and each PNG (parameters in its metadata)",
            file_count="multiple",
            interactive=False,
            elem_id="downloads",
        )
    return OutputPanel(
        status, gallery, downloads, use_seed_button, gr.State([]), gr.State(None), gr.State([])
    )


def _api_endpoints(
    studio: PoseStudio, pose: PosePanel, generation: GenerationPanel, gpu: dict, heavy: Callable
) -> None:
    """/dwpose and /generate: the hosted APIs' signatures (plus optional width and height) over the same
    handlers the page uses. Their outputs live in a hidden row; the trigger is a hidden button, so only API
    clients call them."""
    with gr.Row(visible=False):
        trigger = gr.Button()
        pose_image = gr.Image(label="pose image", format="png", type="numpy")
        pose_json = gr.JSON(label="OpenPose JSON")
        images = gr.Gallery(label="images", format="png")
        seeds = gr.JSON(label="seeds")
    trigger.click(
        heavy(studio.dwpose),
        [pose.upload, pose.draw_mode],
        [pose_image, pose_json],
        api_name="dwpose",
        **gpu,
    )
    trigger.click(
        heavy(studio.generate),
        pose.upload,
        [images, seeds],
        inputs_kwargs=generation.api_inputs(GENERATE_API, {}),
        api_name="generate",
        **gpu,
    )


def build_ui(studio: PoseStudio) -> gr.Blocks:
    """The page over `studio`'s handlers. Queue settings are applied here; theme and CSS go to launch()."""
    settings = studio.settings
    gpu = {"concurrency_id": GPU_GROUP, "concurrency_limit": settings.concurrency_limit}

    def heavy(handler: Callable) -> Callable:
        """A GPU-group handler whose images are served as files named uniquely per response (ui.served).
        (On ZeroGPU only the denoising inside the handlers is a GPU function: see ui/zerogpu.py.)"""
        return studio.served.as_files(handler)

    ui_event = UI_EVENT
    with gr.Blocks(title="Pose Studio", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# Pose Studio\nWhole-body pose with **DWPose**, then images in that pose with **SDXL + "
            "ControlNet OpenPose**. Upload a photo, a pose JSON file or an OpenPose skeleton image."
        )
        gr.Markdown(STAND_IN_BANNER, visible=studio.is_stand_in, elem_id="stand-in-banner")
        # Filled when the page loads, not when it is built: the line needs torch and onnxruntime, which are
        # imported after the first page is served (pipelines/preload.py); it is read again on every load.
        runtime = gr.Markdown(elem_id="runtime")
        demo.load(lambda: runtime_line(studio), None, runtime, queue=False, **ui_event)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                pose = _pose_panel()
            with gr.Column(scale=1):
                generation = _generation_panel(settings.max_samples)
        output = _output_panel()
        examples = gr.Examples(
            examples=[[str(ASSETS_DIR / "poses" / name), prompt] for name, prompt in EXAMPLES],
            example_labels=[Path(name).stem for name, _ in EXAMPLES],
            inputs=[pose.upload, generation.fields["prompt"]],
            outputs=[pose.preview, output.gallery],
            fn=studio.generate_example,
            cache_examples=True,
            cache_mode="lazy",
            label="Pose presets (no photo needed)",
        )

        pose.upload.upload(
            heavy(studio.show_pose), [pose.upload, pose.draw_mode], pose.outputs, **gpu, **ui_event
        )
        pose.upload.clear(studio.clear_pose, None, pose.outputs, queue=False, **ui_event)
        # A mode change redraws a cached pose at once, outside the GPU queue; an upload not in the cache gets
        # a new `detect_again` token instead, whose change detects it in the GPU queue (see `redraw`).
        detect_again = gr.State()
        pose.draw_mode.change(
            studio.served.as_files(studio.redraw),
            [pose.upload, pose.draw_mode],
            [*pose.outputs, detect_again],
            concurrency_id=RENDER_GROUP,
            concurrency_limit=None,
            show_progress="minimal",
            **ui_event,
        )
        detect_again.change(
            heavy(studio.show_pose), [pose.upload, pose.draw_mode], pose.outputs, **gpu, **ui_event
        )
        generate_event = generation.generate.click(
            heavy(studio.generate_stream),
            pose.upload,
            [
                output.gallery,
                output.downloads,
                generation.fields["seed"],
                output.seeds,
                output.status,
                output.finished,
            ],
            inputs_kwargs=generation.fields,
            # Progress, and the "Error" mark that Gradio's client may also put on a cancelled event's outputs,
            # only on the gallery, which `restore_gallery` below updates again: the downloads and the status
            # stay the finished run's, unmarked.
            show_progress_on=output.gallery,
            **gpu,
            **ui_event,
        )
        generation.cancel.click(studio.cancel, None, None, cancels=[generate_event], queue=False, **ui_event)
        # The page runs `.failure` listeners when the event fails and also when `cancels=` stops it, after
        # it has stopped applying the run's updates: the last finished gallery replaces the live previews.
        generate_event.failure(restore_gallery, output.finished, output.gallery, queue=False, **ui_event)
        output.gallery.select(select_sample, output.seeds, output.selected_seed, queue=False, **ui_event)
        output.use_seed.click(
            use_seed,
            output.selected_seed,
            [generation.fields["seed"], generation.fields["randomize_seed"]],
            queue=False,
            **ui_event,
        )
        _api_endpoints(studio, pose, generation, gpu, heavy)
        build_sweep_section(studio, pose, generation, gpu, heavy)
    # gr.Examples takes no concurrency arguments, yet its lazy caching runs a generation: into the GPU group.
    example_event = demo.fns[examples.cache_event["id"]]
    example_event.concurrency_id, example_event.concurrency_limit = GPU_GROUP, settings.concurrency_limit
    demo.queue(
        api_open=False, max_size=settings.max_queue_size, default_concurrency_limit=settings.concurrency_limit
    )
    return demo
