"""Masks of kept detections from known coefficients and prototypes."""

import numpy as np
import tensorflow as tf

from tfseg.postprocess.masks import detection_masks


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def test_masks_from_known_coefficients_cropped_at_prototype_resolution():
    # P = 4 (S = 16). Prototype 0: +10 everywhere; prototype 1: a ramp 0..3 along x.
    ramp = np.tile(np.arange(4, dtype=np.float32), (4, 1))
    prototypes = np.stack([np.full((4, 4), 10.0, np.float32), ramp], axis=-1)[None]  # [1, 4, 4, 2]
    coefficients = np.array([[[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]], np.float32)  # [1, 3, 2]
    boxes = np.array([[[0, 0, 8, 8],      # proto pixels x, y in {0, 1}
                       [4, 8, 16, 16],    # proto columns 1..3, rows 2..3
                       [0, 0, 0, 0]]],    # padding row
                     np.float32)
    masks = detection_masks(tf.constant(coefficients), tf.constant(prototypes),
                            tf.constant(boxes)).numpy()[0]
    expected_first = np.zeros((4, 4), np.float32)
    expected_first[:2, :2] = sigmoid(10.0)
    np.testing.assert_allclose(masks[0], expected_first, rtol=1e-6)
    expected_second = np.zeros((4, 4), np.float32)
    expected_second[2:, 1:] = sigmoid(ramp[2:, 1:])
    np.testing.assert_allclose(masks[1], expected_second, rtol=1e-6)
    assert not np.any(masks[2])
