"""Mask BCE term against hand-worked values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss.mask_loss import box_normalized_bce, mask_loss
from tfseg.ops.masks import combine_prototypes, crop_to_boxes

SOFTPLUS_2 = math.log1p(math.exp(2.0))    # BCE of logit -2 vs 1, or of logit 2 vs 0: 2.126928
SOFTPLUS_M2 = math.log1p(math.exp(-2.0))  # BCE of logit 2 vs 1, or of logit -2 vs 0: 0.126928


def _mask_with_box_content():
    # 4x4 mask; the box (0,0,2,2) holds [[1,0],[1,1]]; outside the box all ones, which the crop
    # must ignore.
    mask = np.ones((4, 4), np.float32)
    mask[0, 1] = 0.0
    return mask


def _bce_of_logits(logits, mask, box):
    """box_normalized_bce of one instance whose mask logits are ``logits`` [P, Q]: one
    prototype channel holding the logits and a coefficient of 1."""
    logits, mask = tf.convert_to_tensor(logits), tf.convert_to_tensor(mask)
    return box_normalized_bce(tf.ones([1, 1, 1]), logits[None, :, :, None], mask[None, None],
                              tf.reshape(box, [1, 1, 4]))[0, 0]


def test_bce_of_uninformed_and_mismatched_logits():
    mask = tf.constant(_mask_with_box_content())
    box = tf.constant([0.0, 0.0, 2.0, 2.0])
    # Logit 0 everywhere: BCE ln 2 per pixel; 4 pixels in the box / area 4 = ln 2.
    zero = _bce_of_logits(tf.zeros([4, 4]), mask, box)
    assert float(zero) == pytest.approx(math.log(2), rel=1e-6)
    # Logit 2 everywhere: three ones cost softplus(-2), the zero costs softplus(2):
    #   (3 * 0.126928 + 2.126928) / 4 = 0.626928.
    two = _bce_of_logits(tf.fill([4, 4], 2.0), mask, box)
    assert float(two) == pytest.approx((3 * SOFTPLUS_M2 + SOFTPLUS_2) / 4, rel=1e-6)


def test_bce_of_perfect_logits_is_near_zero():
    mask = _mask_with_box_content()
    logits = tf.constant(20.0 * (2.0 * mask - 1.0))  # +20 on ones, -20 on zeros
    out = _bce_of_logits(logits, mask, tf.constant([0.0, 0.0, 2.0, 2.0]))
    assert 0.0 <= float(out) < 1e-8


def _two_image_case():
    """B=2, A=3 anchors, M=2 GTs, P=4, one prototype channel of ones (logit = coefficient)."""
    masks = np.zeros((2, 2, 4, 4), np.uint8)
    masks[0, 0] = _mask_with_box_content()  # image 0 GT 0: box (0,0,8,8) px = (0,0,2,2) proto
    # image 0 GT 1: box (8,8,16,16) px = (2,2,4,4) proto, all zeros inside.
    masks[1, 0] = 1                         # image 1 GT 0: box (0,0,16,16) px, all ones, area 16
    gt_boxes = tf.constant([[[0, 0, 8, 8], [8, 8, 16, 16]], [[0, 0, 16, 16], [0, 0, 0, 0]]],
                           tf.float32)
    coefficients = tf.constant([[[0.0], [2.0], [5.0]], [[-2.0], [7.0], [7.0]]])  # [2, 3, 1]
    prototypes = tf.ones([2, 4, 4, 1])
    gt_index = tf.constant([[0, 1, 0], [0, 0, 0]])
    foreground = tf.constant([[True, True, False], [True, False, False]])
    return coefficients, prototypes, tf.constant(masks), gt_boxes, gt_index, foreground


def test_mask_loss_gathers_assigned_masks_and_skips_background():
    # Positives: img0 a0 -> GT0, logit 0: ln 2 = 0.693147;
    #            img0 a1 -> GT1, logit 2 on four zeros: softplus(2) = 2.126928;
    #            img1 a0 -> GT0, logit -2 on sixteen ones: softplus(2) = 2.126928.
    # Background anchors (logits 5 and 7) are ignored. Mean over 3 = 1.649001.
    coefficients, prototypes, masks, boxes, gt_index, fg = _two_image_case()
    priority = tf.constant([[0.9, 0.1, 0.0], [0.5, 0.0, 0.0]])
    out = mask_loss(coefficients, prototypes, masks, boxes, gt_index, fg, priority, max_anchors=3)
    assert float(out) == pytest.approx((math.log(2) + 2 * SOFTPLUS_2) / 3, rel=1e-6)


def test_mask_loss_cap_keeps_the_highest_priority_positive():
    # max_anchors=1: image 0 keeps a0 (priority 0.9 > 0.1), image 1 keeps a0:
    #   (0.693147 + 2.126928) / 2 = 1.410038.
    coefficients, prototypes, masks, boxes, gt_index, fg = _two_image_case()
    priority = tf.constant([[0.9, 0.1, 0.0], [0.5, 0.0, 0.0]])
    out = mask_loss(coefficients, prototypes, masks, boxes, gt_index, fg, priority, max_anchors=1)
    assert float(out) == pytest.approx((math.log(2) + SOFTPLUS_2) / 2, rel=1e-6)


def test_mask_loss_without_positives_is_zero_with_zero_gradient():
    coefficients, prototypes, masks, boxes, gt_index, _ = _two_image_case()
    none = tf.zeros([2, 3], tf.bool)
    with tf.GradientTape() as tape:
        tape.watch(coefficients)
        out = mask_loss(coefficients, prototypes, masks, boxes, gt_index, none, tf.zeros([2, 3]))
    assert float(out) == 0.0
    np.testing.assert_array_equal(tape.gradient(out, coefficients).numpy(), 0.0)


def test_own_gradient_equals_autodiff_of_the_plain_formula():
    # box_normalized_bce keeps memory low with a hand-written gradient: it must equal what
    # autodiff gives for the textbook formula (TF's BCE, crop, sum, / area) on random inputs.
    rng = np.random.default_rng(0)
    coefficients = tf.constant(rng.normal(size=(2, 5, 4)), tf.float32)
    prototypes = tf.constant(rng.normal(size=(2, 16, 12, 4)), tf.float32)
    targets = tf.constant(rng.random((2, 5, 16, 12)) > 0.5, tf.uint8)
    corner = rng.uniform(0, 10, (2, 5, 2))
    boxes = tf.constant(np.concatenate([corner, corner + rng.uniform(0.3, 8, (2, 5, 2))], -1),
                        tf.float32)
    weights = tf.constant(rng.random((2, 5)), tf.float32)  # a non-uniform upstream gradient

    def plain(c, p):
        bce = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=tf.cast(targets, tf.float32), logits=combine_prototypes(c, p))
        area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
        return tf.reduce_sum(crop_to_boxes(bce, boxes), [-2, -1]) / tf.maximum(area, 1.0)

    results = []
    for loss in (plain, lambda c, p: box_normalized_bce(c, p, targets, boxes)):
        with tf.GradientTape() as tape:
            tape.watch([coefficients, prototypes])
            value = loss(coefficients, prototypes)
            total = tf.reduce_sum(value * weights)
        results.append([value, *tape.gradient(total, [coefficients, prototypes])])
    for ours, reference in zip(results[1], results[0]):
        np.testing.assert_allclose(ours.numpy(), reference.numpy(), rtol=1e-5, atol=1e-6)
    assert float(tf.reduce_max(tf.abs(results[0][2]))) > 0.01  # the check is not vacuous
