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


def ramped_decay(updates, decay: float = 0.9999, tau: float = 2000.0):
    """``decay * (1 - exp(-updates / tau))`` for a number or a float tensor."""
    if isinstance(updates, (int, float)):
        return decay * (1.0 - math.exp(-updates / tau))
    return decay * (1.0 - tf.exp(-updates / tau))


class ModelEMA:
    """Shadows of all of a model's weights and their ramped-decay update.

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
        if optimizer is None:
            with tf.init_scope():
                self.shadows = [tf.Variable(np.asarray(w), trainable=False, name=f"ema/{i}")
                                for i, w in enumerate(self._weights)]
                self.updates = tf.Variable(0, dtype=tf.int64, trainable=False,
                                           name="ema/updates")
        else:  # inside the strategy scope, like the optimizer's other variables
            self.shadows = [optimizer.add_variable(w.shape, dtype=w.dtype, name=f"ema_{i}")
                            for i, w in enumerate(self._weights)]
            self.updates = optimizer.add_variable((), dtype="int64", name="ema_updates")
            for shadow, weight in zip(self.shadows, self._weights):
                shadow.assign(weight)
            optimizer.after_update = self._update
        self._update_fn = tf.function(self._update, jit_compile=False)

    def _update(self):
        """One EMA step (graph code; also what the optimizer runs after each update).

        ``s = d s + (1 - d) w`` as ``s -= (1 - d)(s - w)``: one fused kernel per shadow
        (ResourceApplyGradientDescent), so the train step's graph stays small.
        """
        self.updates.assign_add(1)
        d = ramped_decay(tf.cast(self.updates, tf.float32), self.decay, self.tau)
        take = {}  # dtype -> 1 - d, computed once rather than once per shadow
        for shadow, weight in zip(self.shadows, self._weights):
            dtype = tf.as_dtype(shadow.dtype)
            value = _tf_variable(shadow)
            if dtype.is_floating:
                if dtype not in take:
                    take[dtype] = 1.0 - tf.cast(d, dtype)
                tf.raw_ops.ResourceApplyGradientDescent(
                    var=value.handle, alpha=take[dtype],
                    delta=value - tf.cast(_tf_variable(weight), dtype))
            else:  # integer state (counters): copy, as averaging them means nothing
                value.assign(tf.cast(_tf_variable(weight), dtype))

    def update(self) -> None:
        """One EMA step from the model's current weights (outside training: tests, tools)."""
        self._update_fn()

    @contextlib.contextmanager
    def swapped_in(self, model=None):
        """Within the block the model holds the averaged weights; the raw ones come back after."""
        weights = self._weights if model is None else list(model.weights)
        raw = [np.asarray(w) for w in weights]
        try:
            for weight, shadow in zip(weights, self.shadows):
                weight.assign(shadow.numpy())
            yield
        finally:
            for weight, value in zip(weights, raw):
                weight.assign(value)

    def state(self) -> dict[str, np.ndarray]:
        """Shadows and the update count as numpy arrays (what ``save`` writes)."""
        state = {f"shadow_{i}": s.numpy() for i, s in enumerate(self.shadows)}
        state["updates"] = np.asarray(self.updates.numpy())
        return state

    def load_state(self, state) -> None:
        """Restore from ``state()``'s output (or an ``np.load`` of a saved file).

        Raises:
            ValueError: the saved shadows do not match this model's weights.
        """
        count = sum(1 for key in state if key.startswith("shadow_"))
        if count != len(self.shadows):
            raise ValueError(f"EMA state has {count} weights, the model has {len(self.shadows)}")
        for i, shadow in enumerate(self.shadows):
            value = state[f"shadow_{i}"]
            if tuple(value.shape) != tuple(shadow.shape):
                raise ValueError(f"EMA weight {i} ({self._weights[i].path}): saved shape "
                                 f"{value.shape}, model shape {tuple(shadow.shape)}")
            shadow.assign(value)
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


def _tf_variable(variable) -> tf.Variable:
    """The TensorFlow variable behind a Keras one (ops on it trace faster than on the Keras
    wrapper); a TensorFlow variable as it is."""
    return variable if isinstance(variable, tf.Variable) else variable.value
