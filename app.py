"""Pose Studio: `python app.py [--preset tiny] [--port 7860] ...`; `python app.py --download` prefetches the
weights and exits. Flags override POSE_STUDIO_* environment variables, which override the defaults."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# First, before anything imports gradio: importing it turns Gradio's import-time stub rewrite off (~1.2 s).
import ui.gradio_startup  # noqa: F401

# isort: split
# Next: on ZeroGPU it imports `spaces`, which must patch torch.cuda before anything imports torch.
from ui import zerogpu

# isort: split
from pipelines.errors import UserError
from pipelines.preload import import_when_serving
from pipelines.settings import ATTENTION_CHOICES, COMPILE_CHOICES, PRESET_SETTINGS, Settings, with_preset

# Where Gradio is told to listen by the platform (Hugging Face Spaces sets these); flags still win.
PLATFORM_SERVER_ENV = {"host": ("GRADIO_SERVER_NAME", str), "port": ("GRADIO_SERVER_PORT", int)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--preset", choices=sorted(PRESET_SETTINGS), help="sdxl (real weights) or tiny (random)"
    )
    parser.add_argument("--host", help="address to listen on (0.0.0.0 to serve the network)")
    parser.add_argument("--port", type=int)
    parser.add_argument("--base-model", help="SDXL base: Hub id or local folder")
    parser.add_argument("--controlnet-model", help="ControlNet OpenPose SDXL: Hub id or local folder")
    parser.add_argument("--vae-model", help="VAE: Hub id or local folder")
    parser.add_argument("--models-dir", dest="dwpose_dir", help="folder with the DWPose ONNX files")
    parser.add_argument("--pose-device", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    parser.add_argument("--dtype", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument(
        "--cpu-offload", action="store_true", default=None, help="model CPU offload (low VRAM)"
    )
    parser.add_argument("--vae-slicing", action="store_true", default=None)
    parser.add_argument("--vae-tiling", action="store_true", default=None)
    parser.add_argument("--attention", choices=list(ATTENTION_CHOICES), help="attention kernel (CUDA)")
    parser.add_argument(
        "--compile",
        choices=list(COMPILE_CHOICES),
        help="torch.compile the transformer blocks (CUDA; compiles at start, see benchmarks/README.md)",
    )
    parser.add_argument(
        "--max-queue-size", type=int, help="waiting requests beyond this get 'busy, try again'"
    )
    parser.add_argument("--concurrency-limit", type=int, help="GPU jobs run at once (default 1)")
    parser.add_argument("--download", action="store_true", help="download every model file, then exit")
    return parser.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    flags = {name: value for name, value in vars(args).items() if name not in {"preset", "download"}}
    platform = {
        name: parse(os.environ[variable])
        for name, (variable, parse) in PLATFORM_SERVER_ENV.items()
        if variable in os.environ
    }
    return with_preset(Settings.from_env(), args.preset).replace(**platform).replace(**flags)


def download(settings: Settings) -> None:
    """Fetch both engines' files into the Hub cache, so the first request does not wait for a download."""
    from pipelines.generation import download_models
    from pipelines.pose.models import model_files

    model_files(settings)
    download_models(settings)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    settings = settings_from(args)
    if args.download:
        try:
            download(settings)
        except UserError as error:
            sys.exit(f"error: {error}")
        return
    from ui.hosted_api import HostedApi
    from ui.page import CSS, THEME, create_demo
    from ui.pose_panel import PRESETS_DIR
    from ui.sessions import session_guard_kwargs
    from ui.studio import PoseStudio

    if zerogpu.on_zerogpu():
        settings = zerogpu.zerogpu_settings(settings)
    studio = PoseStudio(settings)
    if zerogpu.on_zerogpu():
        zerogpu.load_at_start_up(studio)  # in this process, before launch: ZeroGPU packs the weights then
    demo = create_demo(studio)
    # The hosted services' routes live on Gradio's own FastAPI app and call back into its queue.
    hosted = HostedApi(settings, local_url=lambda: demo.local_url)
    demo.launch(
        server_name=settings.host,
        server_port=settings.port,
        max_file_size=f"{settings.max_upload_mb}mb",
        show_error=False,
        allowed_paths=[str(PRESETS_DIR)],  # the pose presets, wherever the app is started from
        theme=THEME,
        css=CSS,
        mcp_server=settings.mcp_server,
        # a session's runs can be cancelled only by its own client; the hosted services' routes
        app_kwargs={**session_guard_kwargs(demo), "routes": hosted.routes()},
        prevent_thread_lock=True,  # serving: now import the model libraries in the background
    )
    import_when_serving(demo.local_url)
    demo.block_thread()


if __name__ == "__main__":
    main()
