"""Box conversions, areas and overlaps. Boxes are ``[..., 4]`` tensors.

Conventions: ``xyxy`` = (x1, y1, x2, y2); ``xywh`` = COCO (x, y, width, height);
``yxyx`` = (y1, x1, y2, x2), used only for TFLite outputs (normalized there).
"""

from __future__ import annotations

import math

import tensorflow as tf

_EPS = 1e-7


def _check_last_dim(boxes: tf.Tensor, name: str = "boxes") -> None:
    if boxes.shape.rank is not None and boxes.shape[-1] is not None and boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have a last dimension of 4, got shape {boxes.shape}")


def xywh_to_xyxy(boxes: tf.Tensor) -> tf.Tensor:
    """COCO (x, y, w, h) -> (x1, y1, x2, y2)."""
    _check_last_dim(boxes)
    xy, wh = boxes[..., :2], boxes[..., 2:]
    return tf.concat([xy, xy + wh], axis=-1)


def xyxy_to_xywh(boxes: tf.Tensor) -> tf.Tensor:
    """(x1, y1, x2, y2) -> COCO (x, y, w, h)."""
    _check_last_dim(boxes)
    return tf.concat([boxes[..., :2], boxes[..., 2:] - boxes[..., :2]], axis=-1)


def xyxy_to_yxyx(boxes: tf.Tensor) -> tf.Tensor:
    """(x1, y1, x2, y2) -> (y1, x1, y2, x2)."""
    _check_last_dim(boxes)
    x1, y1, x2, y2 = tf.split(boxes, 4, axis=-1)  # split, not unstack: GPU-delegate friendly
    return tf.concat([y1, x1, y2, x2], axis=-1)


def area(boxes: tf.Tensor) -> tf.Tensor:
    """Area of xyxy boxes ``[..., 4]`` -> ``[...]``; zero for degenerate boxes."""
    _check_last_dim(boxes)
    wh = tf.maximum(boxes[..., 2:] - boxes[..., :2], 0.0)
    return wh[..., 0] * wh[..., 1]


def clip(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """Clip xyxy boxes to [0, width] x [0, height]."""
    _check_last_dim(boxes)
    height = tf.cast(height, boxes.dtype)
    width = tf.cast(width, boxes.dtype)
    limit = tf.stack([width, height, width, height])
    return tf.clip_by_value(boxes, tf.zeros_like(limit), limit)


def pairwise_iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """IoU of every box in ``[..., N, 4]`` with every box in ``[..., M, 4]`` -> ``[..., N, M]``."""
    _check_last_dim(boxes_a, "boxes_a")
    _check_last_dim(boxes_b, "boxes_b")
    a = boxes_a[..., :, None, :]  # [..., N, 1, 4]
    b = boxes_b[..., None, :, :]  # [..., 1, M, 4]
    inter_wh = tf.maximum(tf.minimum(a[..., 2:], b[..., 2:]) - tf.maximum(a[..., :2], b[..., :2]), 0.0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = area(a) + area(b) - inter
    return inter / (union + _EPS)


def iou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Elementwise IoU of two broadcastable ``[..., 4]`` xyxy tensors -> ``[...]``."""
    _check_last_dim(boxes_a, "boxes_a")
    _check_last_dim(boxes_b, "boxes_b")
    inter_wh = tf.maximum(tf.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
                          - tf.maximum(boxes_a[..., :2], boxes_b[..., :2]), 0.0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    return inter / (area(boxes_a) + area(boxes_b) - inter + _EPS)


def ciou(boxes_a: tf.Tensor, boxes_b: tf.Tensor) -> tf.Tensor:
    """Elementwise Complete IoU (Zheng et al., 2020) of xyxy boxes -> ``[...]``.

    CIoU = IoU - rho^2 / c^2 - alpha * v, where rho is the distance between the centres,
    c the diagonal of the smallest enclosing box, v = (4 / pi^2) (atan(w_b/h_b) - atan(w_a/h_a))^2
    measures the aspect-ratio mismatch and alpha = v / (1 - IoU + v) is held constant for
    the gradient, as the paper prescribes.
    """
    overlap = iou(boxes_a, boxes_b)
    wa = boxes_a[..., 2] - boxes_a[..., 0]
    ha = boxes_a[..., 3] - boxes_a[..., 1] + _EPS
    wb = boxes_b[..., 2] - boxes_b[..., 0]
    hb = boxes_b[..., 3] - boxes_b[..., 1] + _EPS
    enclose_wh = (tf.maximum(boxes_a[..., 2:], boxes_b[..., 2:])
                  - tf.minimum(boxes_a[..., :2], boxes_b[..., :2]))
    diagonal_sq = tf.reduce_sum(tf.square(enclose_wh), axis=-1) + _EPS
    centre_a = (boxes_a[..., :2] + boxes_a[..., 2:]) / 2.0
    centre_b = (boxes_b[..., :2] + boxes_b[..., 2:]) / 2.0
    rho_sq = tf.reduce_sum(tf.square(centre_a - centre_b), axis=-1)
    v = (4.0 / math.pi**2) * tf.square(tf.atan(wb / hb) - tf.atan(wa / ha))
    alpha = tf.stop_gradient(v / (v - overlap + (1.0 + _EPS)))
    return overlap - (rho_sq / diagonal_sq + v * alpha)


def distances_to_boxes(points: tf.Tensor, distances: tf.Tensor) -> tf.Tensor:
    """(left, top, right, bottom) distances from anchor points -> xyxy boxes.

    Args:
        points: ``[A, 2]`` anchor points (x, y).
        distances: ``[..., A, 4]`` in the same units as ``points``.

    Returns:
        ``[..., A, 4]`` xyxy.
    """
    _check_last_dim(distances, "distances")
    return tf.concat([points - distances[..., :2], points + distances[..., 2:]], axis=-1)


def boxes_to_distances(points: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
    """xyxy boxes -> (left, top, right, bottom) distances from anchor points; the inverse of
    ``distances_to_boxes`` (negative where a point lies outside its box).

    Args:
        points: ``[A, 2]`` anchor points (x, y).
        boxes: ``[..., A, 4]`` xyxy in the same units.
    """
    _check_last_dim(boxes)
    return tf.concat([points - boxes[..., :2], boxes[..., 2:] - points], axis=-1)
