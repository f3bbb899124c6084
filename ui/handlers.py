"""The app's behaviour as plain functions over the two engines. layout.py wires them to components; tests call
them directly. Every handler turns the engines' UserErrors into gr.Error with the engine's own message.

The UI handlers and the API endpoints (/dwpose, /generate) are thin shapes over the same two cores:
`prepare` (upload -> cached pose) and `_generation_updates` (pose + request -> previews, then the saved run).
The denoising itself is the GPU function `generation_events`: plain inputs, plain events out, so that on
ZeroGPU it can run in a forked worker while the cache, cancel flags and files stay here (see ui/zerogpu.py).
"""

from __future__ import annotations

import logging
import numbers
import queue
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import gradio as gr
import numpy as np
from PIL import Image

from pipelines.errors import NoPersonError, UserError, ValidationError
from pipelines.files import write_zip
from pipelines.generation.presets import get_preset
from pipelines.generation.request import REQUEST_BOUNDS, GenerationRequest, GenerationResult, PoseInput
from pipelines.pose import DrawMode, draw_overlay, draw_pose, parse_mode, to_openpose_json
from pipelines.pose.models import is_stand_in as is_pose_stand_in
from pipelines.settings import Settings
from ui.served import ServedImages
from ui.state import CancelFlags, LruCache
from ui.uploads import (
    PreparedPose,
    UploadKind,
    content_key,
    display_copy,
    display_size,
    prepare_upload,
    read_upload,
)
from ui.zerogpu import generation_seconds, gpu_task

if TYPE_CHECKING:  # the engines (torch, onnxruntime) are imported on first use, after the page is up
    from pipelines.generation import GenerationEngine
    from pipelines.pose import PoseEstimator

log = logging.getLogger(__name__)

GENERIC_ERROR = "Something went wrong on the server. It has been logged; please try again."
NO_UPLOAD = "Upload a photo, a pose JSON file or an OpenPose skeleton image first."
KEPT_RUNS = 32  # generation output folders kept on disk for downloading
LOCAL_SESSION = "local"  # the session key when a handler is called outside a Gradio request
GENERATION_RUN = "generation"  # the kind of run the Cancel button stops (the sweep has its own)
FINDING_POSE = "Finding the pose… (the first one also loads the pose models)"
LOADING_GENERATION = "Loading the generation models (first use)…"
EXAMPLE_SEED = 1234  # examples are cached, so they use a fixed seed
PROGRESS = gr.Progress()  # Gradio hands a live tracker to any parameter that defaults to a gr.Progress
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
)
GENERATE_API = ("prompt", "negative_prompt", "samples", *SAMPLER_API)

Report = Callable[[str, object], None]  # (kind, payload) from a worker thread to the handler
# What a GPU function yields: (kind, payload); ("error", UserError) carries an engine's message across the
# process boundary on ZeroGPU, which would otherwise replace it with a generic "ZeroGPU worker error".
GpuEvent = tuple[str, Any]


DRAW_MODE_LABELS = {
    DrawMode.FULL_POSE: "Full pose",
    DrawMode.BODY_POSE: "Body",
    DrawMode.FACE_POSE: "Face",
    DrawMode.HAND_POSE: "Hands",
    DrawMode.FACE_HAND_MASK: "Face + hand mask",
    DrawMode.FACE_MASK: "Face mask",
    DrawMode.HAND_MASK: "Hand mask",
}


def _photo_preview(prepared: PreparedPose, mode: DrawMode) -> tuple[np.ndarray, np.ndarray]:
    height, width = prepared.image.shape[:2]  # the cache keeps the photo at display size
    return draw_overlay(prepared.image, prepared.pose, mode), draw_pose(prepared.pose, mode, (width, height))


def _json_preview(prepared: PreparedPose, mode: DrawMode) -> tuple[np.ndarray, np.ndarray]:
    size = display_size(prepared.pose.width, prepared.pose.height)
    return draw_pose(prepared.pose, DrawMode.FULL_POSE, size), draw_pose(prepared.pose, mode, size)


def _skeleton_preview(prepared: PreparedPose, mode: DrawMode) -> tuple[np.ndarray, np.ndarray]:
    shown = display_copy(prepared.image)
    return shown, shown


# The before/after pair of the pose preview, per kind of upload, at display size: a photo is compared with
# its drawn pose; a JSON file has no photo, so its full pose stands in; a skeleton is shown as it is, the
# mode does not apply.
PREVIEWS: dict[UploadKind, Callable[[PreparedPose, DrawMode], tuple[np.ndarray, np.ndarray]]] = {
    UploadKind.PHOTO: _photo_preview,
    UploadKind.POSE_JSON: _json_preview,
    UploadKind.SKELETON: _skeleton_preview,
}


@contextmanager
def user_facing_errors() -> Iterator[None]:
    """Engines' UserErrors reach the person as they are; anything else is a bug: logged, generic message."""
    try:
        yield
    except gr.Error:
        raise
    except UserError as error:
        raise gr.Error(str(error)) from error
    except Exception as error:
        log.exception("unexpected error in a handler")
        raise gr.Error(GENERIC_ERROR) from error


@dataclass(frozen=True)
class SavedRun:
    """A finished generation and its files: PNGs carrying their parameters, and one zip of everything."""

    result: GenerationResult
    conditioning: Path
    samples: list[Path]
    archive: Path

    def gallery(self) -> list[tuple[str, str]]:
        """The pose conditioning first, then each sample captioned with its seed."""
        return [(str(self.conditioning), "pose conditioning"), *self.sample_items()]

    def sample_items(self) -> list[tuple[str, str]]:
        return [
            (str(path), f"seed {seed}") for path, seed in zip(self.samples, self.result.seeds, strict=True)
        ]

    def summary(self) -> str:
        parameters, timings = self.result.parameters, self.result.timings
        return (
            f"{len(self.samples)} sample(s) at {parameters['width']}×{parameters['height']}, "
            f"{parameters['scheduler']}, {parameters['num_inference_steps']} steps, "
            f"in {timings['total']:.1f} s. Seeds: {seeds_text(self.result.seeds)}"
        )


def panel_request(randomize_seed: bool, auto_size: bool, **fields: Any) -> GenerationRequest:
    """The generation panel's values (keyed by GenerationRequest field) as a request: its two toggles stand
    for seed -1 and no size. Generate and the Sweep section both read the panel through it."""
    if randomize_seed:
        fields["seed"] = -1
    if auto_size:
        fields["width"] = fields["height"] = None
    return request_of(**fields)


def request_of(**fields: Any) -> GenerationRequest:
    """A request from raw component values (ui.components), which the engine validates. JSON (the
    browser's) sends a whole float such as 1.0 as 1, which diffusers refuses for its scales, so a number in
    a float field is made a float; anything else (text, true/false) is left for the engine to refuse."""
    return GenerationRequest(
        **{name: _as_float(value) if name in FLOAT_FIELDS else value for name, value in fields.items()}
    )


def _as_float(value: Any) -> Any:
    return float(value) if isinstance(value, numbers.Real) and not isinstance(value, bool) else value


def seeds_text(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


def session_of(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or LOCAL_SESSION


class PoseStudio:
    """The engines, the pose cache and the handlers over them; one per process."""

    def __init__(
        self,
        settings: Settings,
        pose_estimator: PoseEstimator | None = None,
        generation_engine: GenerationEngine | None = None,
    ) -> None:
        self.settings = settings
        if pose_estimator is not None:
            self.pose_estimator = pose_estimator
        if generation_engine is not None:
            self.generation_engine = generation_engine
        self.poses: LruCache[PreparedPose] = LruCache(
            settings.pose_cache_mb * 2**20, size_of=lambda prepared: prepared.nbytes
        )
        self.cancel_flags = CancelFlags()
        self.output_root = Path(tempfile.gettempdir()) / "pose-studio-runs"
        # On ZeroGPU a GPU function, made once, before the app launches (ZeroGPU registers them then).
        self.generate_on_gpu = gpu_task(
            self.generation_events, duration=lambda request, pose: generation_seconds(request)
        )
        self.shown_notices: set[tuple[str | None, str]] = set()  # (session, engine notice) already shown
        self.served = ServedImages(Path(tempfile.gettempdir()) / "pose-studio-served")  # see ui.served

    @cached_property
    def pose_estimator(self) -> PoseEstimator:
        from pipelines.pose import PoseEstimator

        return PoseEstimator.from_settings(self.settings)

    @cached_property
    def generation_engine(self) -> GenerationEngine:
        from pipelines.generation import GenerationEngine

        return GenerationEngine.from_settings(self.settings, pose_estimator=self.pose_estimator)

    @property
    def is_stand_in(self) -> bool:
        """True when either engine runs the tiny random models (the UI says so in a banner); read from the
        settings, so building the page loads no engine."""
        return is_pose_stand_in(self.settings) or get_preset(self.settings.preset).is_stand_in

    # ----- pose -------------------------------------------------------------------------------------------

    def prepare(self, upload: str | Path | None) -> PreparedPose:
        """The upload's pose, detected (or parsed) once per distinct file content."""
        if not upload:
            raise gr.Error(NO_UPLOAD)
        data = read_upload(upload)
        return self.poses.get_or_create(
            content_key(data), lambda: prepare_upload(data, self.pose_estimator, self.settings.max_pixels)
        )

    def show_pose(
        self, upload: str | None, draw_mode: str, progress: gr.Progress = PROGRESS
    ) -> tuple[tuple[np.ndarray, np.ndarray], dict | None, str]:
        """Upload and draw-mode change: the before/after preview, the OpenPose JSON and a one-line summary.
        A mode change finds the pose in the cache, so only the drawing runs again."""
        with user_facing_errors():
            progress(0, desc=FINDING_POSE)
            return self._pose_outputs(self.prepare(upload), draw_mode)

    def redraw(self, upload: str | None, draw_mode: str) -> tuple:
        """Draw-mode change, outside the GPU queue: re-render the cached pose (CPU only, instant): the
        preview, JSON and summary, and a last output that stays as it is. An upload that is not cached
        (evicted, or its detection still waits in the queue) is not detected here: the preview stays, and the
        last output becomes a new token, whose change runs `show_pose` in the GPU queue."""
        if not upload:
            return (*self.clear_pose(), gr.skip())
        with user_facing_errors():
            prepared = self.poses.peek(content_key(read_upload(upload)))
            if prepared is None:
                return gr.skip(), gr.skip(), gr.skip(), uuid.uuid4().hex
            return (*self._pose_outputs(prepared, draw_mode), gr.skip())

    def _pose_outputs(self, prepared: PreparedPose, draw_mode: str) -> tuple:
        preview = PREVIEWS[prepared.kind](prepared, parse_mode(draw_mode))
        return preview, self._pose_json(prepared), _describe(prepared)

    @staticmethod
    def clear_pose() -> tuple[None, None, str]:
        return None, None, ""

    def dwpose(self, image: str, draw_mode: str = DrawMode.BODY_POSE.value) -> tuple[np.ndarray, dict | None]:
        """API /dwpose: the pose drawn in `draw_mode` on black at the image's size, and the OpenPose JSON;
        a skeleton comes back as it is, with no JSON."""
        with user_facing_errors():
            prepared = self.prepare(image)
            mode = parse_mode(draw_mode)
            if prepared.pose is None:
                return prepared.image, None
            return draw_pose(prepared.pose, mode), self._pose_json(prepared)

    @staticmethod
    def _pose_json(prepared: PreparedPose) -> dict | None:
        return None if prepared.pose is None else to_openpose_json(prepared.pose)

    # ----- generation -------------------------------------------------------------------------------------

    def generate_stream(
        self,
        upload: str | None,
        progress: gr.Progress = PROGRESS,
        request: gr.Request | None = None,
        **panel: Any,
    ) -> Iterator[tuple]:
        """The Generate button over the panel's values (see `panel_request`): live previews in the gallery,
        then the conditioning and the samples, their downloads, and the seeds used written back (gallery,
        files, seed, seeds state, status, and the finished gallery again for the page's Cancel and errors
        to go back to: see `restore_gallery`)."""
        generation_request = panel_request(**panel)
        skip = gr.skip()
        updates = self._generation_updates(upload, generation_request, progress, session_of(request))
        with closing(updates):  # Gradio's `cancels=` closes this handler: the GPU function is closed at once
            for update in updates:
                if isinstance(update, SavedRun):
                    files = [str(update.archive), *map(str, update.samples)]
                    gallery = update.gallery()
                    seeds = update.result.seeds
                    yield gallery, files, seeds[0], seeds, update.summary(), gallery
                else:
                    yield (skip if update is None else update), skip, skip, skip, skip, skip

    def generate(
        self,
        image: str,
        progress: gr.Progress = PROGRESS,
        *,
        width: int | None = None,
        height: int | None = None,
        **parameters: Any,
    ) -> Iterator[tuple[list, list[int]]]:
        """API /generate: previews while denoising, then the samples (captioned with their seeds) and the
        seeds. `parameters` are GenerationRequest fields by name (seed -1 picks a random one); width and
        height are keyword defaults so API clients may leave them out (the SDXL size nearest the pose)."""
        generation_request = request_of(width=width, height=height, **parameters)
        updates = self._generation_updates(image, generation_request, progress, session=None)
        with closing(updates):
            for update in updates:
                if isinstance(update, SavedRun):
                    yield update.sample_items(), update.result.seeds
                else:
                    yield (gr.skip() if update is None else update), gr.skip()

    def generate_example(self, upload: str, prompt: str) -> tuple[tuple[np.ndarray, np.ndarray], list]:
        """An example's cached result: its pose preview and one sample at the preset's example settings (the
        defaults, for real models)."""
        preview, _, _ = self.show_pose(upload, DrawMode.FULL_POSE.value)
        example = get_preset(self.settings.preset).example_request
        request = GenerationRequest(prompt=prompt, seed=EXAMPLE_SEED, **example)
        *_, saved = self._generation_updates(upload, request, PROGRESS, session=None)
        return preview, saved.gallery()

    def cancel(self, request: gr.Request | None = None) -> None:
        """The Cancel button: stop this session's generation at the next step (not its sweep)."""
        self.cancel_flags.cancel(session_of(request), GENERATION_RUN)

    def _generation_updates(
        self,
        upload: str | None,
        generation_request: GenerationRequest,
        progress: gr.Progress,
        session: str | None,
    ) -> Iterator[list[Image.Image] | SavedRun | None]:
        """The one generation core: None after each step, previews (lists of images), then the SavedRun.

        The GPU function streams the steps; progress, the cancel flag and saving are handled here. Yielding
        every step gives Gradio a point to close the generator when the run is cancelled, which closes the
        GPU function too. API calls (session None) get a private cancel flag."""
        with user_facing_errors():
            generation_request.validate()  # the engine's own checks, before the upload is even read
            self._check_samples_cap(generation_request.samples)
            prepared = self.prepare(upload)
            if prepared.pose is not None and not prepared.pose.people:
                raise NoPersonError(
                    "No person was found in this image, so there is no pose to generate from."
                )
            if not self.generation_engine.is_loaded:
                progress(0, desc=LOADING_GENERATION)
            step, result = None, None
            events = self.generate_on_gpu(generation_request, prepared.generation_input)
            with self.cancel_flags.run(session, GENERATION_RUN) as flag, closing(events):
                for kind, payload in until_cancelled(events, flag):
                    if kind == "progress":
                        step = payload
                        progress(payload, desc="Denoising", unit="steps")
                        yield None
                    elif kind == "preview":
                        yield payload
                    else:
                        result = payload
            if result is None:
                when = "before it started" if step is None else "at step {} of {}".format(*step)
                gr.Warning(f"Generation cancelled {when}; nothing was decoded.")
            else:
                self._show_notices(self.generation_engine.notices, session)
                yield self._save(result)  # here, once the GPU function has ended

    def generation_events(self, request: GenerationRequest, pose: PoseInput) -> Iterator[GpuEvent]:
        """The GPU function of a generation (on ZeroGPU it runs in a forked worker): ("progress", (step,
        total)) after each step, ("preview", images) every few steps, then ("result", GenerationResult).
        Closing it stops the engine at its next step."""
        engine = self.generation_engine

        def work(report: Report, stop: threading.Event) -> GenerationResult:
            return engine.generate(
                request,
                pose,
                progress=lambda step, total: report("progress", (step, total)),
                preview=lambda images, step, total: report("preview", list(images)),
                cancel=stop,
            )

        yield from stream_from_worker(work, "generate")

    def _show_notices(self, notices: dict[str, str], session: str | None) -> None:
        """What the engine runs without (TAESD previews, the draft LoRA), once per session."""
        for notice in notices.values():
            if (session, notice) not in self.shown_notices:
                self.shown_notices.add((session, notice))
                gr.Warning(notice)

    def _check_samples_cap(self, samples: int) -> None:
        """The server's own cap on samples (`max_samples`), below the engine's range; the slider shows it."""
        cap = min(self.settings.max_samples, int(REQUEST_BOUNDS["samples"].high))
        if samples > cap:
            raise ValidationError(f"samples must be an integer between 1 and {cap} (got {samples!r})")

    def new_run_dir(self, prefix: str = "run-") -> Path:
        """A fresh folder for one run's downloads; the oldest go, so KEPT_RUNS stay on disk."""
        self.output_root.mkdir(parents=True, exist_ok=True)
        _prune_runs(self.output_root, KEPT_RUNS - 1)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.output_root))

    def _save(self, result: GenerationResult) -> SavedRun:
        run_dir = self.new_run_dir()
        samples = result.save(run_dir)  # the samples, conditioning.png and result.json
        archive = write_zip(run_dir / f"pose-studio-seed-{result.seeds[0]}.zip", sorted(run_dir.iterdir()))
        return SavedRun(
            result=result, conditioning=run_dir / "conditioning.png", samples=samples, archive=archive
        )


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


def until_cancelled(events: Iterator[GpuEvent], cancel: threading.Event) -> Iterator[GpuEvent]:
    """A GPU function's events to its end, with its ("error", UserError) raised here; or until `cancel` is
    set (before it starts, or after any event): then this ends, maybe without a result. The caller holds the
    function in `closing(...)`, so it is closed then, which on ZeroGPU stops it in its worker."""
    if cancel.is_set():
        return
    for kind, payload in events:
        if kind == "error":
            raise payload
        yield kind, payload
        if cancel.is_set():
            return


def _prune_runs(root: Path, keep: int) -> None:
    """Delete all but the newest `keep` run folders."""
    runs = sorted((path for path in root.iterdir() if path.is_dir()), key=lambda path: path.stat().st_mtime)
    for old in runs[: max(len(runs) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)


def _describe(prepared: PreparedPose) -> str:
    if prepared.kind is UploadKind.SKELETON:
        height, width = prepared.image.shape[:2]
        return f"**{prepared.kind.value}**, {width}×{height}: used as it is, so the draw mode does not apply."
    pose = prepared.pose
    count = len(pose.people)
    people = "no person found" if count == 0 else f"{count} {'person' if count == 1 else 'people'}"
    return f"**{prepared.kind.value}**, {pose.width}×{pose.height}: {people}." + "".join(
        f" {note}" for note in prepared.notes
    )


def restore_gallery(finished: list) -> list:
    """After a Cancel or a failed run: the gallery of the last finished run (empty before any) in place of the
    live previews. Its downloads, seed and status were never replaced, so the page is that run's again."""
    return finished


def select_sample(seeds: list[int], event: gr.SelectData) -> int | None:
    """Gallery selection -> the seed of that sample (None for the conditioning image, which comes first)."""
    index = event.index - 1
    return seeds[index] if seeds and 0 <= index < len(seeds) else None


def use_seed(selected_seed: int | None) -> tuple:
    """ "Use this seed": put the selected sample's seed in the seed field and stop randomising."""
    if selected_seed is None:
        gr.Warning("Select one of the samples in the gallery first.")
        return gr.skip(), gr.skip()
    return selected_seed, False
