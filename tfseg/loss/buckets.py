"""Static sizes for work that follows a run-time count (positives, instances) under fixed shapes.

The train step compiles once per input shape, so a loss cannot size a tensor by a count it only
knows at run time. It can instead choose, at run time, among copies of its computation built for
a few static sizes: the smallest that holds the count. Each copy gives the same result as the
largest, because the rows it leaves out are padding that contributes nothing.
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


def switch_on_size(sizes: list[int], needed: tf.Tensor, compute):
    """``compute(size)`` for the smallest of ``sizes`` that holds ``needed``, chosen at run time.

    Args:
        sizes: ascending static sizes (power_of_two_buckets).
        needed: scalar count.
        compute: ``size -> nested tensors``; every size must give the same structure.

    Returns:
        What ``compute`` returns for the chosen size (one branch of a ``tf.switch_case``).
    """
    if len(sizes) == 1:
        return compute(sizes[0])
    return tf.switch_case(smallest_bucket(sizes, needed),
                          [lambda size=size: compute(size) for size in sizes])
