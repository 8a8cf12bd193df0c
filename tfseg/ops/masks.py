"""Mask geometry: prototype combination, cropping to boxes, tight boxes of masks."""

from __future__ import annotations

import tensorflow as tf


def combine_prototypes(coefficients: tf.Tensor, prototypes: tf.Tensor) -> tf.Tensor:
    """Mask logits from coefficients and prototypes.

    Args:
        coefficients: ``[B, N, K]`` per-instance coefficients.
        prototypes: ``[B, P, Q, K]`` prototype masks, NHWC.

    Returns:
        ``[B, N, P, Q]`` mask logits (apply sigmoid for probabilities).
    """
    return tf.einsum("bnk,bpqk->bnpq", coefficients, prototypes)


def box_inside(boxes: tf.Tensor, height, width, dtype=tf.float32) -> tuple[tf.Tensor, tf.Tensor]:
    """Which rows and columns of an ``height x width`` grid lie inside each box.

    A pixel (row r, column c) is inside when its centre (c + 0.5, r + 0.5) lies in
    [x1, x2) x [y1, y2): the box's pixels are the outer product of the two indicators.
    Built from comparisons only, so it lowers to ops the TFLite GPU delegate runs.

    Args:
        boxes: ``[..., 4]`` xyxy boxes in grid pixels.
        height, width: the grid's size (ints or scalar tensors).
        dtype: float dtype of the result.

    Returns:
        (inside_y ``[..., H]``, inside_x ``[..., W]``), 1 inside and 0 outside.
    """
    cols = tf.cast(tf.range(width), dtype) + 0.5  # [W]
    rows = tf.cast(tf.range(height), dtype) + 0.5  # [H]
    # split, not boxes[..., i]: slices that drop an axis do not run on the GPU delegate
    x1, y1, x2, y2 = tf.split(tf.cast(boxes, dtype), 4, axis=-1)  # each [..., 1]
    inside_x = tf.cast((cols >= x1) & (cols < x2), dtype)  # [..., W]
    inside_y = tf.cast((rows >= y1) & (rows < y2), dtype)  # [..., H]
    return inside_y, inside_x


def crop_to_boxes(masks: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
    """Zero every mask outside its box.

    A pixel is kept when its centre lies inside the box (see :func:`box_inside`).

    Args:
        masks: ``[..., H, W]`` masks (any float dtype).
        boxes: ``[..., 4]`` xyxy boxes in the masks' pixel units.

    Returns:
        ``[..., H, W]`` masks, zero outside their box.
    """
    inside_y, inside_x = box_inside(boxes, tf.shape(masks)[-2], tf.shape(masks)[-1],
                                    masks.dtype)  # [..., H], [..., W]
    return masks * inside_y[..., :, None] * inside_x[..., None, :]
