"""Work that follows a run-time count (positives, instances) instead of its padded maximum.

Two ways, the same result:

- Static shapes (XLA, TPUs): the step compiles once per input shape, so a tensor cannot be sized
  by a count known only at run time. The computation is built for a few static sizes instead,
  and the smallest that holds the count is chosen at run time (a ``tf.switch_case``).
- Run-time shapes (TensorFlow's graph executor, the CPU default): the computation is built once
  and sized by the count itself. Building every size's copy, and each copy's gradient, costs the
  first step most of its tracing time and the process a large share of its resident memory
  (docs/benchmarks.md has the figures and the processor they were measured on).

Either way the rows left out are padding that contributes nothing, so each size gives the result
of the largest.
"""

from __future__ import annotations

import tensorflow as tf


def power_of_two_buckets(cap: int, smallest: int = 16) -> list[int]:
    """Static sizes to choose from: powers of two from ``smallest`` below ``cap``, then ``cap``
    itself (e.g. 256 -> [16, 32, 64, 128, 256]; 100 -> [16, 32, 64, 100])."""
    sizes = []
    size = smallest
    while size < cap:
        sizes.append(size)
        size *= 2
    return sizes + [cap]


def smallest_bucket(sizes: list[int], needed: tf.Tensor) -> tf.Tensor:
    """Index into ``sizes`` of the smallest size >= ``needed`` (a scalar; the last index when
    none is) -> scalar int32, for ``tf.switch_case``."""
    needed = tf.cast(needed, tf.float32)
    return tf.reduce_sum(tf.cast(tf.constant(sizes[:-1], tf.float32) < needed, tf.int32))


def switch_on_size(sizes: list[int], needed: tf.Tensor, compute, static_shapes: bool = True):
    """``compute(size)`` for a size that holds ``needed``, chosen at run time.

    Args:
        sizes: ascending static sizes (power_of_two_buckets); the last is the cap.
        needed: scalar count.
        compute: ``size -> nested tensors``; every size must give the same structure.
        static_shapes: True: the smallest of ``sizes`` that holds ``needed`` (one branch of a
            ``tf.switch_case``, for XLA); False: ``needed`` itself (a scalar int32 tensor,
            at least 1, at most the cap), one computation with run-time shapes.

    Returns:
        What ``compute`` returns for the chosen size.
    """
    if not static_shapes:
        size = tf.cast(tf.math.ceil(tf.cast(needed, tf.float32)), tf.int32)
        return compute(tf.clip_by_value(size, 1, sizes[-1]))
    if len(sizes) == 1:
        return compute(sizes[0])
    return tf.switch_case(smallest_bucket(sizes, needed),
                          [lambda size=size: compute(size) for size in sizes])
