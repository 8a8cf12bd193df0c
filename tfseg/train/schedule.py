"""The YOLO learning-rate recipe: linear warmup, then linear or cosine decay to ``lr0 * lrf``.

The recipe has three quantities that move with the iteration ``i`` (optimizer.iterations,
counted in batches from 0):

* the rate of weights (kernels, batch-norm scales): from 0 up to the decayed rate,
* the rate of biases (conv biases and batch-norm offsets): from ``warmup_bias_lr`` *down*
  to the decayed rate (a high bias rate lets the class-prior biases move early),
* SGD momentum: from 0.8 up to ``momentum``.

During warmup (``i < warmup_steps``) each is interpolated linearly between its start value
and its target at ``i``; afterwards it is its target. The decayed rate is
``lr0 * f(e)`` with ``e = floor(i / steps_per_epoch)`` the epoch index (the decay steps
once per epoch, as the reference recipe's scheduler does) and

    linear:  f(e) = (1 - e / epochs) * (1 - lrf) + lrf
    cosine:  f(e) = lrf + (1 - lrf) * (1 + cos(pi * e / epochs)) / 2

so ``f(0) = 1`` and ``f(epochs) = lrf`` (the last epoch trains at ``f(epochs - 1)``).

Why schedules and not a callback: each quantity is a serializable
``keras.optimizers.schedules.LearningRateSchedule`` of the iteration, evaluated inside the
compiled train step, so it needs no Python per batch, survives XLA, and is restored exactly on
resume because it depends only on ``optimizer.iterations`` (saved with the optimizer). Keras
gives an optimizer one rate, so the two parameter groups are realised by the optimizer
(tfseg/train/optim.py): it is given the weight schedule as its ``learning_rate`` and
evaluates the bias and momentum schedules itself, once per update, for its parameter groups.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

WARMUP_MOMENTUM = 0.8  # the reference recipe's momentum at iteration 0
def warmup_steps_for(warmup_epochs: float, steps_per_epoch: int, epochs: int | None = None) -> int:
    """Warmup length in iterations: ``round(min(warmup_epochs, epochs - 1) * steps_per_epoch)``.

    As the reference recipe (Ultralytics 8.4) does: at least the last epoch trains after the
    warmup, and there is no minimum number of iterations. Zero when ``warmup_epochs`` is 0.
    """
    if epochs is not None:
        warmup_epochs = min(warmup_epochs, max(epochs - 1, 0))
    if warmup_epochs <= 0:
        return 0
    return int(round(warmup_epochs * steps_per_epoch))


def decay_factor(epoch, epochs: int, lrf: float, cosine: bool):
    """f(e) of the module docstring, for a float tensor (or number) ``epoch``."""
    progress = epoch / float(epochs)
    if cosine:
        return lrf + (1.0 - lrf) * (1.0 + tf.cos(math.pi * progress)) / 2.0
    return (1.0 - progress) * (1.0 - lrf) + lrf


@keras.saving.register_keras_serializable(package="tfseg")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from ``warmup_start`` to ``lr0 * f(e)``, then ``lr0 * f(e)``.

    Args:
        lr0: initial rate after warmup.
        lrf: final rate as a fraction of lr0.
        epochs: epochs of the run.
        steps_per_epoch: iterations per epoch.
        warmup_steps: warmup length in iterations (see ``warmup_steps_for``); 0 disables.
        cosine: cosine instead of linear decay.
        warmup_start: the rate at iteration 0: 0 for weights, ``warmup_bias_lr`` for biases.

    Example:
        schedule = WarmupDecay(0.01, 0.01, epochs=100, steps_per_epoch=500, warmup_steps=1500)
        schedule(0) -> 0.0; schedule(750) -> 0.5 * 0.01 * f(1) = 0.0049505;
        schedule(49_999) -> 0.01 * f(99) = 0.000199
    """

    def __init__(self, lr0: float, lrf: float, epochs: int, steps_per_epoch: int,
                 warmup_steps: int, cosine: bool = False, warmup_start: float = 0.0):
        if epochs < 1 or steps_per_epoch < 1:
            raise ValueError(f"epochs ({epochs}) and steps_per_epoch ({steps_per_epoch}) "
                             "must be at least 1")
        self.lr0, self.lrf = float(lr0), float(lrf)
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch)
        self.warmup_steps, self.cosine = int(warmup_steps), bool(cosine)
        self.warmup_start = float(warmup_start)

    def __call__(self, step):
        with tf.name_scope("warmup_decay"):
            step = tf.cast(step, tf.float32)
            epoch = tf.floor(step / float(self.steps_per_epoch))
            target = self.lr0 * decay_factor(epoch, self.epochs, self.lrf, self.cosine)
            return _warm(step, self.warmup_steps, self.warmup_start, target)

    def get_config(self):
        return {"lr0": self.lr0, "lrf": self.lrf, "epochs": self.epochs,
                "steps_per_epoch": self.steps_per_epoch, "warmup_steps": self.warmup_steps,
                "cosine": self.cosine, "warmup_start": self.warmup_start}


@keras.saving.register_keras_serializable(package="tfseg")
class MomentumWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """SGD momentum: linear from ``start`` to ``momentum`` over the warmup, then constant.

    A LearningRateSchedule only for its serialization and ``__call__(step)`` interface.

    Args:
        momentum: the momentum after warmup (reference 0.937).
        warmup_steps: warmup length in iterations; 0 disables.
        start: the momentum at iteration 0 (reference 0.8).
    """

    def __init__(self, momentum: float, warmup_steps: int, start: float = WARMUP_MOMENTUM):
        self.momentum, self.warmup_steps, self.start = float(momentum), int(warmup_steps), float(start)

    def __call__(self, step):
        with tf.name_scope("momentum_warmup"):
            step = tf.cast(step, tf.float32)
            return _warm(step, self.warmup_steps, self.start, tf.constant(self.momentum))

    def get_config(self):
        return {"momentum": self.momentum, "warmup_steps": self.warmup_steps, "start": self.start}


def _warm(step, warmup_steps: int, start: float, target):
    """``start + (target - start) * step / warmup_steps`` while warming up, else ``target``."""
    if warmup_steps <= 0:
        return target
    fraction = tf.minimum(step / float(warmup_steps), 1.0)
    return start + (target - start) * fraction
