"""Augmentation geometry: image, masks and boxes move together; hand-worked flip; HSV recipe."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.ops import affine
from tfseg.pipeline.augment import (pack_masks, packed_layout, random_affine,
                                    random_affine_matrix, random_flip, random_hsv, unpack_masks,
                                    warp_masks)
from tfseg.pipeline.decode import decode_record
from tfseg.pipeline.targets import remove_crowd


def _sample(make_record, height=64, width=64):
    rects = [(4, 6, 30, 26), (36, 30, 60, 58), (10, 40, 22, 60)]
    return remove_crowd(decode_record(tf.nest.map_structure(
        tf.constant, make_record(1, height, width, rects, classes=[0, 1, 2]))))


def test_flip_hand_worked(make_record):
    sample = _sample(make_record, 32, 40)
    flipped = random_flip(dict(sample, boxes=sample["boxes"]), tf.constant([1, 2]), probability=1.0)
    # x -> 40 - x: (4, 6, 30, 26) -> (10, 6, 36, 26)
    np.testing.assert_allclose(flipped["boxes"][0], [10, 6, 36, 26])
    np.testing.assert_array_equal(flipped["image"], sample["image"].numpy()[:, ::-1])
    np.testing.assert_array_equal(flipped["masks"], sample["masks"].numpy()[:, :, ::-1])
    kept = random_flip(sample, tf.constant([1, 2]), probability=0.0)
    np.testing.assert_array_equal(kept["image"], sample["image"])


def test_vertical_flip_hand_worked(make_record):
    sample = _sample(make_record, 32, 40)
    flipped = random_flip(sample, tf.constant([1, 2]), probability=1.0, vertical=True)
    # y -> 32 - y: (4, 6, 30, 26) -> (4, 6, 30, 26) mirrored about the middle row
    np.testing.assert_allclose(flipped["boxes"][0], [4, 32 - 26, 30, 32 - 6])
    np.testing.assert_array_equal(flipped["image"], sample["image"].numpy()[::-1])
    np.testing.assert_array_equal(flipped["masks"], sample["masks"].numpy()[:, ::-1])
    kept = random_flip(sample, tf.constant([1, 2]), probability=0.0, vertical=True)
    np.testing.assert_array_equal(kept["masks"], sample["masks"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perspective_moves_image_masks_and_boxes_together(make_record, assert_geometry, seed):
    sample = _sample(make_record, 48, 64)
    args = dict(size=64, degrees=0, translate=0.1, scale=0.2, shear=0)
    matrix = random_affine_matrix(tf.constant([seed, 9]), 48, 64, 64, 0.0, 0.1, 0.2, 0.0, 0.001)
    assert float(tf.reduce_max(tf.abs(matrix[2, :2]))) > 0  # a projective bottom row
    tilted = random_affine(sample, tf.constant([seed, 9]), perspective=0.001, **args)
    flat = random_affine(sample, tf.constant([seed, 9]), **args)
    assert not np.array_equal(tilted["masks"], flat["masks"])
    assert tilted["classes"].shape[0] >= 1
    assert_geometry(tilted, {0: (220, 30, 30), 1: (30, 200, 40), 2: (40, 60, 230)})


def test_affine_with_no_change_is_the_identity(make_record):
    sample = _sample(make_record)
    out = random_affine(sample, tf.constant([3, 4]), 64, degrees=0, translate=0, scale=0, shear=0)
    np.testing.assert_array_equal(out["image"], sample["image"])
    np.testing.assert_array_equal(out["masks"], sample["masks"])
    np.testing.assert_array_equal(out["boxes"], sample["boxes"])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_affine_moves_image_masks_and_boxes_together(make_record, assert_geometry, seed):
    sample = _sample(make_record, 48, 64)
    out = random_affine(sample, tf.constant([seed, 9]), 64, degrees=30, translate=0.2, scale=0.5,
                        shear=10)
    assert out["image"].shape == (64, 64, 3) and out["masks"].shape[1:] == (64, 64)
    assert out["classes"].shape[0] >= 1
    colours = {0: (220, 30, 30), 1: (30, 200, 40), 2: (40, 60, 230)}
    assert_geometry(out, colours)


def test_affine_is_deterministic_under_its_seed(make_record):
    sample = _sample(make_record)
    args = dict(size=64, degrees=20, translate=0.2, scale=0.5, shear=5)
    a = random_affine(sample, tf.constant([5, 5]), **args)
    b = random_affine(sample, tf.constant([5, 5]), **args)
    c = random_affine(sample, tf.constant([6, 5]), **args)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])


def test_hsv_recipe():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, [8, 8, 3]).astype(np.uint8)
    pixels[0, 0] = (128, 128, 128)
    sample = {"image": tf.constant(pixels)}
    same = random_hsv(sample, tf.constant([1, 1]), 0.0, 0.0, 0.0)["image"].numpy()
    assert np.abs(same.astype(int) - pixels).max() <= 1
    # Value only: every pixel's max channel scales by one common gain in [0.6, 1.4].
    valued = random_hsv(sample, tf.constant([1, 1]), 0.0, 0.0, 0.4)["image"].numpy().astype(float)
    bright = pixels.max(-1) > 100
    ratio = valued.max(-1)[bright] / pixels.max(-1)[bright]
    unclipped = valued.max(-1)[bright] < 255
    assert 0.6 <= ratio.min() and ratio.max() <= 1.4
    assert np.ptp(ratio[unclipped]) < 0.02
    # Hue only: a grey pixel has no hue and stays grey; saturation and value stay.
    hued = random_hsv(sample, tf.constant([2, 7]), 0.5, 0.0, 0.0)["image"].numpy()
    np.testing.assert_array_equal(hued[0, 0], (128, 128, 128))
    assert np.abs(hued.max(-1).astype(int) - pixels.max(-1)).max() <= 1


@pytest.mark.parametrize("count", [0, 1, 8, 11])
def test_packed_masks_round_trip(count):
    masks = (np.random.default_rng(count).random([count, 9, 7]) < 0.4).astype(np.uint8)
    packed = pack_masks(tf.constant(masks))
    assert packed.shape == (9, 7, max((count + 7) // 8, 1)) and packed.dtype == tf.uint8
    np.testing.assert_array_equal(unpack_masks(packed, *packed_layout(count)), masks)
    if count > 8:  # mask 9 is bit 1 of channel 1
        np.testing.assert_array_equal((packed.numpy()[..., 1] >> 1) & 1, masks[9])


def test_packed_warp_equals_one_warp_per_mask():
    """11 masks warped together, bit-packed, equal each mask warped alone (nearest)."""
    rng = np.random.default_rng(3)
    masks = np.zeros([11, 40, 56], np.uint8)
    for k in range(11):
        x, y = rng.integers(0, 40), rng.integers(0, 28)
        masks[k, y:y + rng.integers(4, 12), x:x + rng.integers(4, 16)] = 1
    matrix = (affine.translation(30.0, 28.0) @ affine.rotation(17.0) @ affine.scaling(1.3)
              @ affine.translation(-28.0, -20.0))
    together = warp_masks(tf.constant(masks), matrix, 64).numpy()
    for k in range(11):
        alone = affine.warp_image(tf.constant(masks[k][..., None]), matrix, 64, 64, "nearest", 0.0)
        np.testing.assert_array_equal(together[k], alone.numpy()[..., 0])
    assert together.sum() > 0.5 * masks.sum() * 1.3 ** 2
