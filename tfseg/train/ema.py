"""Exponential moving average of every model weight, with the ramped decay the YOLO recipe uses.

After each optimizer update ``u`` (counted from 1) every float weight's shadow moves as

    d(u) = decay * (1 - exp(-u / tau))          (decay 0.9999, tau 2000)
    shadow = d(u) * shadow + (1 - d(u)) * weight

so the average follows the raw weights closely at first (d(1) ~ 0.0005) and smooths more as
training settles. The shadows cover *all* weights, batch-norm moving mean and variance
included: evaluation and export use the averaged network as a whole.

Why not Keras' optimizer EMA (``use_ema=True``): its momentum is constant (no ramp, so early
averages are dominated by the random initialisation for thousands of steps) and it averages
only the trainable variables, so the batch-norm statistics would not match the averaged
kernels. ``ModelEMA`` is the small replacement: shadows of ``model.weights``, a context manager
that swaps the averages in for evaluation and export, and a state dict saved next to the
resume backup and restored with it.

Where the update runs: in training, inside the train step. ``ModelEMA(model, optimizer)``
keeps its shadows as the optimizer's own variables (replica-local, like its accumulators) and
has the optimizer run the update right after each of its updates (tfseg.train.optim), so a
step needs no host round trip, gradient accumulation and ``steps_per_execution`` count
updates correctly, and under a distribution strategy every replica averages its own copy
(the weights are equal on every replica after the synchronised update, the batch-norm
statistics too). Without an optimizer the shadows are plain variables and ``update()`` runs
one step (tests, tools).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfseg.train.flat import FlatLayout, read, write


def ramped_decay(updates, decay: float = 0.9999, tau: float = 2000.0):
    """``decay * (1 - exp(-updates / tau))`` for a number or a float tensor."""
    if isinstance(updates, (int, float)):
        return decay * (1.0 - math.exp(-updates / tau))
    return decay * (1.0 - tf.exp(-updates / tau))


class ModelEMA:
    """Shadows of all of a model's weights and their ramped-decay update.

    The float weights' shadows are one flat vector per dtype (tfseg.train.flat: the update
    is a few ops whatever the number of weights); other weights (integer counters) are
    copied, as averaging them means nothing. With a tfseg optimizer the trainable weights
    lie first in their vector, in the optimizer's own flat order: its update hands over the
    new weights as one vector, and only the others (batch-norm statistics, frozen layers)
    are read again.

    Args:
        model: a built Keras model.
        optimizer: the model's (compiled) tfseg optimizer: the shadows become its variables
            and it updates them after each of its updates, inside the train step; create the
            EMA in the same distribution-strategy scope. None: plain variables, ``update()``
            by hand.
        decay: the asymptotic decay (reference 0.9999).
        tau: ramp length in updates (reference 2000).

    Example:
        ema = ModelEMA(model, model.optimizer)  # after compile; fit now keeps it up to date
        with ema.swapped_in(model):             # evaluate or save the averaged network
            model.save_weights("best.weights.h5")
    """

    def __init__(self, model, optimizer=None, decay: float = 0.9999, tau: float = 2000.0):
        self.decay, self.tau = float(decay), float(tau)
        self._weights = list(model.weights)
        self._averaged: dict[str, list[int]] = {}  # dtype -> indices of the weights it holds
        self._copied: list[int] = []
        for i, weight in enumerate(self._weights):
            if tf.as_dtype(weight.dtype).is_floating:
                self._averaged.setdefault(tf.as_dtype(weight.dtype).name, []).append(i)
            else:
                self._copied.append(i)
        # (dtype, weights in the optimizer's order): the leading part of that dtype's vector
        self._trained = self._trained_first(model, optimizer)
        self._layouts = {dtype: FlatLayout([self._weights[i].shape for i in indices])
                         for dtype, indices in self._averaged.items()}

        def variable(shape, dtype, name):
            if optimizer is None:
                with tf.init_scope():
                    return tf.Variable(tf.zeros(shape, dtype), trainable=False, name=f"ema/{name}")
            # inside the strategy scope, like the optimizer's other variables
            return optimizer.add_variable(shape, dtype=dtype, name=f"ema_{name}")

        self._flat = {dtype: variable((layout.size,), dtype, dtype)
                      for dtype, layout in self._layouts.items()}
        self._copies = {i: variable(self._weights[i].shape, self._weights[i].dtype, str(i))
                        for i in self._copied}
        self.updates = variable((), tf.int64, "updates")
        self.load_state({f"shadow_{i}": np.asarray(w) for i, w in enumerate(self._weights)}
                        | {"updates": 0})
        if optimizer is not None:
            optimizer.after_update = self._update
        self._update_fn = tf.function(lambda: self._update(None), jit_compile=False)

    def _trained_first(self, model, optimizer):
        """Reorder the averaged indices so the optimizer's trainable variables lead their
        dtype's vector in its flat order; returns (dtype, those indices), or None when the
        optimizer has no flat order (not a tfseg optimizer) or the variables do not fit."""
        if optimizer is None or not hasattr(optimizer, "after_update"):
            return None
        from tfseg.train.optim import flat_order

        where = {id(w): i for i, w in enumerate(self._weights)}
        trainable = list(model.trainable_variables)
        indices = [where.get(id(v)) for v in trainable]
        dtypes = {tf.as_dtype(v.dtype).name for v in trainable}
        if not trainable or None in indices or len(dtypes) != 1:
            return None
        dtype = dtypes.pop()
        if dtype not in self._averaged:
            return None
        leading = [indices[j] for j in flat_order(trainable)]
        rest = set(leading)
        self._averaged[dtype] = leading + [i for i in self._averaged[dtype] if i not in rest]
        return dtype, leading

    def _gathered(self, updated) -> dict:
        """The current weights as one vector per dtype; ``updated`` (the optimizer's
        (variables, vector) after its update) stands for the trainable ones when they are
        the variables this average expects."""
        flat = {}
        for dtype, indices in self._averaged.items():
            layout = self._layouts[dtype]
            leading = 0
            if (updated is not None and self._trained is not None and self._trained[0] == dtype
                    and [id(v) for v in updated[0]]
                    == [id(self._weights[i]) for i in self._trained[1]]):
                leading = len(self._trained[1])
            reads = [read(self._weights[i]) for i in indices[leading:]]
            if not leading:
                flat[dtype] = layout.flatten(reads)
                continue
            rest = FlatLayout(layout.shapes[leading:]).flatten(reads)
            flat[dtype] = tf.concat([tf.cast(updated[1], dtype), rest], axis=0)
        return flat

    def _update(self, due, updated=None):
        """One EMA step, when ``due`` (a boolean tensor; None: always). Graph code: what the
        optimizer runs after each batch's step, with its update condition and, as
        ``updated``, its new trainable weights (``after_update``'s arguments).

        ``s = d s + (1 - d) w`` as ``s -= (1 - d)(s - w)``: one fused kernel per flat
        shadow (ResourceApplyGradientDescent). The weights are gathered before the
        condition, so it captures one vector per dtype rather than every weight.
        """
        flat = self._gathered(updated)
        copied = {i: read(self._weights[i]) for i in self._copied}

        def step():
            self.updates.assign_add(1)
            d = ramped_decay(tf.cast(self.updates, tf.float32), self.decay, self.tau)
            for dtype, weights in flat.items():
                shadow = self._flat[dtype]
                tf.raw_ops.ResourceApplyGradientDescent(
                    var=shadow.handle, alpha=1.0 - tf.cast(d, dtype),
                    delta=read(shadow) - weights)
            for i, value in copied.items():
                write(self._copies[i], value)

        if due is None:
            step()
        else:
            tf.cond(due, step, lambda: None)

    def update(self) -> None:
        """One EMA step from the model's current weights (outside training: tests, tools)."""
        self._update_fn()

    def shadow_values(self) -> list[np.ndarray]:
        """The averages, one array per model weight, in ``model.weights`` order."""
        values: list = [None] * len(self._weights)
        for dtype, indices in self._averaged.items():
            pieces = self._layouts[dtype].unflatten_numpy(np.asarray(self._flat[dtype]))
            for i, piece in zip(indices, pieces):
                values[i] = piece
        for i, copy in self._copies.items():
            values[i] = np.asarray(copy)
        return values

    @contextlib.contextmanager
    def swapped_in(self, model=None):
        """Within the block the model holds the averaged weights; the raw ones come back after."""
        weights = self._weights if model is None else list(model.weights)
        raw = [np.asarray(w) for w in weights]
        try:
            for weight, shadow in zip(weights, self.shadow_values()):
                weight.assign(shadow)
            yield
        finally:
            for weight, value in zip(weights, raw):
                weight.assign(value)

    def state(self) -> dict[str, np.ndarray]:
        """Shadows (``shadow_<i>``, one per model weight) and the update count as numpy
        arrays (what ``save`` writes)."""
        state = {f"shadow_{i}": value for i, value in enumerate(self.shadow_values())}
        state["updates"] = np.asarray(self.updates.numpy())
        return state

    def load_state(self, state) -> None:
        """Restore from ``state()``'s output (or an ``np.load`` of a saved file).

        Raises:
            ValueError: the saved shadows do not match this model's weights.
        """
        count = sum(1 for key in state if key.startswith("shadow_"))
        if count != len(self._weights):
            raise ValueError(f"EMA state has {count} weights, the model has {len(self._weights)}")
        values = []
        for i, weight in enumerate(self._weights):
            value = np.asarray(state[f"shadow_{i}"])
            if tuple(value.shape) != tuple(weight.shape):
                raise ValueError(f"EMA weight {i} ({weight.path}): saved shape "
                                 f"{value.shape}, model shape {tuple(weight.shape)}")
            values.append(value)
        for dtype, indices in self._averaged.items():
            self._flat[dtype].assign(np.concatenate(
                [values[i].reshape(-1).astype(dtype) for i in indices]))
        for i, copy in self._copies.items():
            copy.assign(values[i])
        self.updates.assign(int(state["updates"]))

    def save(self, path: str | Path, **extra) -> None:
        """Write the state (plus ``extra`` scalars, e.g. the epoch) to an .npz, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, **self.state(), **{f"extra_{k}": np.asarray(v) for k, v in extra.items()})
        tmp.replace(path)

    def load(self, path: str | Path) -> dict:
        """Restore from ``save``'s file; returns its ``extra`` scalars."""
        with np.load(path) as saved:
            self.load_state({k: saved[k] for k in saved.files})
            return {k[len("extra_"):]: saved[k].item() for k in saved.files
                    if k.startswith("extra_")}
