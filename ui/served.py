"""Images handed to Gradio as files named uniquely per response, written atomically.

Gradio writes an image returned as an array or a PIL image to a cache path named by its content hash, and
rewrites that path in place for every response holding the same image, even while another client is
downloading it: under load one download in 300 failed with "Too little data for declared Content-Length". A
returned file path is different: Gradio copies it into its cache once, under a temporary name renamed into
place, and never rewrites it. So the page's and the API's events return their images as files from here
(`as_files`); the handlers themselves keep returning arrays, which their tests and other callers want.
"""

from __future__ import annotations

import functools
import inspect
import threading
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pipelines.files import save_image

KEPT_FILES = 256  # Gradio copies a file while it sends the response, so only the newest need to stay


class ServedImages:
    """Writes each image to `root` as `<name>-<unique>.png` and returns its path; keeps the newest files."""

    def __init__(self, root: Path, keep: int = KEPT_FILES) -> None:
        self.root = root
        self.keep = keep
        self._written: deque[Path] = deque()
        self._lock = threading.Lock()

    def __call__(self, image: np.ndarray | Image.Image, name: str = "image") -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        picture = image if isinstance(image, Image.Image) else Image.fromarray(image)
        path = save_image(picture, self.root / f"{name}-{uuid.uuid4().hex}.png")
        with self._lock:
            self._written.append(path)
            stale = [self._written.popleft() for _ in range(len(self._written) - self.keep)]
        for old in stale:
            old.unlink(missing_ok=True)
        return str(path)

    def files_in(self, value: Any) -> Any:
        """`value` with every image in it (at any depth of tuples, lists and dict values) replaced by a
        served file."""
        if isinstance(value, np.ndarray | Image.Image):
            return self(value)
        if isinstance(value, dict):
            return {key: self.files_in(item) for key, item in value.items()}
        if isinstance(value, tuple | list):
            return type(value)(self.files_in(item) for item in value)
        return value

    def as_files(self, handler: Callable) -> Callable:
        """`handler` (a function or a generator function) with the images of each output served as files.
        functools.wraps keeps its signature, where Gradio finds its gr.Progress and gr.Request parameters."""
        if inspect.isgeneratorfunction(handler):

            @functools.wraps(handler)
            def streaming(*args: Any, **kwargs: Any) -> Any:
                for update in handler(*args, **kwargs):
                    yield self.files_in(update)

            return streaming

        @functools.wraps(handler)
        def single(*args: Any, **kwargs: Any) -> Any:
            return self.files_in(handler(*args, **kwargs))

        return single
