"""Overlays and cut-outs on known detections."""

import numpy as np
import pytest

from tfseg.postprocess.host import ImageDetections
from tfseg.predict.draw import cutouts, draw_overlay, instance_colour


def known_detections():
    """A 10 x 8 L-shaped mask at (x 20..30, y 20..28) in a 40 x 50 image (label above it)."""
    crop = np.ones((8, 10), bool)
    crop[:4, 5:] = False
    return ImageDetections(np.array([[20, 20, 30, 28]], np.float32), np.array([0.8], np.float32),
                           np.array([1], np.int32), [crop], np.array([[20, 20]], np.int32), 40, 50)


def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)


def test_overlay_tints_only_the_mask_inside_the_box():
    original, detections = image(), known_detections()
    drawn = draw_overlay(original, detections, ["a", "b"], alpha=0.5, line_width=1)
    colour = np.array(instance_colour(0), np.float32)
    # Inside the mask, away from the box outline and label: the 50/50 blend.
    expected = (0.5 * original[25, 22] + 0.5 * colour).astype(np.uint8)
    np.testing.assert_array_equal(drawn[25, 22], expected)
    # Inside the box but outside the mask (the L's notch), away from the outline: untouched.
    np.testing.assert_array_equal(drawn[23, 27], original[23, 27])
    # Far from the detection: untouched. The box outline is drawn in the instance colour.
    np.testing.assert_array_equal(drawn[35, 5], original[35, 5])
    np.testing.assert_array_equal(drawn[27, 29], instance_colour(0))
    assert not np.shares_memory(drawn, original)


@pytest.mark.parametrize("background", ["transparent", "black"])
def test_cutouts_are_box_sized_and_masked(background):
    original, detections = image(), known_detections()
    (cut,) = cutouts(original, detections, background)
    crop = detections.mask_crops[0]
    assert cut.shape == (8, 10, 4 if background == "transparent" else 3)
    np.testing.assert_array_equal(cut[..., :3][crop], original[20:28, 20:30][crop])
    if background == "transparent":
        np.testing.assert_array_equal(cut[..., 3], crop * 255)
    else:
        assert not np.any(cut[~crop])
