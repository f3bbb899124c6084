"""The pose panel: the upload and its presets, the draw mode, which people count, and the preview of exactly
what the ControlNet will get; and the /dwpose endpoint.

`PoseHandlers` is the behaviour (tests call it directly); `PosePanel` owns the components and wires them.
Detection runs in the GPU group; a draw-mode, people or size change redraws a cached pose at once, outside it.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np

from pipelines.errors import UserError
from pipelines.generation.inputs import conditioning_for
from pipelines.generation.request import GenerationRequest
from pipelines.images import sdxl_bucket
from pipelines.pose import CONDITIONING_MODES, DrawMode, draw_overlay, draw_pose, parse_mode, to_openpose_json
from pipelines.pose.keypoints import PoseResult
from ui.base import PROGRESS, RENDER_GROUP, UI_EVENT, Outputs, by_component, error_status
from ui.base import user_facing_errors as api_errors
from ui.editor import create_editor, load_pose, photo_data_url
from ui.mcp_tools import as_tool
from ui.studio import CurrentPose, PoseStudio, chosen
from ui.uploads import PreparedPose, UploadKind, display_size

PRESETS_DIR = Path(__file__).resolve().parent.parent / "assets" / "poses"
FINDING_POSE = "Finding the pose… (the first one also loads the pose models)"
# Runs in the browser as a new file or preset comes in: with unsaved edits in the editor, ask first; the
# answer is the event's last input, `replace`.
ASK_BEFORE_REPLACING = """(...inputs) => {
  const editor = document.querySelector('#pose-editor');
  const unsaved = editor !== null && editor.dataset.unsaved === 'true';
  inputs[inputs.length - 1] = !unsaved || window.confirm(
    'Replace your edited pose with the new one? Your edits will be lost.');
  return inputs;
}"""
PREVIEW_PROMPT = "preview"  # the preview's request draws only: any prompt passes the check
KEPT_EDITS = "Kept your edited pose; the new file was not loaded. Upload it again to replace the edits."

DRAW_MODE_LABELS = {
    DrawMode.FULL_POSE: "Full pose",
    DrawMode.BODY_POSE: "Body",
    DrawMode.FACE_POSE: "Face",
    DrawMode.HAND_POSE: "Hands",
    DrawMode.FACE_HAND_MASK: "Face + hand mask",
    DrawMode.FACE_MASK: "Face mask",
    DrawMode.HAND_MASK: "Hand mask",
}
# (file under assets/poses, a prompt that suits it): one click gives a pose and a prompt, no photo needed.
PRESETS = (
    ("standing.json", "a knight in silver armour standing in a castle courtyard, golden hour"),
    ("t-pose.json", "an astronaut in a white spacesuit on the moon, earth in the sky"),
    ("arms-raised.json", "a dancer celebrating on a festival stage, confetti, stage lights"),
    ("walking.json", "a woman in a red coat walking down a snowy street at night"),
    ("sitting.json", "an old fisherman sitting on a wooden pier, morning fog"),
    ("hands-on-hips.json", "a superhero in a blue suit on a rooftop, city skyline"),
)
# What the left image of the preview is, per kind of upload.
OVERLAY_LABELS = {
    UploadKind.PHOTO: "Your photo with the pose",
    UploadKind.POSE_JSON: "The pose file, every part",
}


def is_mask(draw_mode: str) -> bool:
    return parse_mode(draw_mode) not in CONDITIONING_MODES


@dataclass(frozen=True)
class Look:
    """What the conditioning preview is drawn with: the draw mode, the generation size (None: from the
    pose) and xinsir's thick strokes; the generation panel's values, so the preview is what a run gets."""

    draw_mode: str
    auto_size: bool = True
    width: int | None = None
    height: int | None = None
    thick_lines: bool = True

    def request(self, draw_mode: DrawMode) -> GenerationRequest:
        """The request a run would make, as far as its conditioning goes, checked as a run checks it (a size
        typed out of range is refused here too, before anything is drawn)."""
        width, height = (None, None) if self.auto_size else (self.width, self.height)
        request = GenerationRequest(
            prompt=PREVIEW_PROMPT,
            draw_mode=draw_mode.value,
            width=width,
            height=height,
            thick_lines=self.thick_lines,
        )
        request.validate()
        return request


class PoseHandlers:
    """Upload → cached pose → the preview, the OpenPose JSON and a summary line; and /dwpose."""

    def __init__(self, studio: PoseStudio) -> None:
        self.studio = studio

    def show(
        self,
        upload: str | None,
        draw_mode: str,
        auto_size: bool = True,
        width: int | None = None,
        height: int | None = None,
        thick_lines: bool = True,
        source: str | None = None,
        replace: bool = True,
        progress: gr.Progress = PROGRESS,
    ) -> Outputs:
        """A new upload (or preset): detect (or parse) it once, show it with everyone ticked, and load it
        into the editor. With `replace` False (the page asked, and the person keeps their edited pose) the
        upload goes back to `source`, the file the edits belong to. An error stays in the summary line."""
        if not replace:
            return {"upload": source, "info": KEPT_EDITS}
        if not upload:
            return self.clear()
        look = Look(draw_mode, auto_size, width, height, thick_lines)
        try:
            progress(0, desc=FINDING_POSE)
            prepared = self.studio.prepare(upload)
            current = self.studio.current(prepared)
            background = photo_data_url(prepared.image) if prepared.kind is UploadKind.PHOTO else None
            html, loaded = load_pose(current.pose, background, self.studio.settings)
            return {
                **self._outputs(current, None, look, Path(upload).name),
                **_people_choices(current.count),
                "editor": html,
                "loaded": loaded,
                "source": upload,
            }
        except Exception as error:
            return {**self.clear(), "info": error_status(error)}

    def redraw(
        self,
        upload: str | None,
        draw_mode: str,
        people: list[int] | None,
        auto_size: bool = True,
        width: int | None = None,
        height: int | None = None,
        thick_lines: bool = True,
        edited: dict | None = None,
        loaded: dict | None = None,
        people_count: int | None = None,
    ) -> Outputs:
        """A draw-mode, people, size or editor change, outside the GPU queue: redraw the current pose (CPU
        only). When an edit changed how many people there are, the People choices follow (everyone ticked).
        An upload that is not cached (evicted, or its detection still waits in the queue) is not detected
        here: `detect_again` gets a new token instead, whose change runs `show` in the GPU queue."""
        if not upload:
            return self.clear()
        try:
            prepared = self.studio.cached(upload)
            if prepared is None:
                return {"detect_again": uuid.uuid4().hex}
            current = self.studio.current(prepared, edited, loaded)
            look = Look(draw_mode, auto_size, width, height, thick_lines)
            name = Path(upload).name
            if people_count is not None and current.count != people_count:
                return {**self._outputs(current, None, look, name), **_people_choices(current.count)}
            return self._outputs(current, people, look, name)
        except Exception as error:
            return {"info": error_status(error)}

    def detect(self, upload: str | None, progress: gr.Progress = PROGRESS) -> Outputs:
        """In the GPU queue, for a redraw that found its upload no longer cached: detect it again (the editor
        keeps its pose), then `detected` changes, which redraws."""
        try:
            progress(0, desc=FINDING_POSE)
            self.studio.prepare(upload)
            return {"detected": uuid.uuid4().hex}
        except Exception as error:
            return {"info": error_status(error)}

    def clear(self) -> Outputs:
        """No upload: an empty preview and an empty editor."""
        html, loaded = load_pose(None, None, self.studio.settings)
        return {
            "editor": html,
            "loaded": loaded,
            "source": None,
            "overlay": gr.update(value=None, visible=True, label=OVERLAY_LABELS[UploadKind.PHOTO]),
            "conditioning": gr.update(value=None, label=CONDITIONING_LABEL),
            "pose_json": None,
            "info": "",
            **_people_choices(0),
            "draw_mode": gr.update(interactive=True),
            "pose_size": None,
        }

    def _outputs(self, current: CurrentPose, people: list[int] | None, look: Look, name: str) -> Outputs:
        prepared, mode = current.prepared, parse_mode(look.draw_mode)
        outputs: Outputs = {
            "info": _describe(current, people, name),
            "draw_mode": gr.update(interactive=current.pose is not None),
            "pose_size": _source_size(prepared),
        }
        if current.pose is None:
            outputs["overlay"] = gr.update(value=None, visible=False)
            outputs["pose_json"] = None
        else:
            label = OVERLAY_LABELS[prepared.kind] + (", edited" if current.edited else "")
            outputs["overlay"] = gr.update(value=_overlay(current, mode), visible=True, label=label)
        try:
            pose = current.chosen(people)
            if pose is not None:
                outputs["pose_json"] = to_openpose_json(pose)
            outputs["conditioning"] = _conditioning(prepared, pose, mode, look)
        except UserError as error:
            outputs["conditioning"] = gr.update(value=None, label=CONDITIONING_LABEL)
            outputs["info"] += f"\n\n{error_status(error)}"
        return outputs

    def dwpose(self, image: str, draw_mode: str = DrawMode.BODY_POSE.value) -> Outputs:
        """API /dwpose: the pose drawn in `draw_mode` on black at the image's size, and the OpenPose JSON;
        a skeleton comes back as it is, with no JSON."""
        with api_errors():
            prepared = self.studio.prepare(image)
            mode = parse_mode(draw_mode)
            if prepared.pose is None:
                return {"image": prepared.image, "json": None}
            return {"image": draw_pose(prepared.pose, mode), "json": to_openpose_json(prepared.pose)}


CONDITIONING_LABEL = "ControlNet input"


def _source_size(prepared: PreparedPose) -> list[int]:
    if prepared.pose is None:
        height, width = prepared.image.shape[:2]
        return [width, height]
    return [prepared.pose.width, prepared.pose.height]


def _people_choices(count: int) -> Outputs:
    """The People control for `count` people, everyone ticked; shown when there is a choice to make."""
    choices = [(f"Person {index + 1}", index) for index in range(count)]
    return {
        "people": gr.update(choices=choices, value=list(range(count)), visible=count > 1),
        "people_count": count,
    }


def _overlay(current: CurrentPose, mode: DrawMode) -> np.ndarray:
    """Everyone, numbered when there are several: over the photo (at display size), or on black for a file."""
    prepared, pose = current.prepared, current.pose
    if prepared.kind is UploadKind.PHOTO:
        return draw_overlay(prepared.image, pose, mode, numbered=True)
    width, height = display_size(pose.width, pose.height)
    black = np.zeros((height, width, 3), np.uint8)
    return draw_overlay(black, pose, DrawMode.FULL_POSE, numbered=True)


def _conditioning(prepared: PreparedPose, pose: PoseResult | None, mode: DrawMode, look: Look) -> dict:
    """Exactly what a run gets (a pose mode at the output size), or a mask mode's export at the pose's
    size."""
    if mode not in CONDITIONING_MODES:
        label = f"{DRAW_MODE_LABELS[mode]}: an inpainting mask to download; Generate needs a pose mode"
        return gr.update(value=draw_pose(pose, mode), label=label)
    source = prepared.image if pose is None else pose
    image = conditioning_for(look.request(mode), source).image
    height, width = image.shape[:2]
    what = "your skeleton, letterboxed" if pose is None else DRAW_MODE_LABELS[mode].lower()
    return gr.update(value=image, label=f"ControlNet: {what}, {width}×{height}")


def _describe(current: CurrentPose, people: list[int] | None, name: str) -> str:
    """One line on the pose: what the file is and its name, its size, the people, and what was done to it."""
    prepared = current.prepared
    kind = f"**{prepared.kind.value}** `{name}`"
    if current.pose is None:
        height, width = prepared.image.shape[:2]
        return f"{kind}, {width}×{height}: used as it is, so the draw mode does not apply."
    pose, count = current.pose, current.count
    found = "no person found" if count == 0 else f"{count} {'person' if count == 1 else 'people'}"
    if count > 1:
        ticked = len(chosen(people, count))
        found += f" (numbered in the preview; {ticked} of {count} in the conditioning)"
    edited = " Edited in the editor." if current.edited else ""
    return f"{kind}, {pose.width}×{pose.height}: {found}.{edited}" + "".join(
        f" {note}" for note in prepared.notes
    )


def pose_size_bucket(pose_size: list[int] | None, width: int, height: int) -> tuple[int, int]:
    """The generation size the pose gives (its SDXL bucket), or `width`×`height` before any pose."""
    return (width, height) if not pose_size else sdxl_bucket(*pose_size)


@dataclass
class PosePanel:
    """The pose inputs (left column) and its preview (right column), built by `inputs()` and `preview()`."""

    handlers: PoseHandlers
    components: dict[str, gr.components.Component] = field(default_factory=dict)

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.components[name]

    def inputs(self) -> None:
        c = self.components
        c["upload"] = gr.File(
            label="Photo, pose JSON or OpenPose skeleton image",
            file_types=["image", ".json"],
            type="filepath",
            height=120,
            elem_id="upload",
        )
        with gr.Row(elem_id="presets"):
            gr.Markdown("Pose presets:", elem_classes=["presets-label"])
            c["presets"] = [
                gr.Button(Path(name).stem, size="sm", min_width=60, elem_id=f"preset-{Path(name).stem}")
                for name, _ in PRESETS
            ]
        c["draw_mode"] = gr.Radio(
            choices=[(label, mode.value) for mode, label in DRAW_MODE_LABELS.items()],
            value=DrawMode.BODY_POSE.value,
            label="Draw mode",
            info="The pose modes are what the ControlNet gets; the masks are exports for inpainting.",
            elem_id="draw-mode",
        )
        # A dropdown taking any value: Gradio checks a CheckboxGroup's values against its choices of the
        # moment, which change with every pose, so a click racing a new pose failed; `chosen` keeps only real
        # people.
        c["people"] = gr.Dropdown(
            label="People in the conditioning",
            info="Numbered as in the preview; remove someone to leave them out of the image.",
            multiselect=True,
            allow_custom_value=True,
            type="value",
            visible=False,
            elem_id="people",
        )
        c["info"] = gr.Markdown(elem_id="pose-info")
        c["pose_size"] = gr.State()
        c["people_count"] = gr.State(0)
        c["source"] = gr.State()  # the upload the editor's pose came from
        c["replace"] = gr.Checkbox(True, visible=False)  # set by ASK_BEFORE_REPLACING as a file comes in
        c["detect_again"] = gr.State()
        c["detected"] = gr.State()

    def preview(self) -> None:
        c = self.components
        with gr.Row(equal_height=True):
            c["overlay"] = gr.Image(
                label=OVERLAY_LABELS[UploadKind.PHOTO],
                type="numpy",
                format="png",
                interactive=False,
                height=300,
                buttons=["download", "fullscreen"],
                elem_id="pose-overlay",
            )
            c["conditioning"] = gr.Image(
                label=CONDITIONING_LABEL,
                type="numpy",
                format="png",
                interactive=False,
                height=300,
                buttons=["download", "fullscreen"],
                elem_id="pose-conditioning",
            )
        with gr.Accordion(
            "Edit the pose: drag joints, add, mirror or remove people", open=False, elem_id="editor"
        ):
            editor = create_editor(settings=self.handlers.studio.settings)
            c["editor"], c["loaded"] = editor.html, editor.loaded
        with gr.Accordion("OpenPose JSON of the pose used", open=False):
            c["pose_json"] = gr.JSON(show_label=False, elem_id="pose-json")

    @property
    def shown(self) -> dict[str, gr.components.Component]:
        """Every output the pose handlers name."""
        names = (
            "overlay", "conditioning", "pose_json", "info", "people", "people_count", "draw_mode",
            "pose_size", "editor", "loaded", "source", "upload", "detect_again", "detected",
        )  # fmt: skip
        return {name: self.components[name] for name in names}

    def wire(
        self,
        look: list[gr.components.Component],
        prompt: gr.Textbox,
        heavy: Callable[[Callable], Callable],
        gpu: dict,
    ) -> None:
        """The panel's events; `look` are the generation panel's auto size, width, height and thick lines,
        which the conditioning preview is drawn with; a preset also fills `prompt`."""
        c, handlers = self.components, self.handlers
        shown = list(self.shown.values())
        show = {
            "fn": heavy(by_component(handlers.show, self.shown)),
            "inputs": [c["upload"], c["draw_mode"], *look, c["source"], c["replace"]],
            "outputs": shown,
            "js": ASK_BEFORE_REPLACING,
            **gpu,
            **UI_EVENT,
        }
        c["upload"].upload(**show)
        for button, (name, text) in zip(c["presets"], PRESETS, strict=True):
            button.click(
                functools.partial(preset_values, name, text),
                None,
                [c["upload"], prompt],
                queue=False,
                **UI_EVENT,
            ).then(**show)
        c["upload"].clear(by_component(handlers.clear, self.shown), None, shown, queue=False, **UI_EVENT)
        c["detect_again"].change(
            by_component(handlers.detect, self.shown), c["upload"], shown, **gpu, **UI_EVENT
        )
        # One listener for every trigger: "always_last" then runs one redraw at a time per page, the last one
        # last, so a stale redraw never lands after a newer one. `.change` also catches values set by
        # handlers (Send to panel, Use Full pose, the size fields following the pose) and every committed
        # edit in the editor.
        triggers = [c["draw_mode"], c["people"], *look, c["editor"], c["detected"]]
        gr.on(
            [component.change for component in triggers],
            handlers.studio.served.as_files(by_component(handlers.redraw, self.shown)),
            [c["upload"], c["draw_mode"], c["people"], *look, c["editor"], c["loaded"], c["people_count"]],
            shown,
            concurrency_id=RENDER_GROUP,
            concurrency_limit=None,
            trigger_mode="always_last",
            show_progress="hidden",
            **UI_EVENT,
        )

    def api(self, gpu: dict, heavy: Callable[[Callable], Callable]) -> None:
        """/dwpose: the hosted API's signature; its outputs in a hidden row, a hidden trigger."""
        with gr.Row(visible=False):
            trigger = gr.Button()
            outputs = {
                "image": gr.Image(label="pose image", format="png", type="numpy"),
                "json": gr.JSON(label="OpenPose JSON"),
            }
        trigger.click(
            as_tool("dwpose", heavy(by_component(self.handlers.dwpose, outputs))),
            [self["upload"], self["draw_mode"]],
            list(outputs.values()),
            api_name="dwpose",
            **gpu,
        )


def preset_values(name: str, prompt: str) -> tuple[str, str]:
    """A preset button's handler: its pose file for the upload, and its prompt."""
    return str(PRESETS_DIR / name), prompt
