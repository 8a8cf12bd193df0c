"""The distribution-focal-loss box encoding: per side, a distribution over ``reg_max`` bins of
the distance from the anchor point, in units of the anchor's stride (Li et al. 2020).

Shared by the loss (training) and the post-processing (evaluation, prediction, exports), so
both read the network's box output the same way. GPU-delegate friendly: reshape to rank 4,
softmax, multiply, reduce.
"""

from __future__ import annotations

import tensorflow as tf


def per_side(box_logits: tf.Tensor, reg_max: int) -> tf.Tensor:
    """``[B, A, 4 * reg_max]`` -> ``[B, A, 4, reg_max]``, sides (left, top, right, bottom)."""
    batch, anchors = tf.shape(box_logits)[0], tf.shape(box_logits)[1]
    return tf.reshape(box_logits, [batch, anchors, 4, reg_max])


def dfl_expectation(box_logits: tf.Tensor, reg_max: int) -> tf.Tensor:
    """Expected distance per side: softmax over the bins, weighted by the bin index.

    With ``reg_max`` 1 (YOLO26: no DFL) there is no distribution: the four values are the
    distances themselves, returned as they are.

    Args:
        box_logits: ``[B, A, 4 * reg_max]`` float32 logits.
        reg_max: bins per side.

    Returns:
        ``[B, A, 4]`` float32 distances in stride units, in [0, reg_max - 1] (any value for
        reg_max 1).
    """
    if reg_max == 1:
        return box_logits
    probabilities = tf.nn.softmax(per_side(box_logits, reg_max), axis=-1)  # [B, A, 4, R]
    bins = tf.range(reg_max, dtype=probabilities.dtype)  # [R]: 0, 1, ..., reg_max - 1
    return tf.reduce_sum(probabilities * bins, axis=-1)  # [B, A, 4]
