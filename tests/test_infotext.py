"""A1111 infotext both ways: samplers in A1111's names, our PNGs and A1111's read back, and
`python -m pipelines.generation --from-png` re-making an image pixel for pixel (tiny preset)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

import pipelines.generation.__main__ as cli
from pipelines.errors import ValidationError
from pipelines.generation import PNG_TEXT_KEY, SCHEDULERS, GenerationRequest
from pipelines.generation.metadata import infotext, parse_infotext, read_scheduler
from pipelines.pose import to_openpose_json
from tests.pose_samples import standing_crop

PARAMETERS = {
    "prompt": "a dancer, red coat",
    "negative_prompt": "blurry",
    "scheduler": "Euler a",
    "num_inference_steps": 3,
    "guidance_scale": 6.5,
    "seed": 41,
    "width": 64,
    "height": 96,
    "controlnet_scale": 0.75,
    "control_guidance_start": 0.1,
    "control_guidance_end": 0.9,
    "draw_mode": "full-pose",
    "thick_lines": True,
}

# Our name -> what A1111 writes (Sampler, Schedule type); DPM Single and DDPM keep ours.
A1111_NAMES = {
    "DDIM": ("DDIM", None),
    "DPM Multi": ("DPM++ 2M", None),
    "DPM Single": ("DPM Single", None),
    "Euler a": ("Euler a", None),
    "Euler": ("Euler", None),
    "Heun": ("Heun", None),
    "DPM2 a Karras": ("DPM2 a", "Karras"),
    "DPM2 Karras": ("DPM2", "Karras"),
    "LMS": ("LMS", None),
    "PNDM": ("PLMS", None),
    "DDPM": ("DDPM", None),
    "UniPC": ("UniPC", None),
}

# As AUTOMATIC1111 1.10 with sd-webui-controlnet writes it (its documented infotext layout).
A1111_TEXT = (
    "masterpiece, a dancer on a stage\n"
    "wide shot\n"
    "Negative prompt: lowres, bad anatomy\n"
    "Steps: 25, Sampler: DPM2 a, Schedule type: Karras, CFG scale: 7, Seed: 1234, Size: 832x1216, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.4, "
    'ControlNet 0: "Module: openpose_full, Model: thibaud_xl_openpose [c7b9cadd], Weight: 0.85, '
    "Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: 0.5, Threshold B: 0.5, "
    'Guidance Start: 0, Guidance End: 0.8, Pixel Perfect: False, Control Mode: Balanced", Version: v1.10.1'
)


def sampler_line(text: str) -> str:
    return text.splitlines()[-1]


@pytest.mark.parametrize(("ours", "a1111"), A1111_NAMES.items())
def test_samplers_are_written_in_a1111_names_and_read_back(ours, a1111):
    assert list(A1111_NAMES) == list(SCHEDULERS)
    text = infotext({**PARAMETERS, "scheduler": ours}, 41, {"preset": "tiny"})
    sampler, schedule = a1111
    expected = f"Sampler: {sampler}, " + (f"Schedule type: {schedule}, " if schedule else "") + "CFG scale"
    assert expected in sampler_line(text)
    assert parse_infotext(text).fields["scheduler"] == ours


def test_our_infotext_reads_back_into_the_same_request():
    text = infotext(PARAMETERS, 41, {"preset": "tiny", "base_model": "org/sdxl", "vae_model": "org/vae"})
    assert sampler_line(text) == (
        "Steps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: 41, Size: 64x96, Model: sdxl, VAE: vae, "
        'ControlNet 0: "Module: dw_openpose_full, Model: tiny, Weight: 0.75, Guidance Start: 0.1, '
        'Guidance End: 0.9", Pose mode: full-pose, Pose thick lines: True, Version: pose-studio'
    )
    parsed = parse_infotext(text)
    assert GenerationRequest(**parsed.request_fields()) == GenerationRequest(**PARAMETERS)
    assert parsed.ignored == {"Model": "sdxl", "VAE": "vae", "Version": "pose-studio"}
    assert parsed.notes == [] and parsed.unreadable == {}


def test_a_drafts_infotext_says_draft_and_reads_back_as_one():
    """A draft runs its recipe's sampler ("Euler trailing", not in the scheduler table): the text names it and
    says Draft, and reading it back asks for a draft instead of refusing the sampler."""
    drafted = {**PARAMETERS, "scheduler": "Euler trailing", "num_inference_steps": 4, "guidance_scale": 1.0}
    text = infotext({**drafted, "draft": True}, 41, {"preset": "tiny"})
    assert "Steps: 4, Sampler: Euler trailing, CFG scale: 1.0, " in sampler_line(text)
    assert sampler_line(text).endswith("Pose thick lines: True, Draft: True, Version: pose-studio")
    parsed = parse_infotext(text)
    assert parsed.unreadable == {} and parsed.fields["draft"] is True
    request = GenerationRequest(**parsed.request_fields())
    assert (request.draft, request.scheduler, request.num_inference_steps) == (True, "Euler a", 4)
    assert "Draft" not in infotext(PARAMETERS, 41, {"preset": "tiny"})  # a full-quality image says nothing


def test_a1111_infotext_reads_into_a_request_and_says_what_it_ignored():
    parsed = parse_infotext(A1111_TEXT)
    assert parsed.fields == {
        "prompt": "masterpiece, a dancer on a stage\nwide shot",
        "negative_prompt": "lowres, bad anatomy",
        "num_inference_steps": 25,
        "scheduler": "DPM2 a Karras",
        "guidance_scale": 7.0,
        "seed": 1234,
        "width": 832,
        "height": 1216,
        "controlnet_scale": 0.85,
        "control_guidance_start": 0.0,
        "control_guidance_end": 0.8,
        "draw_mode": "full-pose",  # its module, openpose_full
    }
    assert list(parsed.ignored) == [
        "Model hash",
        "Model",
        "Denoising strength",
        "ControlNet 0 Resize Mode",
        "ControlNet 0 Processor Res",
        "ControlNet 0 Threshold A",
        "ControlNet 0 Threshold B",
        "ControlNet 0 Pixel Perfect",
        "ControlNet 0 Control Mode",
        "Version",
    ]
    request = GenerationRequest(**parsed.request_fields(seed=7))
    request.validate()
    assert (request.seed, request.samples, request.draw_mode) == (7, 1, "full-pose")


@pytest.mark.parametrize(
    ("mode", "module"),
    [("full-pose", "dw_openpose_full"), ("body-pose", "openpose"), ("face-pose", "openpose_faceonly"),
     ("hand-pose", "none")],
)  # fmt: skip
def test_each_draw_mode_and_guidance_start_read_back_exactly(mode, module):
    parameters = {
        **PARAMETERS,
        "draw_mode": mode,
        "control_guidance_start": 0.35,
        "control_guidance_end": 0.7,
    }
    text = infotext(parameters, 41, {"preset": "tiny"})
    assert f'"Module: {module}, Model: tiny, Weight: 0.75, Guidance Start: 0.35, Guidance End: 0.7"' in text
    assert f"Pose mode: {mode}, Pose thick lines: True" in text
    parsed = parse_infotext(text)
    assert GenerationRequest(**parsed.request_fields()) == GenerationRequest(**parameters)
    assert parsed.notes == []


OLD_TEXT = (
    "a dancer\nSteps: 3, Sampler: Euler a, CFG scale: 6.5, Seed: 41, Size: 64x96, Model: tiny, "
    'ControlNet 0: "Module: none, Model: tiny, Weight: 0.75, Guidance Start: 0.0, Guidance End: 0.9", '
    "Pose hands: {hands}, Pose face: {face}, Pose thick lines: True, Version: pose-studio"
)


@pytest.mark.parametrize(
    ("hands", "face", "mode", "notes"),
    [
        (True, True, "full-pose", []),
        (False, False, "body-pose", []),
        # Body and hands, or body and face: no mode draws just those; full-pose keeps every stroke they had.
        (True, False, "full-pose",
         ["Pose hands: True, Pose face: False: a pose of body and hands alone has no draw mode: using "
          "full-pose, which adds face"]),
        (False, True, "full-pose",
         ["Pose hands: False, Pose face: True: a pose of body and face alone has no draw mode: using "
          "full-pose, which adds hands"]),
    ],
)  # fmt: skip
def test_old_pose_hands_and_face_texts_read_as_the_nearest_draw_mode(hands, face, mode, notes):
    parsed = parse_infotext(OLD_TEXT.format(hands=hands, face=face))
    assert parsed.fields["draw_mode"] == mode and parsed.notes == notes
    assert parsed.fields["control_guidance_start"] == 0.0
    assert "Pose hands" not in parsed.ignored and "ControlNet 0 Module" not in parsed.ignored
    GenerationRequest(**parsed.request_fields()).validate()


@pytest.mark.parametrize(
    ("module", "mode", "note"),
    [
        ("openpose", "body-pose", None),
        ("openpose_faceonly", "face-pose", None),
        ("dw_openpose_full", "full-pose", None),
        ("openpose_hand", "full-pose",
         "ControlNet 0 Module: openpose_hand: a pose of body and hands alone has no draw mode: using "
         "full-pose, which adds face"),
    ],
)  # fmt: skip
def test_a1111_openpose_modules_give_the_draw_mode(module, mode, note):
    parsed = parse_infotext(A1111_TEXT.replace("Module: openpose_full", f"Module: {module}"))
    assert parsed.fields["draw_mode"] == mode and parsed.notes == ([note] if note else [])


def test_a_module_that_is_not_openpose_is_ignored_and_leaves_the_default_mode():
    parsed = parse_infotext(A1111_TEXT.replace("Module: openpose_full", "Module: canny"))
    assert "draw_mode" not in parsed.fields and parsed.ignored["ControlNet 0 Module"] == "canny"
    assert GenerationRequest(**parsed.request_fields()).draw_mode == "body-pose"


def test_a1111_guidance_start_is_read_and_checked_with_the_end():
    parsed = parse_infotext(A1111_TEXT.replace("Guidance Start: 0,", "Guidance Start: 0.3,"))
    assert parsed.fields["control_guidance_start"] == 0.3 and parsed.notes == []
    late = parse_infotext(A1111_TEXT.replace("Guidance Start: 0,", "Guidance Start: 0.9,"))
    with pytest.raises(
        ValidationError, match=r"control_guidance_start \(0.9\) must be below control_guidance_end \(0.8\)"
    ):
        GenerationRequest.from_values(late.request_fields())


@pytest.mark.parametrize(
    ("sampler", "schedule", "ours", "notes"),
    [
        ("DPM2", None, "DPM2 Karras", []),  # A1111's automatic schedule of DPM2 is Karras
        ("DPM2", "Automatic", "DPM2 Karras", []),
        ("DPM2 a Karras", None, "DPM2 a Karras", []),  # A1111 before 1.9 and our old PNGs
        ("PLMS", None, "PNDM", []),
        ("PNDM", None, "PNDM", []),
        ("DPM Multi", None, "DPM Multi", []),
        (
            "DPM++ 2M Karras",
            None,
            "DPM Multi",
            ['Schedule type "Karras" is not available for DPM++ 2M: using DPM Multi\'s own schedule'],
        ),
        ("DPM++ SDE", "Karras", None, []),
    ],
)
def test_sampler_names_old_and_new(sampler, schedule, ours, notes):
    assert read_scheduler(sampler, schedule) == (ours, notes)


def test_a_sampler_we_lack_needs_an_override():
    text = A1111_TEXT.replace("Sampler: DPM2 a, Schedule type: Karras", "Sampler: DPM++ SDE")
    parsed = parse_infotext(text)
    assert "scheduler" not in parsed.fields
    with pytest.raises(ValidationError, match=r'the sampler "DPM\+\+ SDE" has no equivalent here; choose'):
        parsed.request_fields()
    assert parsed.request_fields(scheduler="UniPC")["scheduler"] == "UniPC"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("just a prompt", "the text has no parameters line"),
        ("p\nSteps: ten, Sampler: Euler, Seed: 1", 'infotext "Steps: ten" is not a whole number'),
        ("p\nSteps: 3, Sampler: Euler, Size: big", 'infotext "Size: big" is not WIDTHxHEIGHT'),
    ],
)
def test_bad_infotext_is_named(text, message):
    with pytest.raises(ValidationError, match=message):
        parse_infotext(text)


# --- --from-png ------------------------------------------------------------------------------------------


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main([*argv, "--preset", "tiny"])
    return code, capsys.readouterr().err


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_from_png_remakes_the_image_pixel_for_pixel(tmp_path, capsys):
    pose_file = tmp_path / "pose.json"
    pose_file.write_text(json.dumps(to_openpose_json(standing_crop())))
    first = tmp_path / "first"
    code, err = run_cli(
        capsys, "--pose", str(pose_file), "--prompt", "a dancer", "--negative-prompt", "blurry",
        "--width", "64", "--height", "96", "--num-inference-steps", "3", "--samples", "2", "--seed", "30",
        "--scheduler", "DPM2 Karras", "--guidance-scale", "5.5", "--controlnet-scale", "0.8",
        "--draw-mode", "hand-pose", "--control-guidance-start", "0.2", "--out", str(first),
    )  # fmt: skip
    assert code == 0, err
    original = first / "sample-2-seed-31.png"
    with_pose, beside = tmp_path / "posed", tmp_path / "beside"
    code, err = run_cli(
        capsys, "--from-png", str(original), "--pose", str(pose_file), "--out", f"{with_pose}"
    )
    assert code == 0, err
    code, err = run_cli(capsys, "--from-png", str(original), "--out", str(beside))
    assert code == 0, err
    assert f"note: pose from {first / 'pose.json'}" in err
    assert "note: not used from the PNG: Model, Version" in err
    for again in (with_pose / "sample-1-seed-31.png", beside / "sample-1-seed-31.png"):
        assert np.array_equal(pixels(again), pixels(original))
        assert Image.open(again).text[PNG_TEXT_KEY] == Image.open(original).text[PNG_TEXT_KEY]
    overridden = tmp_path / "overridden"
    code, err = run_cli(capsys, "--from-png", str(original), "--seed", "5", "--out", str(overridden))
    assert code == 0, err
    saved = json.loads((overridden / "result.json").read_text())["parameters"]
    assert (saved["seed"], saved["scheduler"], saved["guidance_scale"], saved["draw_mode"]) == (
        5,
        "DPM2 Karras",
        5.5,
        "hand-pose",
    )
    assert saved["control_guidance_start"] == 0.2
    # A folder from before pose.json: the conditioning image beside the PNG is the pose, used as it is.
    (first / "pose.json").unlink()
    code, err = run_cli(capsys, "--from-png", str(original), "--out", str(tmp_path / "old"))
    assert code == 0, err
    assert f"note: pose from {first / 'conditioning.png'}" in err
    assert np.array_equal(pixels(tmp_path / "old" / "sample-1-seed-31.png"), pixels(original))


def test_from_png_errors_are_one_line(tmp_path, capsys):
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    code, err = run_cli(capsys, "--from-png", str(plain), "--out", str(tmp_path / "out"))
    assert code == 2
    assert err.strip().startswith('error: the image has no "parameters" text')
    text = tmp_path / "a1111" / "a1111.png"
    text.parent.mkdir()
    chunk = PngInfo()
    chunk.add_text(PNG_TEXT_KEY, A1111_TEXT)
    Image.new("RGB", (8, 8)).save(text, pnginfo=chunk)
    code, err = run_cli(capsys, "--from-png", str(text), "--out", str(tmp_path / "out"))
    assert code == 2
    assert (
        "error: the PNG does not carry its pose and there is no pose.json or conditioning.png beside it"
        in err
    )
