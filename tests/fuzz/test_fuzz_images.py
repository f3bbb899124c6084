"""Fuzz: uploaded bytes -> the image loader -> DWPose (the tiny stand-in models) -> drawing. Every input ends
as an ImageError or a pose at the image's size drawn over it; nothing else may escape."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from pipelines.errors import ImageError
from pipelines.images import display_copy, load_image
from pipelines.pose import PoseEstimator, draw_overlay, draw_pose
from pipelines.settings import Settings
from tests.fuzz.strategies import fuzz_settings, image_files

MAX_PIXELS = 4_000_000  # a tenth of the default cap keeps each case fast; the cap itself is tested elsewhere


@pytest.fixture(scope="module")
def estimator(tmp_path_factory) -> PoseEstimator:
    folder = tmp_path_factory.mktemp("tiny-pose")
    return PoseEstimator.from_settings(Settings().replace(pose_models="tiny", cache_dir=str(folder)))


@fuzz_settings("images")
@given(data=image_files())
def test_uploads_are_decoded_and_detected_or_refused(estimator, data):
    try:
        image = load_image(data, max_pixels=MAX_PIXELS)
    except ImageError as error:
        assert str(error) and "\n" not in str(error)
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and image.flags.writeable
    height, width = image.shape[:2]
    assert 0 < width * height <= MAX_PIXELS
    result = estimator.detect(image)
    assert (result.width, result.height) == (width, height)
    for person in result.people:
        assert all(np.isfinite(points).all() for points in person.parts().values())
    shown = display_copy(image, 256)
    assert draw_overlay(shown, result, "full-pose").shape == shown.shape
    assert draw_pose(result, "body-pose").shape == image.shape
