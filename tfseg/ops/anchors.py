"""Anchor points (cell centres) and their strides for a square input size."""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import STRIDES


def anchor_points(size: int | tf.Tensor,
                  strides: tuple[int, ...] = STRIDES) -> tuple[tf.Tensor, tf.Tensor]:
    """Centres of every grid cell, in input pixels, in the raw-output anchor order.

    Args:
        size: square input size in pixels, divisible by the largest stride; an int, or a
            scalar int32 tensor where the size is drawn at run time (multi-scale training).
        strides: the feature strides, finest first.

    Returns:
        points: ``[A, 2]`` float32 (x, y) in input pixels, i.e. (column + 0.5) * stride.
        stride_per_anchor: ``[A, 1]`` float32.
    """
    if isinstance(size, int) and size % max(strides):
        raise ValueError(f"input size {size} is not divisible by the largest stride {max(strides)}")
    points, per_anchor = [], []
    for stride in strides:
        cells = size // stride
        centres = (tf.range(cells, dtype=tf.float32) + 0.5) * stride
        ys, xs = tf.meshgrid(centres, centres, indexing="ij")  # row-major: y then x
        points.append(tf.reshape(tf.stack([xs, ys], axis=-1), [-1, 2]))
        per_anchor.append(tf.fill([cells * cells, 1], float(stride)))
    return tf.concat(points, axis=0), tf.concat(per_anchor, axis=0)
