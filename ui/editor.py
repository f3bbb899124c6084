"""The pose editor: a self-contained panel that shows the current pose on a canvas and lets a person drag
joints (or a whole hand, face or feet), turn a hand, face or feet, edit people (select, move, scale, mirror,
delete, add the standing template), hide and show joints, undo and redo, and reset to the loaded pose.

Interface for the page (build it inside the page's `gr.Blocks`):

    panel = create_editor(pose=None, background=None, settings=None)   # -> EditorPanel

- `panel.html` (gr.HTML): its value is our OpenPose JSON dict (`keypoints.to_openpose_json`: canvas_width,
  canvas_height, people; hidden points 0, 0, 0). `panel.html.change(fn, inputs=panel.html, ...)` fires when an
  edit is committed (a drag ends, a tool answers, undo, redo, reset); read the pose with
  `editor_pose(value, settings)` (checked and clipped like any uploaded JSON; `.note` says what was clipped).
  It fires once per committed edit, and after a `load_pose` that changes the value (Gradio fires change
  for every new value).
- `panel.loaded` (a hidden gr.JSON): the pose last loaded, for `unsaved_edits`. It lives in the browser,
  beside the editor's value, so an event sends the two as one snapshot: a server-side State would already
  hold a new load while the browser still sends the editor's old pose, which then looked edited.
- Load a pose (history starts again, Reset comes back to it): an event with `outputs=panel.load_outputs`
  returning `load_pose(pose, background)`; `pose` is a PoseResult, an OpenPose JSON dict or None (an empty
  canvas), `background` an image URL served by the app or a data URL (`photo_data_url(image)`), or None.
- `unsaved_edits(value, loaded)` -> bool: whether the editor's pose differs from the loaded one; the page asks
  before replacing it. The root element also carries `data-unsaved="true|false"` for the browser side.

DOM contract (tests drive it): the root has `id="pose-editor"`; each drawn joint is one SVG circle with
`data-person` (0-based), `data-part` (body, feet, face, left_hand, right_hand) and `data-index` (OpenPose
order). Hidden joints are not drawn. Tool buttons carry `data-tool` (undo, redo, reset, add, mirror, larger,
smaller, delete, turn_left, turn_right, hide, show); the root's `data-selected` is the selected person (-1:
none), `data-people` the number of people, `data-undo` / `data-redo` the steps available. The drag mode is
the `select.pe-drag-mode` (joint, part, person).

Everything is inline (HTML, CSS, JS from ui/editor_assets/), so the browser loads nothing from elsewhere.
Drags run in the browser; person and joint tools call `pipelines.pose.edits` through the component's
server function `edit_pose`.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np

from pipelines.errors import UserError, ValidationError, shown
from pipelines.pose import draw, edits
from pipelines.pose.formats import OPENPOSE_VERSION
from pipelines.pose.keypoints import (
    JSON_FIELDS,
    PART_SIZES,
    VISIBILITY_THRESHOLD,
    VISIBLE_AT_THRESHOLD,
    PoseResult,
    from_openpose_json,
    to_openpose_json,
)
from pipelines.settings import Settings

ASSETS = Path(__file__).resolve().parent / "editor_assets"
STANDING_TEMPLATE = Path(__file__).resolve().parent.parent / "assets" / "poses" / "standing.json"

HISTORY_STEPS = 100  # undo steps kept in the browser
SCALE_STEP = 1.1  # Larger / Smaller scale the selected person by this factor
TURN_STEP_DEGREES = 30  # Turn turns a hand, the face or the feet by this much
MAX_HEIGHT_VH = 72  # the canvas is at most this share of the window's height
EMPTY_CANVAS = (1024, 1024)  # the canvas shown before any pose is loaded
HIT_PX = 9  # a joint can be grabbed up to this many screen pixels beyond its drawn edge
PHOTO_MAX_SIDE = 1024  # the faint background photo is sent at most this size
PHOTO_JPEG_QUALITY = 80

BODY_NAMES = (
    "nose", "neck", "right shoulder", "right elbow", "right wrist", "left shoulder", "left elbow",
    "left wrist", "right hip", "right knee", "right ankle", "left hip", "left knee", "left ankle",
    "right eye", "left eye", "right ear", "left ear",
)  # fmt: skip
# Feet are not in the OpenPose drawing; each foot point takes its ankle's colour (left: 13, right: 10).
FOOT_ANKLES = (13, 13, 13, 10, 10, 10)
# Joints drawn later lie on top: body joints above the hand roots and feet that share their places, so a
# wrist grabbed is the body's wrist.
DRAWING_ORDER = ("face", "left_hand", "right_hand", "feet", "body")
HAND_PARTS = ("left_hand", "right_hand")  # drawn with bones, shown or hidden together
# Which `draw.Widths` field sizes each part's joints.
RADIUS_OF = {
    "body": "joint_radius",
    "feet": "joint_radius",
    "face": "face_dot_radius",
    "left_hand": "hand_joint_radius",
    "right_hand": "hand_joint_radius",
}


def _joint_colors() -> dict[str, list[list[int]]]:
    body = draw.BODY_COLORS.tolist()
    hand = [list(draw.HAND_JOINT_COLOR)] * PART_SIZES["left_hand"]
    return {
        "body": body,
        "feet": [body[ankle] for ankle in FOOT_ANKLES],
        "face": [list(draw.FACE_COLOR)] * PART_SIZES["face"],
        "left_hand": hand,
        "right_hand": hand,
    }


def _tables() -> dict[str, Any]:
    """What the browser side needs, from the drawing's and the data model's own tables."""
    return {
        "version": OPENPOSE_VERSION,
        "parts": {
            part: {
                "field": JSON_FIELDS[part],
                "size": size,
                "visible_at_threshold": VISIBLE_AT_THRESHOLD[part],
            }
            for part, size in PART_SIZES.items()
        },
        "threshold": VISIBILITY_THRESHOLD,
        "limbs": draw.LIMBS,
        "limb_colors": draw.LIMB_COLORS.tolist(),
        "hand_bones": draw.HAND_BONES,
        "hand_bone_colors": draw.HAND_BONE_COLORS,
        "joint_colors": _joint_colors(),
        "widths": asdict(draw.Widths()),
        "width_steps": draw.WIDTH_STEPS_PX,
        "radius_of": RADIUS_OF,
        "drawing_order": DRAWING_ORDER,
        "hand_parts": HAND_PARTS,
        "body_names": BODY_NAMES,
        "significand_bits": edits.FLOAT32_SIGNIFICAND_BITS,
        "history": HISTORY_STEPS,
        "scale_step": SCALE_STEP,
        "turn_step": TURN_STEP_DEGREES,
        "turnable_parts": edits.TURNABLE_PARTS,
        "max_height_vh": MAX_HEIGHT_VH,
        "hit_px": HIT_PX,
        "empty_canvas": EMPTY_CANVAS,
    }


def _script() -> str:
    return f"const T = {json.dumps(_tables())};\n" + (ASSETS / "editor.js").read_text()


@dataclass
class EditorPanel:
    """The editor's components (see the module docstring for how the page uses them)."""

    html: gr.HTML
    loaded: gr.JSON

    @property
    def load_outputs(self) -> list[gr.components.Component]:
        return [self.html, self.loaded]


def _as_json(pose: PoseResult | dict | None, settings: Settings) -> dict:
    """The editor's value for a pose: on the editor's grid, hidden points 0, 0, 0."""
    if pose is None:
        pose = PoseResult(*EMPTY_CANVAS, [])
    elif isinstance(pose, dict):
        pose = edits.clean_edited_pose(pose, settings).pose
    return to_openpose_json(edits.on_grid(pose))


def load_pose(
    pose: PoseResult | dict | None, background: str | None = None, settings: Settings | None = None
) -> tuple[dict, dict]:
    """Updates for `panel.load_outputs`: the pose into the editor, history started again, and its copy."""
    value = _as_json(pose, settings or Settings.from_env())
    return gr.update(value=value, load_id=uuid.uuid4().hex, background=background or ""), value


def unsaved_edits(value: dict | None, loaded: dict | None, settings: Settings | None = None) -> bool:
    """Whether the editor's pose differs from the loaded one (exact coordinates and visibility)."""
    if value is None or loaded is None:
        return value != loaded
    settings = settings or Settings.from_env()
    return from_openpose_json(value, settings=settings) != from_openpose_json(loaded, settings=settings)


def editor_pose(value: dict, settings: Settings) -> edits.EditedPose:
    """The editor's value as a checked pose: how the page's `.change` handler reads the current pose."""
    return edits.clean_edited_pose(value, settings)


def photo_data_url(image: np.ndarray) -> str:
    """An RGB photo as a JPEG data URL for the faint background, at most PHOTO_MAX_SIDE on its longer side."""
    height, width = image.shape[:2]
    scale = min(1.0, PHOTO_MAX_SIDE / max(height, width))
    if scale < 1.0:
        image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, PHOTO_JPEG_QUALITY]
    )
    if not ok:
        raise ValidationError("The photo could not be encoded for the editor's background.")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _whole(request: dict, name: str) -> int:
    value = request.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError(f"The editor sent {name}={shown(value)}; a whole number is needed.")
    return value


def _number(request: dict, name: str) -> float:
    value = request.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValidationError(f"The editor sent {name}={shown(value)}; a number is needed.")
    return float(value)


def _shown_joint(pose: PoseResult, request: dict) -> tuple[PoseResult, str]:
    person, part, index = _whole(request, "person"), str(request.get("part")), _whole(request, "index")
    edited = edits.set_joint_visible(pose, person, part, index, True)
    _, where = edits.shown_position(pose, person, part, index)
    return edited, f"The joint is shown {where}; drag it into place."


# Tool name -> (pose, request, template, settings) -> (edited pose, note for the person).
EditOp = Callable[[PoseResult, dict, PoseResult, Settings], tuple[PoseResult, str]]
EDIT_OPS: dict[str, EditOp] = {
    "add": lambda pose, r, template, settings: (
        edits.add_person(pose, template, settings.max_pose_people),
        f"Added person {len(pose.people)} from the standing template.",
    ),
    "move": lambda pose, r, *_: (
        edits.move_person(pose, _whole(r, "person"), _number(r, "dx"), _number(r, "dy")),
        "",
    ),
    "scale": lambda pose, r, *_: (edits.scale_person(pose, _whole(r, "person"), _number(r, "factor")), ""),
    "mirror": lambda pose, r, *_: (
        edits.mirror_person(pose, _whole(r, "person")),
        "Mirrored, left and right swapped.",
    ),
    "turn": lambda pose, r, *_: (
        edits.turn_part(pose, _whole(r, "person"), str(r.get("part")), _number(r, "degrees")),
        "",
    ),
    "delete": lambda pose, r, *_: (edits.delete_person(pose, _whole(r, "person")), "Person deleted."),
    "hide": lambda pose, r, *_: (
        edits.set_joint_visible(pose, _whole(r, "person"), str(r.get("part")), _whole(r, "index"), False),
        "Joint hidden (written as 0, 0, 0).",
    ),
    "show": lambda pose, r, *_: _shown_joint(pose, r),
}


def _edit_function(settings: Settings, template: PoseResult) -> Callable[[dict], dict]:
    def edit_pose(request: dict) -> dict:
        """One tool on the editor's pose: {op, pose, person, ...} -> {pose, note} or {error}."""
        try:
            op = request.get("op") if isinstance(request, dict) else request
            if op not in EDIT_OPS:
                raise ValidationError(f"Unknown editor tool {shown(op)}.")
            checked = edits.clean_edited_pose(request.get("pose"), settings)
            edited, note = EDIT_OPS[op](checked.pose, request, template, settings)
            result = edits.clean_edited_pose(to_openpose_json(edited), settings)  # on the canvas, as drawn
        except UserError as error:
            return {"error": str(error)}
        notes = (checked.note, note, result.note)
        return {"pose": to_openpose_json(result.pose), "note": " ".join(filter(None, notes))}

    return edit_pose


def create_editor(
    pose: PoseResult | dict | None = None,
    background: str | None = None,
    settings: Settings | None = None,
    template: Path = STANDING_TEMPLATE,
) -> EditorPanel:
    """Build the editor inside the current gr.Blocks (see the module docstring for the interface)."""
    settings = settings or Settings.from_env()
    template_pose = from_openpose_json(template.read_bytes(), settings=settings)
    value = _as_json(pose, settings)
    html = gr.HTML(
        value=value,
        html_template=(ASSETS / "editor.html").read_text(),
        css_template=(ASSETS / "editor.css").read_text(),
        js_on_load=_script(),
        server_functions=[_edit_function(settings, template_pose)],
        apply_default_css=False,
        elem_id="pose-editor-panel",
        load_id="initial",
        background=background or "",
    )
    return EditorPanel(html=html, loaded=gr.JSON(value, visible=False))
