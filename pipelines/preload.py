"""Import the model libraries in the background once the page answers: the first page never waits for torch,
diffusers or onnxruntime (several seconds on a small machine), and the first Generate mostly does not either.
It only imports modules; the weights still load on first use, with the page's loading message. app.py starts
it after Gradio's launch returns (the server is up and has passed Gradio's own reachability check, which a
busy import could otherwise make time out)."""

from __future__ import annotations

import importlib
import logging
import threading
import time
import urllib.request

log = logging.getLogger(__name__)

HEAVY_MODULES = ("pipelines.generation.engine", "pipelines.pose.estimator")
POLL_S = 0.2
GIVE_UP_S = 300.0


def import_when_serving(url: str, modules: tuple[str, ...] = HEAVY_MODULES) -> threading.Thread:
    """Start a daemon thread that waits until `url` answers, then imports `modules`."""

    def run() -> None:
        deadline = time.monotonic() + GIVE_UP_S
        while not _answers(url):
            if time.monotonic() > deadline:
                log.warning("%s never answered; the model libraries load on first use instead", url)
                return
            time.sleep(POLL_S)
        started = time.perf_counter()
        for module in modules:
            importlib.import_module(module)
        log.info("Model libraries imported in the background in %.1f s", time.perf_counter() - started)

    thread = threading.Thread(target=run, name="preload", daemon=True)
    thread.start()
    return thread


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False
