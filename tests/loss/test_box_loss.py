"""CIoU and DFL terms against hand-worked values."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss.box_loss import ciou_loss, distribution_focal_loss
from tfseg.ops.boxes import boxes_to_distances, distances_to_boxes
from tfseg.ops.dfl import dfl_expectation as expected_distances


def test_distances_and_boxes_round_trip():
    # Anchor (12, 4), box (4, 0, 20, 10): l = 12-4 = 8, t = 4-0 = 4, r = 20-12 = 8, b = 10-4 = 6.
    points = tf.constant([[12.0, 4.0]])
    boxes = tf.constant([[[4.0, 0.0, 20.0, 10.0]]])
    distances = boxes_to_distances(points, boxes)
    np.testing.assert_allclose(distances.numpy(), [[[8, 4, 8, 6]]])
    np.testing.assert_allclose(distances_to_boxes(points, distances).numpy(), boxes.numpy())


def test_expected_distances():
    # Side 0: one bin (3) dominates -> 3; side 1: uniform over 16 bins -> mean index 7.5;
    # side 2: half on bins 4 and 5 -> 4.5; side 3: all on bin 0 -> 0.
    logits = np.full((1, 1, 4, 16), -100.0, np.float32)
    logits[0, 0, 0, 3] = 0.0
    logits[0, 0, 1, :] = 0.0
    logits[0, 0, 2, 4:6] = 0.0
    logits[0, 0, 3, 0] = 0.0
    out = expected_distances(tf.constant(logits.reshape(1, 1, 64)), 16)
    np.testing.assert_allclose(out.numpy(), [[[3.0, 7.5, 4.5, 0.0]]], atol=1e-5)


def test_ciou_loss_hand_values():
    # Case 1: pred (0,0,2,2), target (1,0,3,2): IoU = 2 / (4 + 4 - 2) = 1/3; centres (1,1) and
    #   (2,1): rho^2 = 1; enclosing (0,0,3,2): c^2 = 9 + 4 = 13; same aspect: v = 0.
    #   CIoU = 1/3 - 1/13 = 0.256410; loss 0.743590.
    # Case 2: pred (0,0,4,2), target (0,0,2,2): IoU = 4/8 = 0.5; centres (2,1), (1,1): rho^2 = 1;
    #   enclosing (0,0,4,2): c^2 = 20; v = 4/pi^2 (atan 2 - atan 1)^2 = 0.0419560;
    #   alpha = v / (1 - 0.5 + v) = 0.0774157; CIoU = 0.5 - 0.05 - v*alpha = 0.4467519;
    #   loss 0.5532481.
    # Case 3: background anchor (weight 0) with a disjoint box: contributes nothing.
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(1)) ** 2
    ciou2 = 0.5 - 1 / 20 - v * v / (0.5 + v)
    loss1, loss2 = 1 - (1 / 3 - 1 / 13), 1 - ciou2
    assert loss2 == pytest.approx(0.5532481, abs=1e-6)
    pred = tf.constant([[[0, 0, 2, 2], [0, 0, 4, 2], [0, 0, 1, 1]]], tf.float32)
    target = tf.constant([[[1, 0, 3, 2], [0, 0, 2, 2], [50, 50, 60, 60]]], tf.float32)
    weights = tf.constant([[0.6, 0.2, 0.0]])
    out = ciou_loss(pred, target, weights, tf.constant(2.0))
    assert float(out) == pytest.approx((0.6 * loss1 + 0.2 * loss2) / 2.0, rel=1e-5)


def test_ciou_loss_zero_for_exact_boxes():
    boxes = tf.constant([[[3, 5, 20, 9], [0, 0, 64, 64]]], tf.float32)
    assert float(ciou_loss(boxes, boxes, tf.ones([1, 2]), tf.constant(2.0))) == pytest.approx(
        0.0, abs=1e-6)


def _dfl_logits():
    # reg_max = 4 and logits (0, ln 2, ln 3, ln 2) on every side: exp sum = 1+2+3+2 = 8, so the
    # bin probabilities are (1/8, 2/8, 3/8, 2/8).
    side = np.log(np.array([1, 2, 3, 2], np.float32))
    return tf.constant(np.tile(side, 4).reshape(1, 1, 16))


def test_dfl_on_a_bin_and_between_bins():
    logits = _dfl_logits()
    one = tf.constant(1.0)
    # Exactly on bin 2: -ln(3/8) = 0.980829 per side.
    on_bin = distribution_focal_loss(logits, tf.fill([1, 1, 4], 2.0), tf.ones([1, 1]), one, 4)
    assert float(on_bin) == pytest.approx(-math.log(3 / 8), rel=1e-6)
    # t = 1.5: half on bin 1, half on bin 2: -(0.5 ln(2/8) + 0.5 ln(3/8)) = 1.183562.
    between = distribution_focal_loss(logits, tf.fill([1, 1, 4], 1.5), tf.ones([1, 1]), one, 4)
    assert float(between) == pytest.approx(1.183562, rel=1e-6)
    # t = 2.25: 0.75 on bin 2, 0.25 on bin 3: -(0.75 ln(3/8) + 0.25 ln(2/8)) = 1.082195.
    quarter = distribution_focal_loss(logits, tf.fill([1, 1, 4], 2.25), tf.ones([1, 1]), one, 4)
    assert float(quarter) == pytest.approx(0.75 * 0.980829 + 0.25 * 1.386294, rel=1e-5)


def test_dfl_clips_far_targets_weights_and_normalizes():
    logits = _dfl_logits()
    # Sides (2, 1.5, 2, 9): 9 clips to 4 - 1 - 0.01 = 2.99 -> 0.01 on bin 2 and 0.99 on bin 3:
    #   0.01 * 0.980829 + 0.99 * 1.386294 = 1.382240.
    # Mean over sides = (0.980829 + 1.183562 + 0.980829 + 1.382240) / 4 = 1.131865;
    # weight 0.5, normalizer 0.25 -> 2.263730.
    targets = tf.constant([[[2.0, 1.5, 2.0, 9.0]]])
    out = distribution_focal_loss(logits, targets, tf.constant([[0.5]]), tf.constant(0.25), 4)
    assert float(out) == pytest.approx(2.263730, rel=1e-5)


def test_dfl_is_lowest_when_the_distribution_matches_the_target():
    # The target 1.5 is best predicted by probabilities (0, .5, .5, 0): its loss, ln 2, is
    # below that of the (1/8, 2/8, 3/8, 2/8) prediction.
    matched = np.log(np.tile(np.array([1e-9, 0.5, 0.5, 1e-9], np.float32), 4)).reshape(1, 1, 16)
    one = tf.constant(1.0)
    targets = tf.fill([1, 1, 4], 1.5)
    best = distribution_focal_loss(tf.constant(matched), targets, tf.ones([1, 1]), one, 4)
    assert float(best) == pytest.approx(math.log(2), rel=1e-5)
    worse = distribution_focal_loss(_dfl_logits(), targets, tf.ones([1, 1]), one, 4)
    assert float(worse) > float(best) + 0.4
