"""Fuzz: pose JSON text and Python values -> the reader -> drawing. Every input ends as a ValidationError
or a pose that draws, exports and reads back unchanged; nothing else may escape."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from pipelines.errors import ValidationError
from pipelines.images import fit_within
from pipelines.pose import MODES, draw_conditioning, draw_pose, from_openpose_json, to_openpose_json
from pipelines.pose.keypoints import PoseResult
from pipelines.settings import Settings
from tests.fuzz.strategies import fuzz_settings, json_text_of, pose_documents, pose_objects

SETTINGS = Settings()
DRAW_SIDE = 256  # drawings fit inside this: the reader's caps, not the drawing size, are under test
TEXT_ONLY_CAPS = ("-digit integer", "every number must be finite", "which overflows")
MODE_NAMES = st.sampled_from([mode.value for mode in MODES])  # one drawn per case; the cases cover them all


def _read(data: object) -> PoseResult | None:
    try:
        return from_openpose_json(data, settings=SETTINGS)
    except ValidationError as error:
        assert str(error) and "\n" not in str(error)
        return None


def _check(result: PoseResult, mode: str) -> None:
    assert isinstance(result.width, int) and isinstance(result.height, int)
    assert result.width * result.height <= SETTINGS.max_pixels
    assert len(result.people) <= SETTINGS.max_pose_people
    for person in result.people:
        for points in person.parts().values():
            assert points.dtype == np.float32 and np.isfinite(points).all()
    size = fit_within(result.width, result.height, DRAW_SIDE)
    drawing = draw_pose(result, mode, size=size)
    assert drawing.shape == (size[1], size[0], 3) and drawing.dtype == np.uint8
    assert draw_conditioning(result, (64, 96), "full-pose").shape == (96, 64, 3)
    again = from_openpose_json(to_openpose_json(result), settings=SETTINGS)
    assert (again.width, again.height, len(again.people)) == (result.width, result.height, len(result.people))


@fuzz_settings("pose_json")
@given(pose_documents(), MODE_NAMES)
def test_pose_json_text_is_read_or_refused(text, mode):
    result = _read(text)
    if result is not None:
        _check(result, mode)
    as_bytes = _read(text.encode("utf-8", "surrogatepass"))
    assert (as_bytes is None) == (result is None)


@fuzz_settings("pose_json")
@given(pose_objects(), MODE_NAMES)
def test_pose_values_are_read_or_refused(value, mode):
    result = _read(value)
    if result is not None:
        _check(result, mode)
    text = json_text_of(value)
    try:
        from_text = from_openpose_json(text, settings=SETTINGS)
    except ValidationError as error:
        # The text parser checks every number, also in fields the reader then ignores (it must: Python's own
        # digit limit fails inside json.loads); only those number caps may refuse what the value passed.
        assert result is None or any(cap in str(error) for cap in TEXT_ONLY_CAPS), (str(error), text[:200])
        return
    if result is not None:  # a value the reader takes reads the same from its JSON text
        assert (from_text.width, from_text.height) == (result.width, result.height)
