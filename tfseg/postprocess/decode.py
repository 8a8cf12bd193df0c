"""Raw model outputs -> boxes in input pixels and class scores (graph side, TF ops only).

Everything here runs before NMS, so it sticks to ops the TFLite GPU delegate runs:
reshape to rank 4 at most, softmax, multiply, reduce, add (no ARG_MAX, no TOPK, no GATHER).
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.ops import boxes as box_ops
from tfseg.ops.anchors import anchor_points
from tfseg.ops.dfl import dfl_expectation


def decode_boxes(box_logits: tf.Tensor, image_size: int, reg_max: int) -> tf.Tensor:
    """DFL logits (or, with ``reg_max`` 1, plain distances) -> boxes xyxy in input pixels,
    clipped to the input.

    x1 = px - left * stride, y1 = py - top * stride, x2 = px + right * stride,
    y2 = py + bottom * stride, with (px, py) the anchor point (cell centre).

    Args:
        box_logits: ``[B, A, 4 * reg_max]`` float32 (raw-output contract).
        image_size: S, the square input size in pixels.
        reg_max: number of DFL bins per side; 1: the four values are the distances in
            strides themselves (YOLO26, no DFL).

    Returns:
        ``[B, A, 4]`` float32 xyxy boxes in input pixels, inside [0, S].
    """
    with tf.name_scope("decode_boxes"):
        points, strides = anchor_points(image_size)  # [A, 2], [A, 1]
        if reg_max == 1:
            distances = box_logits * strides  # [B, A, 4] pixels
        else:
            distances = dfl_expectation(box_logits, reg_max) * strides  # [B, A, 4] pixels
        boxes = box_ops.distances_to_boxes(points, distances)  # [B, A, 4]
        return box_ops.clip(boxes, image_size, image_size)


def best_class(class_logits: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Score and index of the best class of every anchor.

    The index is found without ARG_MAX (which the GPU delegate does not run): the smallest
    class index whose score equals the maximum, computed with float compare, multiply and min.

    Args:
        class_logits: ``[B, A, C]`` float32 logits.

    Returns:
        scores: ``[B, A]`` float32 sigmoid probability of the best class.
        classes: ``[B, A]`` float32 index of that class (float so the pre-NMS graph stays
        in float; cast to int32 after NMS).
    """
    with tf.name_scope("best_class"):
        probabilities = tf.sigmoid(class_logits)  # [B, A, C]
        scores = tf.reduce_max(probabilities, axis=-1)  # [B, A]
        num_classes = tf.shape(class_logits)[-1]
        index = tf.range(num_classes, dtype=tf.float32)  # [C]
        is_best = tf.cast(probabilities >= scores[..., None], tf.float32)  # [B, A, C] 0/1
        # Classes that are not the best get index + C, so the minimum is the best index.
        candidates = index + tf.cast(num_classes, tf.float32) * (1.0 - is_best)  # [B, A, C]
        classes = tf.reduce_min(candidates, axis=-1)  # [B, A]
        return scores, classes
