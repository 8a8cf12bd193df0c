"""tfseg.ops.masks: prototype combination and cropping with hand-worked answers."""

import numpy as np
import tensorflow as tf

from tfseg.ops.masks import combine_prototypes, crop_to_boxes


def test_combine_prototypes_is_a_weighted_sum_per_pixel():
    prototypes = np.zeros((1, 2, 2, 3), np.float32)
    prototypes[0, :, :, 0] = [[1, 2], [3, 4]]
    prototypes[0, :, :, 1] = 1.0
    prototypes[0, :, :, 2] = [[0, 0], [0, 5]]
    coefficients = np.array([[[2.0, -1.0, 0.0], [0.0, 0.0, 1.0]]], np.float32)
    logits = combine_prototypes(tf.constant(coefficients), tf.constant(prototypes)).numpy()
    np.testing.assert_allclose(logits[0, 0], [[1, 3], [5, 7]])
    np.testing.assert_allclose(logits[0, 1], [[0, 0], [0, 5]])


def test_crop_keeps_pixels_whose_centre_is_inside_half_open_box():
    masks = tf.ones([1, 3, 3])
    # Column centres 0.5, 1.5, 2.5: x in [0.5, 2.5) keeps columns 0 and 1.
    # Row centres: y in [0, 1) keeps row 0 only.
    cropped = crop_to_boxes(masks, tf.constant([[0.5, 0.0, 2.5, 1.0]])).numpy()[0]
    np.testing.assert_array_equal(cropped, [[1, 1, 0], [0, 0, 0], [0, 0, 0]])


def test_crop_batched_boxes_and_empty_box():
    masks = tf.fill([2, 2, 4, 4], 0.5)
    boxes = tf.constant([[[0, 0, 4, 4], [0, 0, 0, 0]], [[2, 2, 4, 3], [1, 0, 2, 4]]], tf.float32)
    cropped = crop_to_boxes(masks, boxes).numpy()
    assert cropped[0, 0].sum() == 0.5 * 16
    assert cropped[0, 1].sum() == 0
    np.testing.assert_array_equal(np.argwhere(cropped[1, 0]), [[2, 2], [2, 3]])
    np.testing.assert_array_equal(np.argwhere(cropped[1, 1])[:, 1], [1, 1, 1, 1])
