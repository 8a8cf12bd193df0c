"""Task-aligned assigner against hand-worked cases."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss import assigner
from tfseg.loss.assigner import assign, points_inside_boxes
from tfseg.ops.anchors import anchor_points


@pytest.fixture(autouse=True, params=[False, True], ids=["all_pairs", "candidate_pairs"])
def _both_ways(request, monkeypatch):
    """Every case twice: overlaps on all (GT, anchor) pairs and on the candidate pairs only."""
    monkeypatch.setattr(request.module, "assign",
                        functools.partial(assigner.assign, sparse=request.param))


def _probs_for_class(values, cls, num_classes):
    """[A] scores placed in column ``cls`` of an [1, A, C] score tensor (0.01 elsewhere)."""
    scores = np.full((1, len(values), num_classes), 0.01, np.float32)
    scores[0, :, cls] = values
    return tf.constant(scores)


def test_metric_top_k_and_normalization():
    # One GT (0,0,30,10), class 1, area 300. Four points; p3 lies outside the box.
    points = tf.constant([[5, 5], [15, 5], [25, 5], [50, 50]], tf.float32)
    pred_boxes = tf.constant([[[0, 0, 24, 10],    # IoU 240/300 = 0.8
                               [0, 0, 15, 10],    # IoU 150/300 = 0.5
                               [20, 0, 30, 10],   # IoU 100/300 = 1/3
                               [0, 0, 30, 10]]],  # IoU 1, but outside: not a candidate
                             tf.float32)
    # Scores of class 1: s = 0.25, 0.64, 1.0, 0.9; sqrt(s) = 0.5, 0.8, 1.0.
    pred_scores = _probs_for_class([0.25, 0.64, 1.0, 0.9], cls=1, num_classes=2)
    gt_boxes = tf.constant([[[0, 0, 30, 10], [0, 0, 0, 0]]], tf.float32)
    gt_classes = tf.constant([[1, -1]], tf.int32)
    # t = sqrt(s) * u^6:  p0 0.5 * 0.8^6 = 0.131072;  p1 0.8 * 0.5^6 = 0.0125;
    #                     p2 1.0 * (1/3)^6 = 0.0013717;  p3 outside -> 0.
    # top-2 -> p0, p1. Normalized: t * maxIoU(0.8) / max t(0.131072):
    #   p0 -> 0.8;  p1 -> 0.0125 * 0.8 / 0.131072 = 0.0762939...
    out = assign(pred_scores, pred_boxes, points, gt_boxes, gt_classes, topk=2, overlap="iou")
    np.testing.assert_array_equal(out.foreground.numpy(), [[True, True, False, False]])
    np.testing.assert_array_equal(out.classes.numpy(), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(out.gt_index.numpy()[0, :2], [0, 0])
    expected = np.zeros((1, 4, 2), np.float32)
    expected[0, 0, 1] = 0.8
    expected[0, 1, 1] = 0.0125 * 0.8 / 0.131072
    np.testing.assert_allclose(out.scores.numpy(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.boxes.numpy()[0, :2], [[0, 0, 30, 10]] * 2)


def test_top_k_larger_than_candidates_keeps_only_the_inside_ones():
    # Same case with k=10: all three inside points are positive, p3 (outside) is not.
    # Normalization is unchanged by adding p2: p2 -> (1/729) * 0.8 / 0.131072 = 0.0083726.
    points = tf.constant([[5, 5], [15, 5], [25, 5], [50, 50]], tf.float32)
    pred_boxes = tf.constant([[[0, 0, 24, 10], [0, 0, 15, 10], [20, 0, 30, 10], [0, 0, 30, 10]]],
                             tf.float32)
    pred_scores = _probs_for_class([0.25, 0.64, 1.0, 0.9], cls=1, num_classes=2)
    out = assign(pred_scores, pred_boxes, points, tf.constant([[[0, 0, 30, 10]]], tf.float32),
                 tf.constant([[1]]), topk=10, overlap="iou")
    np.testing.assert_array_equal(out.foreground.numpy(), [[True, True, True, False]])
    np.testing.assert_allclose(out.scores.numpy()[0, :, 1],
                               [0.8, 0.0125 * 0.8 / 0.131072, 0.8 / 729 / 0.131072, 0.0],
                               rtol=1e-5, atol=1e-7)


def test_anchor_claimed_by_two_gts_goes_to_higher_iou_and_padding_never_assigns():
    # GT a (0,0,20,20) class 0; GT b (10,0,40,20) class 1; GT c: padding (class -1) covering all.
    # q=(5,10) only in a; p=(15,10) in a and b; r=(35,10) only in b.
    points = tf.constant([[5, 10], [15, 10], [35, 10]], tf.float32)
    pred_boxes = tf.constant([[[0, 0, 20, 20],     # q: IoU with a = 1
                               [8, 0, 24, 20],     # p: with a 240/(320+400-240)=0.5,
                                                   #    with b 280/(320+600-280)=0.4375
                               [30, 0, 40, 20]]],  # r: IoU with b = 200/600 = 1/3
                             tf.float32)
    pred_scores = tf.fill([1, 3, 2], 0.5)
    gt_boxes = tf.constant([[[0, 0, 20, 20], [10, 0, 40, 20], [0, 0, 64, 64]]], tf.float32)
    gt_classes = tf.constant([[0, 1, -1]], tf.int32)
    out = assign(pred_scores, pred_boxes, points, gt_boxes, gt_classes, topk=2, overlap="iou")
    # Top-2 of a: q, p; of b: p, r. p goes to a (0.5 > 0.4375).
    np.testing.assert_array_equal(out.foreground.numpy(), [[True, True, True]])
    np.testing.assert_array_equal(out.gt_index.numpy(), [[0, 0, 1]])
    np.testing.assert_array_equal(out.classes.numpy(), [[0, 0, 1]])
    # a: t_q = sqrt(.5)*1, t_p = sqrt(.5)*0.5^6 -> q gets maxIoU 1, p gets 0.5^6 = 0.015625.
    # b: only r remains -> r gets b's max IoU among positives, 1/3.
    expected = np.array([[[1.0, 0.0], [0.015625, 0.0], [0.0, 1.0 / 3.0]]], np.float32)
    np.testing.assert_allclose(out.scores.numpy(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out.boxes.numpy()[0], [[0, 0, 20, 20], [0, 0, 20, 20],
                                                      [10, 0, 40, 20]])


def _ciou(a, b):
    """CIoU of two xyxy boxes, from the paper's formula (numpy, for the expected values)."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    u = inter / union
    rho2 = ((a[0] + a[2] - b[0] - b[2]) ** 2 + (a[1] + a[3] - b[1] - b[3]) ** 2) / 4.0
    c2 = (max(a[2], b[2]) - min(a[0], b[0])) ** 2 + (max(a[3], b[3]) - min(a[1], b[1])) ** 2
    v = 4 / np.pi ** 2 * (np.arctan((b[2] - b[0]) / (b[3] - b[1]))
                          - np.arctan((a[2] - a[0]) / (a[3] - a[1]))) ** 2
    return u - rho2 / c2 - v * v / (1 - u + v)


def test_default_overlap_is_ciou_clamped_at_zero():
    # The first case again, measured by CIoU: p0 (0,0,24,10) vs GT (0,0,30,10): IoU 0.8,
    # centres 3 px apart (rho^2 9), enclosing diagonal^2 1000, aspect 2.4 vs 3 -> 0.79098.
    points = tf.constant([[5, 5], [15, 5], [25, 5], [50, 50]], tf.float32)
    boxes = [[0, 0, 24, 10], [0, 0, 15, 10], [20, 0, 30, 10], [0, 0, 30, 10]]
    gt = [0, 0, 30, 10]
    cious = [_ciou(gt, b) for b in boxes[:3]]
    assert cious[0] == pytest.approx(0.790977, abs=1e-5)
    out = assign(_probs_for_class([0.25, 0.64, 1.0, 0.9], cls=1, num_classes=2),
                 tf.constant([boxes], tf.float32), points, tf.constant([[gt]], tf.float32),
                 tf.constant([[1]]), topk=10)
    metric = np.sqrt([0.25, 0.64, 1.0]) * np.maximum(cious, 0.0) ** 6
    expected = metric * max(cious) / metric.max()
    np.testing.assert_allclose(out.scores.numpy()[0, :3, 1], expected, rtol=1e-4, atol=1e-7)
    # A predicted box far from the GT has a negative CIoU: its overlap counts as 0, never below.
    far = assign(_probs_for_class([0.9, 0.9, 0.9, 0.9], cls=1, num_classes=2),
                 tf.constant([[[40, 40, 60, 60]] * 4], tf.float32), points,
                 tf.constant([[gt]], tf.float32), tf.constant([[1]]), topk=10)
    assert _ciou(gt, [40, 40, 60, 60]) < 0 and far.scores.numpy().min() == 0.0


def test_anchor_claimed_by_two_gts_goes_to_the_best_overlap_even_outside_its_top_k():
    # p=(15,10) lies inside a and b. Top-1 of a is q (IoU 1), so only b picks p (its top-1);
    # p still goes to a: among all GTs it lies inside, a overlaps it most (0.5 > 0.4375).
    points = tf.constant([[5, 10], [15, 10], [35, 10]], tf.float32)
    pred_boxes = tf.constant([[[0, 0, 20, 20], [8, 0, 24, 20], [30, 0, 40, 20]]], tf.float32)
    scores = np.full((1, 3, 2), 0.5, np.float32)
    scores[0, 2, 1] = 0.01  # r scores low for b, so b's top-1 is p
    out = assign(tf.constant(scores), pred_boxes, points,
                 tf.constant([[[0, 0, 20, 20], [10, 0, 40, 20]]], tf.float32),
                 tf.constant([[0, 1]]), topk=1, overlap="iou")
    # Claims: q by a; p by b only: a single claim stays with b (the rule applies to ties).
    np.testing.assert_array_equal(out.foreground.numpy(), [[True, True, False]])
    np.testing.assert_array_equal(out.gt_index.numpy()[0, :2], [0, 1])


def test_contested_anchor_with_zero_overlaps_stays_with_a_gt_that_claimed_it():
    # p=(20,20) lies in GT 1 and GT 2, not in GT 0; q=(5,5) only in GT 0. Predictions are far
    # off, so every clamped CIoU and every metric is 0: top-1 ties go to anchor index 0 = p,
    # which GT 1 and GT 2 claim (GT 0's pick, p, is not its candidate). All overlaps tie at 0,
    # so p goes to its first claimant, GT 1, not to GT 0 (argmax over all GTs would say 0).
    points = tf.constant([[20, 20], [5, 5]], tf.float32)
    gt = tf.constant([[[0, 0, 10, 10], [15, 0, 40, 40], [10, 10, 40, 40]]], tf.float32)
    far = tf.constant([[[100, 100, 110, 110]] * 2], tf.float32)
    out = assign(tf.fill([1, 2, 3], 0.5), far, points, gt, tf.constant([[0, 1, 2]]), topk=1,
                 min_candidate_side=0.0)
    np.testing.assert_array_equal(out.foreground.numpy(), [[True, False]])
    assert out.gt_index.numpy()[0, 0] == 1 and out.classes.numpy()[0, 0] == 1


def test_small_gt_gets_candidates_from_its_box_widened_to_16_px():
    # A 2 x 2 GT (13,13,15,15) holds no anchor centre. Widened to 16 x 16 about (14,14):
    # (6,6,22,22) holds the stride-8 centres (12,12), (20,12), (12,20), (20,20) = anchors 9,
    # 10, 17, 18, the stride-16 centre (8,8) = anchor 64 and the stride-32 centre (16,16) = 80.
    points, _ = anchor_points(64)
    gt = tf.constant([[[13.0, 13.0, 15.0, 15.0]]])
    assert not points_inside_boxes(points, gt).numpy().any()
    out = assign(tf.fill([1, 84, 3], 0.3), tf.tile(gt, [1, 84, 1]), points, gt,
                 tf.constant([[1]]), topk=10)
    assert np.flatnonzero(out.foreground.numpy()[0]).tolist() == [9, 10, 17, 18, 64, 80]
    np.testing.assert_allclose(out.boxes.numpy()[0, 9], [13, 13, 15, 15])  # targets keep the GT
    off = assign(tf.fill([1, 84, 3], 0.3), tf.tile(gt, [1, 84, 1]), points, gt,
                 tf.constant([[1]]), topk=10, min_candidate_side=0.0)
    assert not off.foreground.numpy().any()


def test_no_valid_gt_gives_no_foreground():
    points, _ = anchor_points(64)
    pred_boxes = tf.tile(tf.constant([[[0.0, 0.0, 64.0, 64.0]]]), [2, 84, 1])
    out = assign(tf.fill([2, 84, 3], 0.9), pred_boxes, points,
                 tf.constant([[[0.0, 0.0, 64.0, 64.0]] * 4] * 2), tf.fill([2, 4], -1), topk=10)
    assert not out.foreground.numpy().any()
    assert out.scores.numpy().sum() == 0.0


def test_real_anchors_inside_a_box():
    # 64 px input: strides 8/16/32 give 8x8 + 4x4 + 2x2 = 84 anchors.
    # GT (0,0,16,16): stride-8 centres 4 and 12 -> (4,4), (12,4), (4,12), (12,12) = anchors
    # 0, 1, 8, 9; stride-16 centre (8,8) = anchor 64; the stride-32 centre (16,16) sits on the
    # edge, not strictly inside. So 5 positives, all with the predicted box = GT (IoU 1), equal
    # metrics, target score 1.
    points, _ = anchor_points(64)
    gt = tf.constant([[[0.0, 0.0, 16.0, 16.0]]])
    inside = points_inside_boxes(points, gt).numpy()[0, 0]
    assert np.flatnonzero(inside).tolist() == [0, 1, 8, 9, 64]
    out = assign(tf.fill([1, 84, 3], 0.3), tf.tile(gt, [1, 84, 1]), points, gt,
                 tf.constant([[2]]), topk=10)
    assert np.flatnonzero(out.foreground.numpy()[0]).tolist() == [0, 1, 8, 9, 64]
    np.testing.assert_allclose(out.scores.numpy()[0, [0, 1, 8, 9, 64], 2], 1.0, rtol=1e-6)
    assert out.scores.numpy().sum() == pytest.approx(5.0, rel=1e-6)


def test_jit_matches_eager():
    # Two images, three GTs (one padding), random-but-seeded predictions on the 64 px anchors.
    points, strides = anchor_points(64)
    rng = np.random.default_rng(0)
    centres = tf.tile(points[None], [2, 1, 1])
    half = tf.constant(rng.uniform(2, 20, (2, 84, 2)), tf.float32)
    pred_boxes = tf.concat([centres - half, centres + half], -1)
    pred_scores = tf.constant(rng.uniform(0.05, 0.95, (2, 84, 3)), tf.float32)
    gt_boxes = tf.constant([[[4, 4, 40, 30], [20, 10, 60, 60], [0, 0, 0, 0]],
                            [[0, 0, 64, 64], [8, 8, 24, 24], [0, 0, 0, 0]]], tf.float32)
    gt_classes = tf.constant([[0, 2, -1], [1, 1, -1]])
    eager = assign(pred_scores, pred_boxes, points, gt_boxes, gt_classes)
    jitted = tf.function(functools.partial(assign, sparse=False), jit_compile=True)(
        pred_scores, pred_boxes, points, gt_boxes, gt_classes)
    assert eager.foreground.numpy().sum() > 10
    for a, b in zip(eager, jitted):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_candidate_pairs_give_the_all_pairs_assignment_at_coco_density():
    # 4 images at 320 px (2100 anchors), up to 40 GTs each of COCO-like sizes (many small),
    # padding, random predictions: both ways must assign alike.
    points, _ = anchor_points(320)
    rng = np.random.default_rng(3)
    batch, gts, anchors, classes = 4, 40, points.shape[0], 7
    centres = tf.tile(points[None], [batch, 1, 1])
    half = tf.constant(rng.uniform(2, 40, (batch, anchors, 2)), tf.float32)
    pred_boxes = tf.concat([centres - half, centres + half], -1)
    pred_scores = tf.constant(rng.uniform(0.01, 0.99, (batch, anchors, classes)), tf.float32)
    corner = rng.uniform(0, 300, (batch, gts, 2))
    side = np.exp(rng.uniform(np.log(3), np.log(200), (batch, gts, 2)))
    gt_boxes = tf.constant(np.concatenate([corner, np.minimum(corner + side, 320)], -1),
                           tf.float32)
    gt_classes = rng.integers(0, classes, (batch, gts)).astype(np.int32)
    gt_classes[:, 30:] = -1  # padding
    gt_classes[3, 5:] = -1
    dense = assigner.assign(pred_scores, pred_boxes, points, gt_boxes, gt_classes, sparse=False)
    sparse = assigner.assign(pred_scores, pred_boxes, points, gt_boxes, gt_classes, sparse=True)
    assert dense.foreground.numpy().sum() > 500
    for name in ("foreground", "gt_index", "classes"):
        np.testing.assert_array_equal(getattr(dense, name), getattr(sparse, name), name)
    for name in ("boxes", "scores"):
        np.testing.assert_allclose(getattr(dense, name), getattr(sparse, name), rtol=1e-6,
                                   atol=1e-7, err_msg=name)
