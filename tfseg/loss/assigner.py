"""Task-aligned assignment of ground-truth instances to anchor points (TOOD, Feng et al. 2021).

For every ground-truth box (GT) the candidates are the anchor points whose centre lies strictly
inside it, with sides under ``min_candidate_side`` (16 px, the middle stride) widened to it
about the box centre, as the reference does, so a small or thin GT still has candidates. Each candidate gets the alignment metric t = s^alpha * u^beta, where s is the
predicted score of the GT's class and u the overlap of the predicted box with the GT: CIoU
clamped at 0 by default, as the reference (Ultralytics 8.4) measures it, or plain IoU. The
top-k candidates by t become the GT's positives. An anchor claimed by several GTs goes to the
GT it overlaps most among all GTs it lies inside (the reference's rule). The soft class target
of a positive anchor is t normalized per GT so that the GT's best anchor scores the GT's
largest overlap among its positives.

One-to-one assignment (YOLO26's NMS-free head) adds a second cut, ``topk2``: after the
conflicts are resolved, each GT keeps only its ``topk2`` positives of highest metric (the
reference uses topk 7 then topk2 1, so each GT ends with at most one positive anchor; the
anchors it drops become background, they are not handed to another GT).

The outputs, the masks ([B, M, A]) and the top-k (a static k) have fixed shapes. The overlaps
and the metric are computed in one of two ways with the same result: on every (GT, anchor)
pair (``sparse=False``: fixed shapes, for ``tf.function(jit_compile=True)``), or on the
candidate pairs only, scattered into zeros (``sparse=True``, TensorFlow's graph executor: at
COCO densities a few percent of the B x M x A pairs are candidates, and CIoU is the costliest
part of the assignment). Plain ``tf`` because it composes ``tfseg.ops`` functions. It sees no
gradient: callers pass detached predictions.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from tfseg.ops.boxes import ciou, iou

_EPS = 1e-9


class Assignment(NamedTuple):
    """What the assigner gives each anchor.

    Attributes:
        boxes: ``[B, A, 4]`` float32, xyxy input pixels of the assigned GT (meaningless where
            ``foreground`` is False).
        scores: ``[B, A, C]`` float32 soft class targets; zero on background anchors.
        classes: ``[B, A]`` int32 class of the assigned GT; 0 on background anchors.
        gt_index: ``[B, A]`` int32 index into M of the assigned GT; 0 on background anchors.
        foreground: ``[B, A]`` bool, True for positive anchors.
    """
    boxes: tf.Tensor
    scores: tf.Tensor
    classes: tf.Tensor
    gt_index: tf.Tensor
    foreground: tf.Tensor


def assign(pred_scores: tf.Tensor, pred_boxes: tf.Tensor, points: tf.Tensor,
           gt_boxes: tf.Tensor, gt_classes: tf.Tensor, topk: int = 10,
           alpha: float = 0.5, beta: float = 6.0, overlap: str = "ciou",
           min_candidate_side: float = 16.0, topk2: int | None = None,
           sparse: bool = False) -> Assignment:
    """Task-aligned assignment over all anchors.

    Args:
        pred_scores: ``[B, A, C]`` float32 predicted class probabilities (after sigmoid).
        pred_boxes: ``[B, A, 4]`` float32 predicted boxes, xyxy input pixels.
        points: ``[A, 2]`` float32 anchor centres (x, y), input pixels.
        gt_boxes: ``[B, M, 4]`` float32 GT boxes, xyxy input pixels.
        gt_classes: ``[B, M]`` int32 GT classes; -1 marks padding, which never assigns.
        topk: positives kept per GT (fewer when fewer anchors lie inside it).
        alpha: exponent of the class score in the alignment metric.
        beta: exponent of the overlap in the alignment metric.
        overlap: "ciou" (clamped at 0) or "iou": how predicted and GT boxes overlap.
        min_candidate_side: GT sides shorter than this are widened to it (about the centre)
            to choose candidates only; 0 turns it off.
        topk2: if below ``topk``, each GT keeps only this many of its positives (highest
            metric) once conflicts are resolved; None or ``topk``: no second cut.
        sparse: measure the overlaps on the candidate pairs only (run-time shapes; see the
            module docstring); False: on all pairs (static shapes, XLA).

    Returns:
        An ``Assignment``.
    """
    with tf.name_scope("task_aligned_assign"):
        pred_scores = tf.stop_gradient(tf.cast(pred_scores, tf.float32))
        pred_boxes = tf.stop_gradient(tf.cast(pred_boxes, tf.float32))
        gt_boxes = tf.cast(gt_boxes, tf.float32)
        gt_classes = tf.cast(gt_classes, tf.int32)
        num_classes = pred_scores.shape[-1]
        num_gts = gt_classes.shape[-1] or tf.shape(gt_classes)[-1]  # static, else run time

        valid = gt_classes >= 0  # [B, M]
        candidates = (points_inside_boxes(points, _widened(gt_boxes, min_candidate_side))
                      & valid[:, :, None])  # [B, M, A]
        measure = (_candidate_overlaps_and_metric if sparse
                   else _all_pairs_overlaps_and_metric)
        overlaps, metric = measure(pred_scores, pred_boxes, gt_boxes, gt_classes, candidates,
                                   overlap, alpha, beta)  # [B, M, A] each
        positive = _top_k_per_gt(metric, topk) & candidates  # [B, M, A]
        positive = _one_gt_per_anchor(positive, overlaps, candidates, num_gts)  # [B, M, A]
        if topk2 is not None and topk2 < topk:
            # -1 off the positives: the second cut never brings back an anchor.
            positive &= _top_k_per_gt(tf.where(positive, metric, -1.0), topk2)  # [B, M, A]

        foreground = tf.reduce_any(positive, axis=1)  # [B, A]
        gt_index = tf.argmax(tf.cast(positive, tf.int32), axis=1, output_type=tf.int32)  # [B, A]
        classes = tf.gather(tf.maximum(gt_classes, 0), gt_index, batch_dims=1)  # [B, A]
        classes = tf.where(foreground, classes, 0)
        boxes = tf.gather(gt_boxes, gt_index, batch_dims=1)  # [B, A, 4]
        strength = _normalized_strength(metric, overlaps, positive)  # [B, A]
        scores = tf.one_hot(classes, num_classes) * strength[:, :, None]  # [B, A, C]
        return Assignment(boxes, scores, classes, gt_index, foreground)


def points_inside_boxes(points: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
    """Whether each point lies strictly inside each box.

    Args:
        points: ``[A, 2]`` float32 (x, y).
        boxes: ``[B, M, 4]`` float32 xyxy.

    Returns:
        ``[B, M, A]`` bool.
    """
    x, y = points[None, None, :, 0], points[None, None, :, 1]  # [1, 1, A]
    x1, y1, x2, y2 = (boxes[:, :, i, None] for i in range(4))  # [B, M, 1] each
    # Every margin above _EPS (four [B, M, A] comparisons, no [B, M, A, 4] margins tensor).
    return (((x - x1) > _EPS) & ((y - y1) > _EPS)) & (((x2 - x) > _EPS) & ((y2 - y) > _EPS))


def _widened(boxes: tf.Tensor, min_side: float) -> tf.Tensor:
    """``[..., 4]`` xyxy boxes with each side at least ``min_side``, same centres."""
    centre = (boxes[..., :2] + boxes[..., 2:]) / 2.0
    half = tf.maximum(boxes[..., 2:] - boxes[..., :2], min_side) / 2.0
    return tf.concat([centre - half, centre + half], axis=-1)


def _pair_overlaps_and_metric(gt_boxes, pred_boxes, scores, overlap: str, alpha: float,
                              beta: float):
    """Elementwise over pairs (any broadcastable shapes): the overlap u of the boxes, CIoU
    clamped at 0 (it goes negative for distant boxes) or IoU, and the alignment metric
    t = s^alpha * u^beta from the predicted score s of the GT's class."""
    if overlap not in ("ciou", "iou"):
        raise ValueError(f"overlap must be 'ciou' or 'iou', got {overlap!r}")
    measure = ciou if overlap == "ciou" else iou
    overlaps = tf.maximum(measure(gt_boxes, pred_boxes), 0.0)
    return overlaps, tf.pow(scores, alpha) * tf.pow(overlaps, beta)


def _all_pairs_overlaps_and_metric(pred_scores, pred_boxes, gt_boxes, gt_classes, candidates,
                                   overlap: str, alpha: float, beta: float):
    """Overlaps and metric of every (GT, anchor) pair, zero off the candidates (static
    shapes) -> ([B, M, A], [B, M, A])."""
    per_class = tf.transpose(pred_scores, [0, 2, 1])  # [B, C, A]
    # Padding GTs (class -1) read class 0 here; ``candidates`` already excludes them.
    scores = tf.gather(per_class, tf.maximum(gt_classes, 0), batch_dims=1)  # [B, M, A]
    overlaps, metric = _pair_overlaps_and_metric(gt_boxes[:, :, None, :],
                                                 pred_boxes[:, None, :, :], scores, overlap,
                                                 alpha, beta)  # [B, M, A] each
    return tf.where(candidates, overlaps, 0.0), tf.where(candidates, metric, 0.0)


def _candidate_overlaps_and_metric(pred_scores, pred_boxes, gt_boxes, gt_classes, candidates,
                                   overlap: str, alpha: float, beta: float):
    """The same measured on the candidate pairs only, scattered into zeros (run-time shapes)
    -> ([B, M, A], [B, M, A])."""
    pairs = tf.where(candidates)  # [N, 3] int64: (image, GT, anchor) of each candidate pair
    image_gt, image_anchor = pairs[:, :2], tf.gather(pairs, [0, 2], axis=1)
    gt_class = tf.cast(tf.gather_nd(tf.maximum(gt_classes, 0), image_gt), tf.int64)  # [N]
    scores = tf.gather_nd(pred_scores, tf.concat([image_anchor, gt_class[:, None]], axis=1))
    overlaps, metric = _pair_overlaps_and_metric(tf.gather_nd(gt_boxes, image_gt),
                                                 tf.gather_nd(pred_boxes, image_anchor),
                                                 scores, overlap, alpha, beta)  # [N] each
    shape = tf.shape(candidates, out_type=tf.int64)
    return tf.scatter_nd(pairs, overlaps, shape), tf.scatter_nd(pairs, metric, shape)


def _top_k_per_gt(metric: tf.Tensor, topk: int) -> tf.Tensor:
    """Mask of the k anchors of highest metric for each GT -> [B, M, A] bool.

    Exactly k anchors per GT (ties broken by anchor order); a loop over the static k keeps the
    memory at [B, M, A] instead of a [B, M, k, A] one-hot.
    """
    num_anchors = metric.shape[-1]
    if num_anchors is None:  # a run-time input size (multi-scale): even 32 px has 21 anchors
        num_anchors, k = tf.shape(metric)[-1], topk
    else:
        k = min(topk, num_anchors)
    _, indices = tf.math.top_k(metric, k=k)  # [B, M, k]
    selected = tf.zeros_like(metric, dtype=tf.bool)  # [B, M, A]
    for j in range(k):
        selected |= tf.one_hot(indices[:, :, j], num_anchors, on_value=True, off_value=False,
                               dtype=tf.bool)  # [B, M, A]
    return selected


def _one_gt_per_anchor(positive: tf.Tensor, overlaps: tf.Tensor, candidates: tf.Tensor,
                       num_gts: int | tf.Tensor) -> tf.Tensor:
    """An anchor claimed by several GTs goes to the GT of highest overlap among all GTs it is a
    candidate of, as the reference resolves it; when all those overlaps are 0 (clamped CIoU of
    a far-off prediction, common early on) it goes to the claimant of highest overlap (the
    first one), never to a GT it is not inside -> [B, M, A]."""
    claims = tf.reduce_sum(tf.cast(positive, tf.int32), axis=1, keepdims=True)  # [B, 1, A]
    among_candidates = tf.where(candidates, overlaps, -1.0)  # [B, M, A]
    best_candidate = tf.argmax(among_candidates, axis=1, output_type=tf.int32)  # [B, A]
    best_claimant = tf.argmax(tf.where(positive, overlaps, -1.0), axis=1,
                              output_type=tf.int32)  # [B, A]
    informative = tf.reduce_max(among_candidates, axis=1) > 0.0  # [B, A]
    best = tf.where(informative, best_candidate, best_claimant)  # [B, A]
    best_mask = tf.one_hot(best, num_gts, on_value=True, off_value=False, axis=1,
                           dtype=tf.bool)  # [B, M, A]
    return tf.where(claims > 1, best_mask, positive)


def _normalized_strength(metric: tf.Tensor, overlaps: tf.Tensor, positive: tf.Tensor) -> tf.Tensor:
    """Per-anchor target strength: t * (max IoU of its GT) / (max t of its GT) -> [B, A].

    Both maxima are over the GT's positives, so its best-aligned anchor gets the GT's largest
    IoU and the others proportionally less (TOOD's normalization).
    """
    positive = tf.cast(positive, tf.float32)  # [B, M, A]
    metric = metric * positive  # [B, M, A]
    max_metric = tf.reduce_max(metric, axis=-1, keepdims=True)  # [B, M, 1]
    max_overlap = tf.reduce_max(overlaps * positive, axis=-1, keepdims=True)  # [B, M, 1]
    per_gt = metric * max_overlap / (max_metric + _EPS)  # [B, M, A]
    return tf.reduce_max(per_gt, axis=1)  # [B, A]; one GT per anchor remains
