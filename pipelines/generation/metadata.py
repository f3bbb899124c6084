"""The text saved with each PNG, in the "parameters" layout of AUTOMATIC1111's web UI, which image viewers,
Civitai and most SD tools parse: prompt, "Negative prompt: ...", then one line of "Key: value" pairs.

Both ways: `infotext` writes it (samplers in A1111's names, see `schedulers.SCHEDULERS`), `parse_infotext`
reads ours and A1111's back into request fields, so a PNG's image can be made again."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from pipelines.errors import ImageError, ValidationError
from pipelines.generation.schedulers import (
    A1111_DEFAULT_SCHEDULES,
    A1111_SCHEDULES,
    SCHEDULERS,
    a1111_name,
)
from pipelines.pose.draw import CONDITIONING_MODES, MODES, DrawMode, Layer

PNG_TEXT_KEY = "parameters"
NEGATIVE_PREFIX = "Negative prompt:"
CONTROLNET_KEYS = ("ControlNet 0", "ControlNet")  # sd-webui-controlnet's first unit; older versions: no index
# Pose-conditioning fields A1111 has no key for; ours, so a PNG re-makes its image exactly.
POSE_KEYS = {"Pose mode": "draw_mode", "Pose thick lines": "thick_lines"}
# Before draw modes, our texts said which parts were drawn over the body: key -> the layer it added.
OLD_POSE_KEYS = {"Pose hands": Layer.HANDS, "Pose face": Layer.FACE}
# sd-webui-controlnet's OpenPose preprocessors ("Module") -> the layers they draw; the first that draws a
# mode's layers is written for it (a mode without one, hand-pose, writes "none": the image was pre-drawn).
A1111_MODULES: dict[str, frozenset[Layer]] = {
    "dw_openpose_full": frozenset({Layer.BODY, Layer.HANDS, Layer.FACE}),
    "openpose_full": frozenset({Layer.BODY, Layer.HANDS, Layer.FACE}),
    "openpose": frozenset({Layer.BODY}),
    "openpose_faceonly": frozenset({Layer.FACE}),
    "openpose_face": frozenset({Layer.BODY, Layer.FACE}),
    "openpose_hand": frozenset({Layer.BODY, Layer.HANDS}),
}
NO_MODULE = "none"
RECORD_KEYS = ("Model", "VAE", "Version")  # what made the image, for the record: no setting to fill in
DRAFT_KEY = "Draft"  # written only for Draft mode's images, whose sampler is the distillation's own
# A "Key: value" pair of the last line; a value in double quotes may hold commas (A1111's own pattern).
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE = re.compile(r"(\d+)\s*x\s*(\d+)")
MIN_PARAMS_LINE = 3  # fewer "Key: value" pairs on the last line: it is part of the prompt (as A1111 decides)


def model_name(model_id: str) -> str:
    """`stabilityai/stable-diffusion-xl-base-1.0` or `/models/sdxl-base` -> the last part."""
    return PurePosixPath(model_id.rstrip("/")).name or model_id


def infotext(parameters: dict[str, Any], seed: int, models: dict[str, str]) -> str:
    """The text of one sample: `parameters` is the resolved request, `seed` this sample's own seed."""
    controlnet = ", ".join(
        [
            f"Module: {a1111_module(parameters['draw_mode'])}",
            f"Model: {model_name(models.get('controlnet_model', models['preset']))}",
            f"Weight: {parameters['controlnet_scale']}",
            f"Guidance Start: {parameters['control_guidance_start']}",
            f"Guidance End: {parameters['control_guidance_end']}",
        ]
    )
    sampler, schedule = a1111_name(parameters["scheduler"])
    settings = {
        "Steps": parameters["num_inference_steps"],
        "Sampler": sampler,
        "Schedule type": schedule,
        "CFG scale": parameters["guidance_scale"],
        "Seed": seed,
        "Size": f"{parameters['width']}x{parameters['height']}",
        "Model": model_name(models.get("base_model", models["preset"])),
        "VAE": model_name(models["vae_model"]) if "vae_model" in models else None,
        "ControlNet 0": f'"{controlnet}"',
        **{key: parameters[name] for key, name in POSE_KEYS.items() if name in parameters},
        DRAFT_KEY: True if parameters.get("draft") else None,  # its recipe fixed the sampler, steps and CFG
        "Version": "pose-studio",
    }
    lines = [parameters["prompt"]]
    if parameters["negative_prompt"]:
        lines.append(f"{NEGATIVE_PREFIX} {parameters['negative_prompt']}")
    lines.append(", ".join(f"{key}: {value}" for key, value in settings.items() if value is not None))
    return "\n".join(lines)


def a1111_module(draw_mode: str) -> str:
    """sd-webui-controlnet's name for the preprocessor that draws what `draw_mode` draws."""
    layers = frozenset(MODES[DrawMode(draw_mode)].layers)
    return next((module for module, drawn in A1111_MODULES.items() if drawn == layers), NO_MODULE)


def mode_drawing(layers: frozenset[Layer]) -> tuple[str, str | None]:
    """The pose mode drawing `layers`, else the one with the fewest layers that draws them all (body and
    hands, say: full-pose, which adds the face), with a note saying what it adds."""
    fits = [mode for mode in CONDITIONING_MODES if layers <= set(MODES[mode].layers)]
    mode = min(fits, key=lambda fit: len(MODES[fit].layers))
    added = [layer.value for layer in MODES[mode].layers if layer not in layers]
    if not added:
        return mode.value, None
    drawn = " and ".join(layer.value for layer in MODES[mode].layers if layer in layers)
    return (
        mode.value,
        f"a pose of {drawn} alone has no draw mode: using {mode.value}, which adds {', '.join(added)}",
    )


def png_text(parameters: dict[str, Any], seed: int, models: dict[str, str]) -> PngInfo:
    """The PNG text chunk of one sample, for `Image.save(..., pnginfo=...)`; every saved image uses it."""
    text = PngInfo()
    text.add_text(PNG_TEXT_KEY, infotext(parameters, seed, models))
    return text


# ---------------------------------------------------------------------------------------------------------
# Reading it back


@dataclass
class Infotext:
    """What a PNG's parameters say, as GenerationRequest fields."""

    fields: dict[str, Any]  # GenerationRequest field -> value
    ignored: dict[str, str] = field(default_factory=dict)  # keys this app does not use -> their text
    notes: list[str] = field(default_factory=list)  # values read as the nearest thing this app has
    # field -> why it could not be read (an A1111 sampler we lack): the request needs an override for it
    unreadable: dict[str, str] = field(default_factory=dict)

    def request_fields(self, **overrides: Any) -> dict[str, Any]:
        """The fields with `overrides` (None values skipped) on top; ValidationError if a field that could
        not be read is not overridden."""
        given = {name: value for name, value in overrides.items() if value is not None}
        for name, problem in self.unreadable.items():
            if name not in given:
                raise ValidationError(problem)
        return {**self.fields, "samples": 1, **given}


def _number(kind: Callable[[str], Any]) -> Callable[[str, str], Any]:
    def read(key: str, text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            noun = "a whole number" if kind is int else "a number"
            raise ValidationError(f'infotext "{key}: {text}" is not {noun}') from None

    return read


def _boolean(key: str, text: str) -> bool:
    values = {"true": True, "false": False}
    if text.lower() not in values:
        raise ValidationError(f'infotext "{key}: {text}" is not True or False')
    return values[text.lower()]


def _text(key: str, text: str) -> str:
    return text


# infotext key -> (GenerationRequest field, reader)
FIELD_KEYS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "Steps": ("num_inference_steps", _number(int)),
    "CFG scale": ("guidance_scale", _number(float)),
    "Seed": ("seed", _number(int)),
    "Pose mode": ("draw_mode", _text),
    "Pose thick lines": ("thick_lines", _boolean),
    DRAFT_KEY: ("draft", _boolean),
}
CONTROLNET_FIELDS: dict[str, tuple[str, Callable[[str, str], Any]]] = {
    "Weight": ("controlnet_scale", _number(float)),
    "Guidance Start": ("control_guidance_start", _number(float)),
    "Guidance End": ("control_guidance_end", _number(float)),
}
SCHEDULER_KEYS = ("Sampler", "Schedule type")


def _pairs(line: str) -> dict[str, str]:
    pairs = {}
    for key, value in _PARAM.findall(line):
        value = value.strip()
        if value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                value = value[1:-1]
        pairs[key.strip()] = value
    return pairs


def _split(text: str) -> tuple[str, str, dict[str, str]]:
    """(prompt, negative prompt, the last line's pairs), as A1111's parse_generation_parameters splits."""
    lines = text.strip().split("\n")
    pairs = _pairs(lines[-1]) if len(_PARAM.findall(lines[-1])) >= MIN_PARAMS_LINE else {}
    if pairs:
        lines = lines[:-1]
    prompt: list[str] = []
    negative: list[str] | None = None
    for line in lines:
        if negative is None and line.startswith(NEGATIVE_PREFIX):
            negative = [line[len(NEGATIVE_PREFIX) :].strip()]
        elif negative is not None:
            negative.append(line)
        else:
            prompt.append(line)
    return "\n".join(prompt), "\n".join(negative or []), pairs


# A1111 sampler name (with its schedule, None for the plain one) -> ours.
_FROM_A1111: dict[tuple[str, str | None], str] = {a1111_name(name): name for name in SCHEDULERS}


def read_scheduler(sampler: str, schedule: str | None) -> tuple[str | None, list[str]]:
    """Our scheduler for an infotext `Sampler` (A1111's or ours, old "DPM++ 2M Karras" style names too)
    and `Schedule type`; None if we have none. Also notes on what could not be kept."""
    if sampler in SCHEDULERS and schedule is None:
        return sampler, []
    for label in A1111_SCHEDULES:  # "DPM2 Karras" -> ("DPM2", "Karras"), as A1111 reads its old names
        if sampler.lower().endswith(" " + label.lower()):
            sampler, schedule = sampler[: -len(label) - 1], label
            break
    if schedule in (None, "Automatic"):
        schedule = A1111_DEFAULT_SCHEDULES.get(sampler)
    if (sampler, schedule) in _FROM_A1111:
        return _FROM_A1111[sampler, schedule], []
    plain = _FROM_A1111.get((sampler, None)) or (sampler if sampler in SCHEDULERS else None)
    if plain is None:
        return None, []
    note = f'Schedule type "{schedule}" is not available for {sampler}: using {plain}\'s own schedule'
    return plain, [note]


def parse_infotext(text: str) -> Infotext:
    """Read an A1111-layout parameters text (ours or A1111's) into GenerationRequest fields. Keys this app
    does not use are listed in `ignored`; a sampler it lacks is listed in `unreadable`."""
    prompt, negative, pairs = _split(text)
    if not pairs:
        raise ValidationError('the text has no parameters line ("Steps: ..., Sampler: ..., Seed: ...")')
    result = Infotext(fields={"prompt": prompt, "negative_prompt": negative})
    controlnet = next((key for key in CONTROLNET_KEYS if key in pairs), None)
    module = None
    for key, value in pairs.items():
        if key in OLD_POSE_KEYS:
            continue  # read below, unless the text says its "Pose mode"
        if key in FIELD_KEYS:
            name, read = FIELD_KEYS[key]
            result.fields[name] = read(key, value)
        elif key == "Size":
            size = _SIZE.fullmatch(value)
            if size is None:
                raise ValidationError(f'infotext "Size: {value}" is not WIDTHxHEIGHT')
            result.fields["width"], result.fields["height"] = int(size[1]), int(size[2])
        elif key == controlnet:
            module = _read_controlnet(key, value, result)
        elif key not in SCHEDULER_KEYS:
            result.ignored[key] = value
    if "draw_mode" not in result.fields:
        _read_draw_mode(result, pairs, controlnet, module)
    if "Sampler" in pairs and not result.fields.get("draft"):  # a draft runs its recipe's sampler
        sampler, schedule = pairs["Sampler"], pairs.get("Schedule type")
        name, notes = read_scheduler(sampler, schedule)
        result.notes += notes
        if name is None:
            result.unreadable["scheduler"] = (
                f'the sampler "{sampler}" has no equivalent here; choose a scheduler '
                f"({', '.join(SCHEDULERS)})"
            )
        else:
            result.fields["scheduler"] = name
    return result


def _read_controlnet(key: str, value: str, result: Infotext) -> str | None:
    """sd-webui-controlnet's unit text: "Module: ..., Model: ..., Weight: 1, ..., Guidance Start: 0,
    Guidance End: 1, ..."; returns its module when it is an OpenPose preprocessor (A1111_MODULES)."""
    module = None
    for unit_key, text in _pairs(value).items():
        if unit_key in CONTROLNET_FIELDS:
            name, read = CONTROLNET_FIELDS[unit_key]
            result.fields[name] = read(f"{key} {unit_key}", text)
        elif unit_key == "Module" and text in A1111_MODULES:
            module = text
        elif unit_key != "Model" and (unit_key, text) != ("Module", NO_MODULE):
            result.ignored[f"{key} {unit_key}"] = text
    return module


def _read_draw_mode(
    result: Infotext, pairs: dict[str, str], controlnet: str | None, module: str | None
) -> None:
    """The draw mode of a text without "Pose mode": from our older "Pose hands"/"Pose face" (drawn over the
    body), else from an A1111 OpenPose module; the nearest mode, noted, when none draws just those parts."""
    old_keys = [key for key in OLD_POSE_KEYS if key in pairs]
    if old_keys:
        layers = {Layer.BODY} | {OLD_POSE_KEYS[key] for key in old_keys if _boolean(key, pairs[key])}
        source = ", ".join(f"{key}: {pairs[key]}" for key in old_keys)
    elif module is not None:
        layers, source = set(A1111_MODULES[module]), f"{controlnet} Module: {module}"
    else:
        return
    mode, note = mode_drawing(frozenset(layers))
    result.fields["draw_mode"] = mode
    if note:
        result.notes.append(f"{source}: {note}")


def read_png_infotext(source: str | Path | bytes) -> str:
    """The parameters text of a PNG (a path or its bytes); ImageError if it is not a PNG or has none."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            image.load()
            text = getattr(image, "text", {}).get(PNG_TEXT_KEY)
    except (UnidentifiedImageError, OSError) as error:
        raise ImageError(f"could not read the PNG: {error}") from None
    if not text:
        raise ImageError(
            f'the image has no "{PNG_TEXT_KEY}" text (it was not saved by Pose Studio or AUTOMATIC1111, or '
            "the text was stripped)"
        )
    return text
