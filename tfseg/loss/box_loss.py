"""Box regression terms: CIoU loss and distribution focal loss (DFL), as in YOLOv8, or the L1
distance loss that replaces DFL where there are no bins (YOLO26, ``reg_max`` 1).

The network predicts, per anchor and per side (left, top, right, bottom), a distribution over
``reg_max`` bins of the distance from the anchor centre to that side, in units of the anchor's
stride. Its expectation gives the box (CIoU term); the distribution itself is trained towards
the two bins around the true distance (DFL, Li et al. 2020, "Generalized Focal Loss").

Both terms are weighted per anchor by the anchor's target-score sum and normalized by the
target-score sum over the batch, so well-aligned anchors count more and the scale does not
depend on how many anchors are positive. Plain ``tf`` because it composes ``tfseg.ops``.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.ops.boxes import ciou
from tfseg.ops.dfl import per_side

# Targets stay just below the last bin so the upper neighbour bin exists.
_DFL_TARGET_MARGIN = 0.01


def ciou_loss(pred_boxes: tf.Tensor, target_boxes: tf.Tensor, weights: tf.Tensor,
              normalizer: tf.Tensor) -> tf.Tensor:
    """sum over anchors of (1 - CIoU) * weight, divided by ``normalizer``.

    Args:
        pred_boxes: ``[B, A, 4]`` float32 xyxy.
        target_boxes: ``[B, A, 4]`` float32 xyxy (any finite box where weight is 0).
        weights: ``[B, A]`` float32, zero on background anchors.
        normalizer: scalar float32 > 0 (the batch's target-score sum).

    Returns:
        Scalar float32.
    """
    per_anchor = 1.0 - ciou(pred_boxes, target_boxes)  # [B, A]
    return tf.reduce_sum(per_anchor * weights) / normalizer


def distribution_focal_loss(box_logits: tf.Tensor, target_distances: tf.Tensor,
                            weights: tf.Tensor, normalizer: tf.Tensor, reg_max: int) -> tf.Tensor:
    """Cross-entropy of each side's bin distribution against its two neighbouring bins.

    A target distance t (stride units, clipped to [0, reg_max - 1 - 0.01]) between bins i and
    i + 1 puts weight (i + 1 - t) on bin i and (t - i) on bin i + 1; on a bin exactly, all weight
    goes to that bin. The per-anchor loss is the mean over the four sides.

    Args:
        box_logits: ``[B, A, 4 * reg_max]`` float32 logits.
        target_distances: ``[B, A, 4]`` float32 (l, t, r, b), stride units.
        weights: ``[B, A]`` float32, zero on background anchors.
        normalizer: scalar float32 > 0.
        reg_max: bins per side.

    Returns:
        Scalar float32.
    """
    log_probs = tf.nn.log_softmax(per_side(box_logits, reg_max), axis=-1)  # [B, A, 4, R]
    target = tf.clip_by_value(target_distances, 0.0, reg_max - 1 - _DFL_TARGET_MARGIN)
    bins = tf.range(reg_max, dtype=tf.float32)  # [R]
    # Triangular ("tent") weights: 1 - |t - i| on the two bins around t, 0 elsewhere.
    bin_weights = tf.maximum(1.0 - tf.abs(target[..., None] - bins), 0.0)  # [B, A, 4, R]
    side_losses = -tf.reduce_sum(bin_weights * log_probs, axis=-1)  # [B, A, 4]
    per_anchor = tf.reduce_mean(side_losses, axis=-1)  # [B, A]
    return tf.reduce_sum(per_anchor * weights) / normalizer


def l1_distance_loss(pred_distances: tf.Tensor, target_distances: tf.Tensor, weights: tf.Tensor,
                     normalizer: tf.Tensor, image_size: int | tf.Tensor) -> tf.Tensor:
    """Mean absolute error of the four side distances, as fractions of the image side.

    YOLO26's replacement of DFL: with one "bin" per side the network predicts the distance
    itself, and the reference trains it with L1 on distances divided by the image width
    (left, right) or height (top, bottom); square inputs here, so both are ``image_size``.
    The per-anchor loss is the mean over the four sides.

    Args:
        pred_distances: ``[B, A, 4]`` float32 predicted (l, t, r, b), input pixels.
        target_distances: ``[B, A, 4]`` float32 target (l, t, r, b), input pixels.
        weights: ``[B, A]`` float32, zero on background anchors.
        normalizer: scalar float32 > 0.
        image_size: S, the square input side in pixels.

    Returns:
        Scalar float32.
    """
    per_anchor = tf.reduce_mean(tf.abs(pred_distances - target_distances), axis=-1)  # [B, A]
    return tf.reduce_sum(per_anchor * weights) / (normalizer * tf.cast(image_size, tf.float32))
