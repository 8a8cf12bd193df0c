"""Affine matrices on hand-worked points, and their application to boxes and images."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.ops.affine import (horizontal_flip, rotation, scaling, shearing, transform_boxes,
                              transform_points, translation, warp_image)


def _apply(matrix, points):
    return transform_points(matrix, tf.constant(points, tf.float32)).numpy()


def test_matrices_on_hand_worked_points():
    np.testing.assert_allclose(_apply(translation(3, -2), [[1, 1], [0, 0]]), [[4, -1], [3, -2]])
    np.testing.assert_allclose(_apply(scaling(2, 0.5), [[3, 4]]), [[6, 2]])
    np.testing.assert_allclose(_apply(scaling(1.5), [[2, -2]]), [[3, -3]])
    # 90 degrees counter-clockwise on screen (y down): right -> up, down -> right.
    np.testing.assert_allclose(_apply(rotation(90), [[1, 0], [0, 1]]), [[0, -1], [1, 0]], atol=1e-6)
    s = np.sqrt(0.5)
    np.testing.assert_allclose(_apply(rotation(45), [[1, 0]]), [[s, -s]], atol=1e-6)
    # shear 45 degrees in x: x += tan(45) * y.
    np.testing.assert_allclose(_apply(shearing(45, 0), [[1, 2]]), [[3, 2]], atol=1e-6)
    np.testing.assert_allclose(_apply(shearing(0, 45), [[1, 2]]), [[1, 3]], atol=1e-6)
    np.testing.assert_allclose(_apply(horizontal_flip(10), [[0, 5], [2.5, 1]]), [[10, 5], [7.5, 1]])


def test_composition_order():
    # Rotate 90 about the point (5, 5): translate to the origin, rotate, translate back.
    about_centre = translation(5, 5) @ rotation(90) @ translation(-5, -5)
    np.testing.assert_allclose(_apply(about_centre, [[6, 5], [5, 5]]), [[5, 4], [5, 5]], atol=1e-5)
    # Scale then translate differs from translate then scale.
    np.testing.assert_allclose(_apply(translation(1, 0) @ scaling(2), [[1, 1]]), [[3, 2]])
    np.testing.assert_allclose(_apply(scaling(2) @ translation(1, 0), [[1, 1]]), [[4, 2]])


def test_transform_boxes_takes_the_corners_hull():
    boxes = tf.constant([[2, 1, 6, 3]], tf.float32)
    np.testing.assert_allclose(transform_boxes(horizontal_flip(10), boxes), [[4, 1, 8, 3]])
    about_origin_90 = rotation(90)  # (x, y) -> (y, -x)
    np.testing.assert_allclose(transform_boxes(about_origin_90, boxes), [[1, -6, 3, -2]], atol=1e-5)
    # 45 degrees about the box centre: a 2x2 square becomes a diamond of half-diagonal sqrt(2).
    square = tf.constant([[4, 4, 6, 6]], tf.float32)
    turn = translation(5, 5) @ rotation(45) @ translation(-5, -5)
    r = np.sqrt(2)
    np.testing.assert_allclose(transform_boxes(turn, square), [[5 - r, 5 - r, 5 + r, 5 + r]], atol=1e-5)


@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_warp_flip_is_an_exact_mirror(interpolation):
    image = np.arange(5 * 7 * 2, dtype=np.float32).reshape(5, 7, 2)
    out = warp_image(tf.constant(image), horizontal_flip(7), 5, 7, interpolation).numpy()
    np.testing.assert_allclose(out, image[:, ::-1], atol=1e-4)


def test_warp_rotation_about_centre_and_translation():
    image = np.random.default_rng(0).integers(0, 255, [6, 6, 1]).astype(np.uint8)
    turn = translation(3, 3) @ rotation(90) @ translation(-3, -3)
    out = warp_image(tf.constant(image), turn, 6, 6, "nearest").numpy()
    # Counter-clockwise on screen is what np.rot90 does to the (row, column) array.
    np.testing.assert_array_equal(out[..., 0], np.rot90(image[..., 0]))
    shifted = warp_image(tf.constant(image), translation(2, 1), 6, 6, "nearest", fill_value=7).numpy()
    np.testing.assert_array_equal(shifted[1:, 2:], image[:-1, :-2])
    assert np.all(shifted[0] == 7) and np.all(shifted[:, :2] == 7)


def test_warp_scale_up_keeps_a_block_where_the_matrix_sends_it():
    mask = np.zeros([8, 8, 1], np.uint8)
    mask[2:4, 2:4] = 1  # the square [2, 4) x [2, 4)
    out = warp_image(tf.constant(mask), scaling(2), 16, 16, "nearest").numpy()[..., 0]
    expected = np.zeros([16, 16], np.uint8)
    expected[4:8, 4:8] = 1  # [4, 8) x [4, 8)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_nearest_fast_path_samples_exactly_as_the_kernel(dtype):
    """Scale-and-translate nearest warps take the separable gather path; on random matrices
    (flips, up- and down-scaling, sources reaching past every border, half-pixel ties) it
    must give the kernel's output bit for bit, fill included."""
    from tfseg.ops.affine import _warp_projective

    rng = np.random.default_rng(7)
    for _ in range(40):
        height, width, channels = (int(v) for v in rng.integers([4, 4, 1], [40, 40, 9]))
        image = tf.constant((rng.random((height, width, channels)) * 250).astype(dtype))
        sx, sy = rng.choice([0.5, 1.0, 2.0, 0.37, 1.9], 2) * rng.choice([-1, 1], 2)
        tx, ty = rng.choice([0.0, 0.5, 1.5, -3.25, 17.0, 40.0], 2)
        matrix = translation(tx, ty) @ scaling(sx, sy)
        out_h, out_w = (int(v) for v in rng.integers(3, 50, 2))
        fast = warp_image(image, matrix, out_h, out_w, "nearest", fill_value=114)
        to_source = translation(-0.5, -0.5) @ tf.linalg.inv(matrix) @ translation(0.5, 0.5)
        kernel = _warp_projective(image, to_source, out_h, out_w, "NEAREST", 114.0)
        np.testing.assert_array_equal(fast.numpy(), kernel.numpy())


def test_no_rotation_or_shear_gives_an_axis_aligned_matrix():
    """degrees=0 and shear=0 must not draw a tiny angle: the fast path needs exact zeros."""
    from tfseg.pipeline.augment import random_affine_matrix

    matrix = random_affine_matrix(tf.constant([3, 4]), 480, 640, 320, degrees=0.0,
                                  translate=0.1, scale=0.5, shear=0.0).numpy()
    assert matrix[0, 1] == 0 and matrix[1, 0] == 0 and matrix[2, 0] == 0 and matrix[2, 1] == 0
    turned = random_affine_matrix(tf.constant([3, 4]), 480, 640, 320, degrees=10.0,
                                  translate=0.1, scale=0.5, shear=0.0).numpy()
    assert turned[0, 1] != 0
