"""What every panel stands on: user-facing errors, the worker relay, cancel flags, run folders and zips, the
one job runner of generation and the sweep, and handlers' outputs by component.

Handlers return (or yield) dicts keyed by output *name*; `by_component` hands Gradio the same dict keyed by
the panel's components, so a handler says which outputs it changes and leaves the others as they are. Tests
call the handlers directly and read the names.
"""

from __future__ import annotations

import functools
import inspect
import logging
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from pipelines.errors import UserError
from pipelines.files import write_zip
from ui.state import CancelFlags

log = logging.getLogger(__name__)

# The page's own events: left out of the API docs and of what the client libraries may call. (Gradio still
# serves them to raw HTTP, as the page needs them; ui.sessions keeps each to its own session.)
UI_EVENT = {"api_visibility": "private"}
GPU_GROUP = "gpu"  # detection, generation, the sweep and the API endpoints: one queue, one concurrency limit
RENDER_GROUP = "render"  # drawing a cached pose: CPU only, never waits behind a generation, never detects
PROGRESS = gr.Progress()  # Gradio hands a live tracker to any parameter that defaults to a gr.Progress
GENERIC_ERROR = "Something went wrong on the server. It has been logged; please try again."
LOCAL_SESSION = "local"  # the session key when a handler is called outside a Gradio request
KEPT_RUNS = 32  # run folders kept on disk for downloading
LOADING_GENERATION = "Loading the generation models (first use)…"

Report = Callable[[str, object], None]  # (kind, payload) from a worker thread to the handler
# What a GPU function yields: (kind, payload); ("error", UserError) carries an engine's message across the
# process boundary on ZeroGPU, which would otherwise replace it with a generic "ZeroGPU worker error".
GpuEvent = tuple[str, Any]
Outputs = dict[str, Any]  # a handler's update: output name -> value


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or LOCAL_SESSION


def error_text(error: BaseException) -> str:
    """What the person reads for `error`: an engine's UserError (or a gr.Error) as it is; anything else is a
    bug: logged with its traceback, and a generic message."""
    if isinstance(error, UserError | gr.Error):
        return str(error.message if isinstance(error, gr.Error) else error)
    log.error("unexpected error in a handler", exc_info=error)
    return GENERIC_ERROR


def error_status(error: BaseException) -> str:
    """A status line for `error`: it stays until the next action replaces it, with no toast and no badge."""
    return f"❌ {error_text(error)}"


@contextmanager
def user_facing_errors() -> Iterator[None]:
    """For the API endpoints, whose clients read errors as errors: gr.Error with the text of `error_text`."""
    try:
        yield
    except gr.Error:
        raise
    except Exception as error:
        raise gr.Error(error_text(error)) from error


def by_component(handler: Callable, components: Mapping[str, gr.components.Component]) -> Callable:
    """`handler` (a function or generator function returning name-keyed dicts) returning the same dicts keyed
    by `components[name]`. functools.wraps keeps its signature, where Gradio finds gr.Progress, gr.Request
    and gr.SelectData parameters and the names `inputs_kwargs` binds."""

    def keyed(outputs: Outputs) -> dict:
        if not outputs:  # Gradio reads an empty dict as one value: "no change" is a skip of any one output
            return {next(iter(components.values())): gr.skip()}
        return {components[name]: value for name, value in outputs.items()}

    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def streaming(*args: Any, **kwargs: Any) -> Iterator[dict]:
            for outputs in handler(*args, **kwargs):
                yield keyed(outputs)

        return streaming

    @functools.wraps(handler)
    def single(*args: Any, **kwargs: Any) -> dict:
        return keyed(handler(*args, **kwargs))

    return single


def stream_from_worker(work: Callable[[Report, threading.Event], object], name: str) -> Iterator[GpuEvent]:
    """Run `work(report, stop)` in a thread; yield each (kind, payload) it reports, then ("result", what it
    returned) or ("error", the UserError it raised); any other exception is raised here. gr.Progress and
    yielding only work from the caller's thread. Closing this generator sets `stop` and waits for the thread,
    which the engine ends at its next step."""
    events: queue.Queue[GpuEvent] = queue.Queue()
    stop = threading.Event()

    def run() -> None:
        try:
            events.put(("result", work(lambda kind, payload: events.put((kind, payload)), stop)))
        except UserError as error:
            events.put(("error", error))
        except BaseException as error:  # handed to the caller's thread, which raises it
            events.put(("exception", error))

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            kind, payload = events.get()
            if kind == "exception":
                raise payload
            yield kind, payload
            if kind in ("result", "error"):
                return
    finally:
        stop.set()
        thread.join()


@dataclass
class Job:
    """A run's outcome, filled in as it goes: its result (None when it was cancelled or stopped early)."""

    result: Any = None

    @property
    def finished(self) -> bool:
        return self.result is not None


class JobRunner:
    """The one job core of generation and the sweep: the session's cancel flag for that kind of run, the GPU
    function's events relayed until it ends or Cancel is pressed, and the function closed either way (which
    on ZeroGPU stops it in its worker). Cancel reaches a run while it waits in the queue too (`arm`)."""

    def __init__(self) -> None:
        self.flags = CancelFlags()

    def arm(self, session: str | None, kind: str) -> None:
        self.flags.arm(session, kind)

    def cancel(self, session: str, kind: str) -> bool:
        return self.flags.cancel(session, kind)

    def run(self, events: Iterator[GpuEvent], session: str | None, kind: str, job: Job) -> Iterator[GpuEvent]:
        """`events` but its ("result", …), which goes into `job`; an ("error", UserError) is raised. Ends
        early, without a result, once the run's flag is set (checked before it starts and after every event,
        so at the next step). API calls (session None) get a private flag."""
        with self.flags.run(session, kind) as flag, closing(events):
            if flag.is_set():
                return
            for event_kind, payload in events:
                if event_kind == "error":
                    raise payload
                if event_kind == "result":
                    job.result = payload
                else:
                    yield event_kind, payload
                if flag.is_set():
                    return


class RunFolders:
    """A fresh folder per run for its downloads, and its zip; the oldest go, so `keep` stay on disk."""

    def __init__(self, root: Path | None = None, keep: int = KEPT_RUNS) -> None:
        self.root = root or Path(tempfile.gettempdir()) / "pose-studio-runs"
        self.keep = keep

    def new(self, prefix: str = "run-") -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        runs = sorted(
            (path for path in self.root.iterdir() if path.is_dir()), key=lambda p: p.stat().st_mtime
        )
        for old in runs[: max(len(runs) - (self.keep - 1), 0)]:
            shutil.rmtree(old, ignore_errors=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.root))

    @staticmethod
    def archive(run_dir: Path, name: str) -> Path:
        """One zip of everything in `run_dir`, written beside it."""
        return write_zip(run_dir / name, sorted(run_dir.iterdir()))
