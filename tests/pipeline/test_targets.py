"""Instance filtering, tight boxes, padding and the 1/4 masks, on hand-worked samples."""

import numpy as np
import tensorflow as tf

from tfseg.pipeline.targets import (drop_small, mask_boxes, pad_instances, remove_crowd,
                                    select_instances, to_targets)


def _masks(shape, *rects):
    masks = np.zeros([len(rects), *shape], np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        masks[i, y1:y2, x1:x2] = 1
    return tf.constant(masks)


def test_mask_boxes_are_tight_and_empty_is_zero():
    masks = _masks([10, 12], (2, 3, 5, 9), (0, 0, 12, 10), (4, 4, 4, 4)).numpy()
    masks[1, 5, 6] = 0  # a hole changes nothing
    np.testing.assert_array_equal(mask_boxes(tf.constant(masks)), [[2, 3, 5, 9], [0, 0, 12, 10], [0, 0, 0, 0]])


def test_select_keeps_fields_in_step_and_removes_crowd():
    sample = {"boxes": tf.constant([[0, 0, 1, 1], [1, 1, 2, 2], [2, 2, 3, 3]], tf.float32),
              "classes": tf.constant([4, 5, 6]), "is_crowd": tf.constant([False, True, False]),
              "masks": _masks([4, 4], (0, 0, 1, 1), (1, 1, 2, 2), (2, 2, 3, 3))}
    out = remove_crowd(sample)
    np.testing.assert_array_equal(out["classes"], [4, 6])
    np.testing.assert_array_equal(out["boxes"], [[0, 0, 1, 1], [2, 2, 3, 3]])
    np.testing.assert_array_equal(mask_boxes(out["masks"]), out["boxes"])
    only_crowd = select_instances(sample, tf.constant([False, False, False]))
    assert only_crowd["masks"].shape == (0, 4, 4) and only_crowd["boxes"].shape == (0, 4)


def test_drop_small_recomputes_boxes_and_drops():
    masks = _masks([20, 20], (0, 0, 10, 10), (5, 5, 6, 15), (3, 3, 5, 5), (0, 0, 0, 0))
    sample = {"boxes": tf.zeros([4, 4]), "classes": tf.constant([0, 1, 2, 0]), "masks": masks}
    out = drop_small(sample, min_area=4)  # 1-pixel-wide sliver and empty mask go; 2x2 stays
    np.testing.assert_array_equal(out["classes"], [0, 2])
    np.testing.assert_array_equal(out["boxes"], [[0, 0, 10, 10], [3, 3, 5, 5]])
    assert drop_small(sample, min_area=5)["classes"].shape == (1,)


def test_padding_and_truncation():
    boxes = tf.constant([[1, 2, 3, 4], [5, 6, 7, 8]], tf.float32)
    out = pad_instances(boxes, tf.constant([2, 0]), tf.ones([2, 3, 3], tf.uint8), 4, 3)
    np.testing.assert_array_equal(out["classes"], [2, 0, -1, -1])
    np.testing.assert_array_equal(out["boxes"][2:], 0)
    assert out["masks"].numpy()[2:].sum() == 0 and out["masks"].numpy()[:2].sum() == 18
    cut = pad_instances(boxes, tf.constant([2, 0]), tf.ones([2, 3, 3], tf.uint8), 1, 3)
    np.testing.assert_array_equal(cut["classes"], [2])


def test_to_targets_quarter_masks_and_image_range():
    image = tf.fill([16, 16, 3], tf.constant(255, tf.uint8))
    # [4, 12) x [0, 6): coarse columns 1, 2 fully on; coarse row 0 fully, row 1 half (rows 4, 5 of 4..7).
    masks = _masks([16, 16], (4, 0, 12, 6), (0, 0, 1, 1))
    sample = {"image": image, "masks": masks, "boxes": mask_boxes(masks), "classes": tf.constant([1, 2])}
    img, targets = to_targets(sample, 16, 3)
    assert img.dtype == tf.float32 and float(tf.reduce_max(img)) == 1.0
    expected = np.zeros([4, 4], np.uint8)
    expected[0:2, 1:3] = 1
    np.testing.assert_array_equal(targets["masks"][0], expected)
    assert targets["masks"].numpy()[1].sum() == 0  # 1 of 16 pixels: below half
    np.testing.assert_array_equal(targets["classes"], [1, 2, -1])
    assert targets["masks"].dtype == tf.uint8 and targets["masks"].shape == (3, 4, 4)


def test_to_targets_with_no_instances():
    sample = {"image": tf.zeros([32, 32, 3], tf.uint8), "masks": tf.zeros([0, 32, 32], tf.uint8),
              "boxes": tf.zeros([0, 4]), "classes": tf.zeros([0], tf.int32)}
    _, targets = to_targets(sample, 32, 5)
    np.testing.assert_array_equal(targets["classes"], [-1] * 5)
    assert targets["masks"].shape == (5, 8, 8) and targets["masks"].numpy().sum() == 0


def test_beyond_m_the_largest_are_kept_in_order_and_the_rest_counted():
    # 5 squares of sides 2, 6, 4, 8, 3 px on a 16 px image, M = 3: keep sides 6, 4, 8
    # (instances 1, 2, 3, in their order), 2 left out and counted.
    sides = [2, 6, 4, 8, 3]
    masks = np.zeros([5, 16, 16], np.uint8)
    for i, side in enumerate(sides):
        masks[i, :side, :side] = 1
    masks = tf.constant(masks)
    sample = {"image": tf.zeros([16, 16, 3], tf.uint8), "masks": masks,
              "boxes": mask_boxes(masks), "classes": tf.constant([0, 1, 2, 3, 4])}
    _, targets = to_targets(sample, 16, 3)
    np.testing.assert_array_equal(targets["classes"], [1, 2, 3])
    np.testing.assert_array_equal(targets["boxes"][:, 2], [6, 4, 8])
    assert int(targets["dropped"]) == 2
    _, roomy = to_targets(sample, 16, 8)
    np.testing.assert_array_equal(roomy["classes"], [0, 1, 2, 3, 4, -1, -1, -1])
    assert int(roomy["dropped"]) == 0

    # Without masks (evaluation batches): the same choice by box area, and no masks out.
    boxes_only = {key: value for key, value in sample.items() if key != "masks"}
    _, targets = to_targets(boxes_only, 16, 3)
    np.testing.assert_array_equal(targets["classes"], [1, 2, 3])
    assert int(targets["dropped"]) == 2 and "masks" not in targets
