"""Multi-scale training: each batch resized to a size drawn around the training size S.

``multi_scale`` f > 0 draws, for every batch, a size uniformly from the multiples of 32 between
S (1 - f) and S (1 + f) (at least 32), and resizes the batch's images to it (bilinear, no
antialiasing, as the reference's interpolation); the boxes are scaled with them. The masks stay
at S / 4: the loss compares the network's prototypes, brought to the masks' grid, with them
(tfseg/loss/yolo_seg_loss.py), so no instance's mask is resampled and none is lost to it.

The batches' images then have a run-time size (``[B, None, None, 3]``): the train step is
traced once for every size, not once per size.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import STRIDES

STRIDE = max(STRIDES)  # the network's largest stride: every size is a multiple of it


def scale_choices(size: int, fraction: float, stride: int = STRIDE) -> list[int]:
    """The sizes a batch may be drawn at: multiples of ``stride`` in [S (1 - f), S (1 + f)].

    Args:
        size: S, the training size (a multiple of ``stride``).
        fraction: f in [0, 1); 0 gives ``[size]``.
        stride: the size step.

    Returns:
        Ascending sizes, S among them (e.g. 320, 0.5 -> 160, 192, ..., 480).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"multi_scale must lie in [0, 1), got {fraction}")
    low = max(stride, -(-int(round(size * (1.0 - fraction))) // stride) * stride)
    high = max(low, int(round(size * (1.0 + fraction))) // stride * stride)
    return list(range(low, high + 1, stride))


def resize_batch(images: tf.Tensor, targets: dict, draw: tf.Tensor, choices: list[int],
                 size: int) -> tuple[tf.Tensor, dict]:
    """One batch at a size drawn from ``choices``.

    Args:
        images: ``[B, S, S, 3]`` float32.
        targets: TRAIN_TARGETS; boxes ``[B, M, 4]`` xyxy pixels of S (padding rows are zero).
        draw: scalar int64, this batch's random draw (tf.data.Dataset.random).
        choices: the sizes (scale_choices).
        size: S.

    Returns:
        (images ``[B, s, s, 3]``, targets with boxes in pixels of s; the rest unchanged).
    """
    seed = tf.stack([draw, tf.constant(len(choices), tf.int64)])
    index = tf.random.stateless_uniform([], seed, maxval=len(choices), dtype=tf.int32)
    new_size = tf.gather(tf.constant(choices, tf.int32), index)
    resized = tf.image.resize(images, tf.stack([new_size, new_size]), method="bilinear")
    factor = tf.cast(new_size, tf.float32) / float(size)
    return resized, dict(targets, boxes=targets["boxes"] * factor)


def multi_scale_batches(batches: tf.data.Dataset, size: int, fraction: float,
                        seed: int) -> tf.data.Dataset:
    """``batches`` each resized to a size drawn by ``seed`` (the same sizes under the same
    seed); ``batches`` unchanged when ``fraction`` is 0."""
    choices = scale_choices(size, fraction)
    if len(choices) == 1 and choices[0] == size:
        return batches
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(batches, draws).map(
        lambda batch, draw: resize_batch(*batch, draw, choices, size),
        num_parallel_calls=tf.data.AUTOTUNE)
