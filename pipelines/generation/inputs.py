"""What a pose image is: a drawn OpenPose skeleton to use as it is, or a photo to run DWPose on. The CLI's
`--pose-kind auto` and the app's upload panel both decide it here, so they agree on every image."""

from __future__ import annotations

import cv2
import numpy as np

# A skeleton image is mostly black background with a few strokes in the OpenPose palette, whose colours are
# all fully saturated hues (faces are white dots, too few to matter). A photo with a black background fails
# the saturation test; a colourful photo fails the background test.
BLACK_LEVEL = 24  # max channel value still counted as background
MIN_BACKGROUND_FRACTION = 0.6
MIN_SATURATED_FRACTION = 0.6  # of the non-background pixels
SATURATION_LEVEL = 150  # OpenCV HSV saturation (0-255) counted as "palette colour"


def is_openpose_skeleton(image: np.ndarray) -> bool:
    """True for a drawn OpenPose skeleton (RGB uint8): mostly black, the rest in palette colours."""
    background = image.max(axis=2) <= BLACK_LEVEL
    foreground_count = int((~background).sum())
    if background.mean() < MIN_BACKGROUND_FRACTION or foreground_count == 0:
        return False
    saturation = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1]
    saturated = int((saturation[~background] >= SATURATION_LEVEL).sum())
    return saturated / foreground_count >= MIN_SATURATED_FRACTION
