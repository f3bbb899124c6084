"""The page: the pose and generation inputs with Generate on the left, what the ControlNet gets and the
samples on the right (they stay in view while you tune), the sweep under both; composed from the panels'
modules.

All GPU and heavy work (detection, generation, the sweep, the /dwpose, /generate and /sweep endpoints) shares
one concurrency group, so one queue orders it and `concurrency_limit` from the settings bounds it. Drawing a
cached pose runs outside it. On ZeroGPU only the denoising inside the handlers asks for a GPU (ui/zerogpu.py).
"""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr

from pipelines.pose.models import CPU, CUDA, expected_providers, requested_providers
from ui.base import GPU_GROUP, UI_EVENT
from ui.generate_panel import GenerateHandlers, GeneratePanel
from ui.pose_panel import PoseHandlers, PosePanel
from ui.studio import PoseStudio
from ui.sweep_panel import SweepHandlers, SweepPanel

STAND_IN_BANNER = (
    "⚠️ **Tiny preset:** the pose and image models are small *random* stand-ins, so detections and samples "
    "are noise. Start with `--preset sdxl` for DWPose and SDXL."
)
CSS = """
#stand-in-banner { background: #fff4e5; border: 1px solid #f0b35b; border-radius: 8px; padding: 2px 12px; }
#stand-in-banner p, #pose-info p, #runtime p, #status p { margin: 0; }
#title h1 { margin: 0; font-size: 1.6rem; }
#title p { margin: 0; }
#status { min-height: 1.5em; }
#presets { align-items: center; gap: 6px; }
#presets .presets-label { flex: 0 0 auto; min-width: 0; }
#gallery .caption-label, #sweep-cells .caption-label { white-space: normal; overflow: visible; }
#gallery .grid-wrap.fixed-height { max-height: none; height: auto; }  /* every sample whole, no scroll */
@media (min-width: 1024px) {
  #main { display: grid; grid-template-columns: 5fr 7fr; column-gap: var(--layout-gap); align-items: start; }
  #inputs { grid-column: 1; grid-row: 1; }
  #controls { grid-column: 1; grid-row: 2; }
  #results { grid-column: 2; grid-row: 1 / span 2; position: sticky; top: 8px; }  /* in view while tuning */
}
@media (max-width: 640px) {
  #gallery .grid-container { --grid-cols: 1 !important; }  /* a phone: each sample at full width */
}
"""
THEME = gr.themes.Soft()
PROVIDER_NAMES = {CUDA: "CUDA", CPU: "CPU"}
POSE_GPU_FALLBACK = (
    "⚠️ DWPose was asked to run on the GPU but runs on the CPU: this onnxruntime has no working CUDA "
    "provider. Install `onnxruntime-gpu` instead of `onnxruntime` (README, *GPU machine*)."
)


RUNTIME_PENDING = "Runs on: checking the devices…"


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


def create_demo(studio: PoseStudio) -> gr.Blocks:
    """The page over `studio`. Queue settings are applied here; theme and CSS go to launch()."""
    settings = studio.settings
    gpu = {"concurrency_id": GPU_GROUP, "concurrency_limit": settings.concurrency_limit}

    def heavy(handler: Callable) -> Callable:
        """A GPU-group handler whose images are served as files named uniquely per response (ui.served)."""
        return studio.served.as_files(handler)

    pose = PosePanel(PoseHandlers(studio))
    generation = GeneratePanel(GenerateHandlers(studio))
    sweep = SweepPanel(SweepHandlers(studio))
    with gr.Blocks(title="Pose Studio", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(
            "# Pose Studio\nA photo, a pose file or a preset → its whole-body pose (**DWPose**) → images in "
            "that pose (**SDXL + ControlNet OpenPose**).",
            elem_id="title",
        )
        gr.Markdown(STAND_IN_BANNER, visible=studio.is_stand_in, elem_id="stand-in-banner")
        # Three columns laid out by CSS (see CSS): on a wide screen the inputs and then the other controls on
        # the left and the results on the right; on a phone, one column: inputs, results, controls.
        with gr.Row(equal_height=False, elem_id="main"):
            with gr.Column(scale=5, min_width=340, elem_id="inputs"):
                pose.inputs()
                generation.prompt()
                generation.buttons()
            with gr.Column(scale=7, min_width=340, elem_id="results"):
                pose.preview()
                generation.results()
            with gr.Column(scale=5, min_width=340, elem_id="controls"):
                generation.controls(settings.max_samples)
        sweep.build(settings.sweep_max_cells)
        # Filled when the page loads, not when it is built: the line needs torch and onnxruntime, which are
        # imported after the first page is served (pipelines/preload.py); it is read again on every load.
        # Until then it says so, rather than showing Gradio's bare timer.
        runtime = gr.Markdown(RUNTIME_PENDING, elem_id="runtime")
        demo.load(
            lambda: runtime_line(studio), None, runtime, queue=False, show_progress="hidden", **UI_EVENT
        )

        look = [generation.fields[name] for name in ("auto_size", "width", "height", "thick_lines")]
        pose.wire(look, generation.fields["prompt"], heavy, gpu)
        generation.wire(pose, heavy, gpu)
        sweep.wire(pose, generation, heavy, gpu)
        pose.api(gpu, heavy)
        generation.api(pose, heavy, gpu)
        sweep.api(pose, generation, heavy, gpu)
    demo.queue(
        api_open=False, max_size=settings.max_queue_size, default_concurrency_limit=settings.concurrency_limit
    )
    return demo
