"""Many variables viewed as one flat vector, so an update over all of them is a few large ops.

The optimizer's update and the weight average touch every weight of the model (about 350
tensors for yolov8-seg-n). Written per variable, each costs tens of graph ops (reads, casts,
scalars, the update kernel) and, inside the accumulate-or-update condition, a captured
input per variable and per branch: about 9,500 ops that TensorFlow traces in Python at the
start of every run (seconds on a CPU) for arithmetic that is elementwise anyway. On a flat
vector the same elementwise arithmetic gives the same numbers with a handful of ops;
gathering the variables into it and writing them back costs about two ops per variable.
"""

from __future__ import annotations

import math

import tensorflow as tf


class FlatLayout:
    """Where each of a list of tensors (one dtype) lies in one flat vector.

    Args:
        shapes: the tensors' shapes, in the order they lie in the vector.
    """

    def __init__(self, shapes):
        self.shapes = [tuple(int(d) for d in shape) for shape in shapes]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        self.size = sum(self.sizes)

    def flatten(self, tensors) -> tf.Tensor:
        """The tensors (shaped as ``shapes``) concatenated into one vector of ``size``."""
        if not self.shapes:
            return tf.zeros((0,))
        vector = tf.constant([-1])  # one shape constant for all the reshapes, not one each
        return tf.concat([tf.reshape(t, vector) for t in tensors], axis=0)

    def unflatten(self, flat) -> list[tf.Tensor]:
        """The inverse of ``flatten``: one tensor per shape."""
        if not self.shapes:
            return []
        return [tf.reshape(piece, shape)
                for piece, shape in zip(tf.split(flat, self.sizes), self.shapes)]

    def unflatten_numpy(self, flat) -> list:
        """``unflatten`` of a numpy vector, without TensorFlow ops (saving, swapping)."""
        pieces, start = [], 0
        for size, shape in zip(self.sizes, self.shapes):
            pieces.append(flat[start:start + size].reshape(shape))
            start += size
        return pieces


def read(variable) -> tf.Tensor:
    """The value of a Keras or TensorFlow variable, read from its handle (on a replica:
    that replica's copy; outside ``strategy.run``, in a strategy's scope: the primary)."""
    if tf.distribute.in_cross_replica_context():
        return tf.convert_to_tensor(variable)
    return tf.raw_ops.ReadVariableOp(resource=variable.handle, dtype=variable.dtype)


def write(variable, value) -> None:
    """Assign ``value`` through the variable's handle: on a replica, that replica's copy
    only (every replica writes the same value after the synchronised update); outside
    ``strategy.run``, in a strategy's scope: every copy."""
    if tf.distribute.in_cross_replica_context():
        variable.assign(tf.cast(value, variable.dtype))
        return
    tf.raw_ops.AssignVariableOp(resource=variable.handle, value=tf.cast(value, variable.dtype))
