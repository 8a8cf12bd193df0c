"""Optimizers of the YOLO recipe: SGD with Nesterov momentum, AdamW, and the "auto" choice.

Three parameter groups, told apart by the variable's name (Keras names them per layer):

* ``decay``: conv and dense kernels: the only variables with weight decay;
* ``bias``: conv biases and batch-norm offsets (``bias``, ``beta``): no decay, and their own
  warmup rate (from ``warmup_bias_lr`` down, see tfseg/train/schedule.py);
* ``no_decay``: everything else trainable (batch-norm scales ``gamma``).

Keras optimizers have one rate and apply decay through ``weight_decay`` with name-pattern
exclusions; the groups here need a second rate schedule and, for SGD, the reference's
*coupled* L2 decay (added to the gradient before momentum, as the recipe's 5e-4 was tuned
for). So both classes below replace Keras' update (``_backend_apply_gradients``, see "Order of
operations") and leave Keras' own ``weight_decay`` unset. Each update computes its scalars
(rates, momentum, Adam's bias corrections) once per group, then updates every variable
(``_update_variable``); ``update_step``, Keras' per-variable entry, does both for one variable.

Gradient scale: the loss (tfseg/loss) already sums over the images of the batch, as the
reference does. With gradient accumulation to the nominal batch of 64 the reference *sums*
gradients over ``accumulate`` batches while Keras averages them; ``gradient_scale = accumulate
* R`` restores the reference's scale, so one update equals a single-device update on
``accumulate`` global batches, whatever the number of replicas. ``R`` (``make_optimizer``'s
``replicas``) is the factor a loss divided by the replica count would need (Keras' convention
for compiled losses); tfseg's ``compute_loss`` returns each replica's own batch sum and the
replicas' gradients are summed, so training passes ``replicas=1`` (tfseg/train/strategy.py).

Order of operations, on one device and on R replicas alike (``_backend_apply_gradients``):
sum the replicas' gradients; accumulate (``accumulate > 1``: add them into the
``gradient_accumulator`` variables; once ``accumulate`` batches have gathered since the last
update, update with their sum / ``accumulate`` and reset them); scale by ``gradient_scale``;
clip (``global_clipnorm``, so the clip bounds the summed gradient, as the reference clips);
update. ``iterations`` counts updates, ``_iterations`` batches (the schedules read it); both,
the batch of the last update and the accumulators are optimizer variables, saved and restored
with the Keras checkpoint.

Accumulation warmup (``accumulate_warmup`` = W batches, the recipe's warmup): as in the
reference, the batches per update grow from 1 to ``accumulate`` over the warmup,
``round(1 + (accumulate - 1) * min(i / W, 1))`` at batch ``i``, so the first epochs make
several times more (smaller) updates; each update still applies the *sum* of the batches it
gathered (times R), whatever their number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import tensorflow as tf

from tfseg.train.schedule import MomentumWarmup, WarmupDecay, warmup_steps_for

NOMINAL_BATCH = 64  # the reference recipe's nominal batch size (gradient accumulation target)
AUTO_SGD_ITERATIONS = 10_000  # "auto": SGD for runs longer than this many nominal iterations
_DECAYED_NAMES = {"kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"}
_BIAS_NAMES = {"bias", "beta"}


def parameter_group(variable) -> str:
    """``"decay"``, ``"bias"`` or ``"no_decay"`` for a model variable, from its name."""
    name = variable.name.split("/")[-1].split(":")[0]
    if name in _DECAYED_NAMES:
        return "decay"
    if name in _BIAS_NAMES:
        return "bias"
    return "no_decay"


class _ParameterGroups:
    """What the two optimizers share: per-group rates, kernel-only decay, gradient scale."""

    def _init_groups(self, bias_learning_rate, kernel_decay: float, gradient_scale: float,
                     accumulate_warmup: int = 0):
        if self.weight_decay is not None or self.use_ema:
            # Both would run Keras' cross-replica updates, which _backend_apply_gradients
            # replaces; kernel_decay and tfseg.train.ema.ModelEMA are the recipe's own.
            raise ValueError(f"{self.name}: use kernel_decay and tfseg.train.ema instead of "
                             "Keras' weight_decay and use_ema")
        self.bias_learning_rate = bias_learning_rate
        self.kernel_decay = float(kernel_decay)
        self.gradient_scale = float(gradient_scale)
        self.accumulate_warmup = int(accumulate_warmup)
        self.after_update = None  # graph code run right after each update (tfseg.train.ema)

    def _build_counters(self):
        """The update counter and the batch of the last update (-1: none yet); replica-local
        like the accumulators (every replica makes the same decision)."""
        self._updates = self.add_variable((), initializer="zeros", dtype="int64", name="updates",
                                          aggregation="none")
        self._last_update = self.add_variable((), initializer=keras.initializers.Constant(-1),
                                              dtype="int64", name="last_update",
                                              aggregation="none")

    @property
    def iterations(self):
        """Optimizer updates so far (batches when not accumulating); Adam's bias correction
        and the EMA count these."""
        if self.gradient_accumulation_steps and getattr(self, "_updates", None) is not None:
            return self._updates
        return self._iterations

    def _accumulate_now(self):
        """Batches per update at the current batch (the accumulation warmup)."""
        steps = self.gradient_accumulation_steps
        if self.accumulate_warmup <= 0:
            return tf.constant(steps, tf.int64)
        progress = tf.minimum(tf.cast(self._iterations, tf.float32) / self.accumulate_warmup, 1.0)
        ramped = tf.round(1.0 + (steps - 1) * progress)  # half to even, as numpy's round
        return tf.maximum(tf.cast(ramped, tf.int64), 1)

    # Schedules read ``_iterations`` (batches seen), as Keras does for ``learning_rate``;
    # ``iterations`` counts optimizer updates when gradients are accumulated.

    def _follows_bias_rate(self, variable) -> bool:
        return self.bias_learning_rate is not None and parameter_group(variable) == "bias"

    def _group_scalars(self, learning_rate) -> tuple[dict, dict]:
        """This update's scalars (``_step_scalars``) for the weights' rate and for the bias
        schedule's rate (the same dict when there is no bias schedule)."""
        weights = self._step_scalars(learning_rate)
        if self.bias_learning_rate is None:
            return weights, weights
        return weights, self._step_scalars(self.bias_learning_rate(self._iterations))

    def _scalars_of(self, variable, groups: tuple[dict, dict]) -> dict:
        weights, biases = groups
        return biases if self._follows_bias_rate(variable) else weights

    def update_step(self, gradient, variable, learning_rate):
        """Keras' per-variable update: this variable's group scalars, then its update."""
        groups = self._group_scalars(learning_rate)
        self._update_variable(gradient, variable, self._scalars_of(variable, groups))

    def _decays(self, variable) -> bool:
        return self.kernel_decay > 0 and parameter_group(variable) == "decay"

    def _clip_gradients(self, grads):
        if self.gradient_scale != 1.0:
            grads = [g if g is None else g * self.gradient_scale for g in grads]
        return super()._clip_gradients(grads)

    # Keras 3.15's TF backend all-reduces the replicas' gradients inside its update: after
    # clipping (each replica clipped alone) and, when accumulating, inside a ``cond`` (a
    # ``merge_call`` there cannot trace without XLA). These two hooks sum first, outside any
    # cond, so every replica holds the same summed gradients and updates its own copy of
    # each mirrored variable (aggregation "none": a replica-local assign, no merge_call).
    # The arithmetic is Keras' own, so one device updates exactly as before.

    def _backend_apply_gradients(self, grads, trainable_variables):
        """Sum over replicas, then accumulate or update (Keras' ``(g + acc) / steps``).

        Args:
            grads: this replica's gradients, one per variable (no None).
            trainable_variables: the variables they belong to.
        """
        grads = _summed_over_replicas(self, grads, trainable_variables)
        steps = self.gradient_accumulation_steps
        if not steps:
            self._update_on_summed(grads, trainable_variables)
            self._after_update()
            return
        accumulators = [self._accumulated_gradients[self._get_variable_index(v)]
                        for v in trainable_variables]
        batch = tf.cast(self._iterations, tf.int64)  # this batch's index

        def update():
            self._update_on_summed([(g + a) / steps for g, a in zip(grads, accumulators)],
                                   trainable_variables)
            self._backend_reset_gradient_accumulators()
            self.assign_add(self._updates, 1)
            self.assign(self._last_update, batch)
            self._after_update()

        def accumulate():
            for g, a in zip(grads, accumulators):
                self.assign(a, a + g)

        tf.cond(batch - self._last_update >= self._accumulate_now(), update, accumulate)

    def _after_update(self):
        if self.after_update is not None:
            self.after_update()

    def _update_on_summed(self, grads, trainable_variables):
        """Scale and clip the summed gradients, then update each variable.

        The scalars of an update (rates, momentum, Adam's bias corrections) are computed once
        per group, not once per variable as Keras' ``update_step`` would: with ~200
        variables that made the update's graph ~15,000 nodes, most of them scalar
        arithmetic repeated, which the process holds in memory and runs at every update.
        """
        grads = self._clip_gradients(grads)
        groups = self._group_scalars(self.learning_rate)
        for grad, variable in zip(grads, trainable_variables):
            self._update_variable(grad, variable, self._scalars_of(variable, groups))

    def _group_config(self) -> dict:
        return {"bias_learning_rate": _serialize(self.bias_learning_rate),
                "kernel_decay": self.kernel_decay, "gradient_scale": self.gradient_scale,
                "accumulate_warmup": self.accumulate_warmup}


@keras.saving.register_keras_serializable(package="tfseg")
class NesterovSGD(_ParameterGroups, keras.optimizers.Optimizer):
    """SGD with Nesterov momentum, coupled L2 decay on kernels, per-group rates.

    Update (PyTorch's formulation): ``g = grad + decay * w`` (kernels only);
    ``b = mu * b + g``; ``w -= lr * (g + mu * b)``.

    Args:
        learning_rate: float or schedule: the rate of weights.
        bias_learning_rate: schedule for the ``bias`` group; None: same as learning_rate.
        momentum: float or schedule of the iteration (warmup from 0.8).
        kernel_decay: L2 coefficient on kernels.
        gradient_scale: multiplies gradients before clipping (see the module docstring).
        accumulate_warmup: batches over which accumulation grows from 1 to
            ``gradient_accumulation_steps`` (module docstring); 0: fixed from the start.
        **kwargs: Keras optimizer arguments (global_clipnorm, gradient_accumulation_steps...;
            not weight_decay or use_ema).

    Raises:
        ValueError: Keras' weight_decay or use_ema set.
    """

    def __init__(self, learning_rate=0.01, bias_learning_rate=None, momentum=0.937,
                 kernel_decay: float = 5e-4, gradient_scale: float = 1.0,
                 accumulate_warmup: int = 0, name="nesterov_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._init_groups(_deserialize(bias_learning_rate), kernel_decay, gradient_scale,
                          accumulate_warmup)
        self.momentum = _deserialize(momentum)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._build_counters()
        self.momentums = self.add_optimizer_variables(variables, "momentum")

    def _momentum_now(self):
        if callable(self.momentum):
            return self.momentum(self._iterations)
        return self.momentum

    def _step_scalars(self, learning_rate) -> dict:
        return {"lr": tf.cast(learning_rate, tf.float32),
                "mu": tf.cast(self._momentum_now(), tf.float32)}

    def _update_variable(self, gradient, variable, scalars):
        """Coupled decay (kernels), then one fused kernel: ``b = mu * b + g``,
        ``w -= lr * g + lr * mu * b`` (TensorFlow's Nesterov momentum is PyTorch's step)."""
        dtype = variable.dtype
        gradient = tf.cast(gradient, dtype)
        if self._decays(variable):
            gradient = gradient + self.kernel_decay * variable.value
        buffer = self.momentums[self._get_variable_index(variable)]
        tf.raw_ops.ResourceApplyMomentum(
            var=variable.handle, accum=buffer.handle, lr=tf.cast(scalars["lr"], dtype),
            grad=gradient, momentum=tf.cast(scalars["mu"], dtype), use_nesterov=True)

    def get_config(self):
        config = super().get_config()
        config.update(self._group_config(), momentum=_serialize(self.momentum))
        return config


@keras.saving.register_keras_serializable(package="tfseg")
class GroupedAdamW(_ParameterGroups, keras.optimizers.Adam):
    """Adam with decoupled weight decay on kernels only (``w -= lr * decay * w``), per-group rates.

    Args:
        learning_rate: float or schedule: the rate of weights.
        bias_learning_rate: schedule for the ``bias`` group; None: same as learning_rate.
        beta_1: first-moment decay (the recipe's ``momentum``).
        kernel_decay: decoupled decay coefficient on kernels.
        gradient_scale: multiplies gradients before clipping.
        accumulate_warmup: as NesterovSGD's.
        **kwargs: Keras Adam arguments (not weight_decay or use_ema).

    Raises:
        ValueError: Keras' weight_decay or use_ema set.
    """

    def __init__(self, learning_rate=0.001, bias_learning_rate=None, beta_1=0.9,
                 kernel_decay: float = 5e-4, gradient_scale: float = 1.0, epsilon=1e-8,
                 accumulate_warmup: int = 0, name="grouped_adamw", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, epsilon=epsilon, name=name,
                         **kwargs)
        self._init_groups(_deserialize(bias_learning_rate), kernel_decay, gradient_scale,
                          accumulate_warmup)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._build_counters()

    def _step_scalars(self, learning_rate) -> dict:
        """Keras Adam's per-update scalars (its ``update_step``'s arithmetic, in float32)."""
        lr = tf.cast(learning_rate, tf.float32)
        local_step = tf.cast(self.iterations + 1, tf.float32)
        beta_1_power = tf.pow(tf.cast(self.beta_1, tf.float32), local_step)
        beta_2_power = tf.pow(tf.cast(self.beta_2, tf.float32), local_step)
        return {"lr": lr, "alpha": lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power),
                "beta_1_power": beta_1_power, "beta_2_power": beta_2_power,
                "beta_1": tf.cast(self.beta_1, tf.float32),
                "beta_2": tf.cast(self.beta_2, tf.float32),
                "epsilon": tf.cast(self.epsilon, tf.float32)}

    def _update_variable(self, gradient, variable, scalars):
        """Decoupled decay (kernels), then Keras Adam's update of one variable: one fused
        kernel whose arithmetic is Keras Adam's (``m += (g - m)(1 - b1)``,
        ``v += (g^2 - v)(1 - b2)``, ``w -= m alpha / (sqrt(v) + eps)``)."""
        dtype = variable.dtype
        if self._decays(variable):
            decay = tf.cast(scalars["lr"], dtype) * self.kernel_decay
            variable.value.assign_sub(variable.value * decay)
        gradient = tf.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        if not self.amsgrad:
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.handle, v=v.handle,
                beta1_power=tf.cast(scalars["beta_1_power"], dtype),
                beta2_power=tf.cast(scalars["beta_2_power"], dtype),
                lr=tf.cast(scalars["lr"], dtype), beta1=tf.cast(scalars["beta_1"], dtype),
                beta2=tf.cast(scalars["beta_2"], dtype),
                epsilon=tf.cast(scalars["epsilon"], dtype), grad=gradient, use_nesterov=False)
            return
        alpha = tf.cast(scalars["alpha"], dtype)
        self.assign_add(m, (gradient - m) * (1 - self.beta_1))
        self.assign_add(v, (tf.square(gradient) - v) * (1 - self.beta_2))
        v_hat = self._velocity_hats[index]
        self.assign(v_hat, tf.maximum(v_hat, v))
        self.assign_sub(variable, (m * alpha) / (tf.sqrt(v_hat) + self.epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(self._group_config())
        return config


@dataclass(frozen=True)
class OptimizerChoice:
    """What ``make_optimizer`` decided, for the logs and the tests."""
    name: str  # "sgd" or "adamw"
    lr0: float
    momentum: float
    warmup_bias_lr: float
    weight_decay: float  # after the nominal-batch scaling
    accumulate: int  # batches per optimizer update
    warmup_steps: int


def make_optimizer(name: str, *, lr0: float, lrf: float, momentum: float, weight_decay: float,
                   warmup_epochs: float, warmup_bias_lr: float, cosine: bool, epochs: int,
                   steps_per_epoch: int, batch: int, num_classes: int, clip_norm: float = 10.0,
                   replicas: int = 1, nominal_batch: int = NOMINAL_BATCH,
                   ) -> tuple[keras.optimizers.Optimizer, OptimizerChoice]:
    """The optimizer of the recipe, with its schedules.

    "auto" is the rule YOLO users know: for runs of more than 10k nominal iterations
    (``ceil(images / max(batch, 64)) * epochs``), SGD at lr 0.01 and momentum 0.9; for shorter
    ones AdamW at ``lr = round(0.002 * 5 / (4 + C), 6)`` and beta_1 0.9, bias warmup rate 0.
    ``lr0`` and ``momentum`` are ignored under "auto".

    Args:
        name: "auto", "sgd" or "adamw" (case-insensitive).
        lr0 ... cosine: the TrainConfig keys of the same names.
        epochs, steps_per_epoch: length of the run (steps are global batches).
        batch: global batch size.
        num_classes: C, for the "auto" rate.
        clip_norm: global gradient-norm clip; 0 disables.
        replicas: the gradient scale's R (see the module docstring): 1 for a loss summed
            per replica, as tfseg's is; the replica count for one divided by it.
        nominal_batch: accumulate gradients over ``round(nominal_batch / batch)`` batches and
            scale the decay by ``batch * accumulate / nominal_batch`` (reference: 64); 0 turns
            accumulation off.

    Returns:
        (optimizer, choice).

    Raises:
        ValueError: unknown name.
    """
    name = name.lower()
    if name not in {"auto", "sgd", "adamw"}:
        raise ValueError(f"train.optimizer: must be auto, sgd or adamw, got {name!r}")
    accumulate = max(int(round(nominal_batch / batch)), 1) if nominal_batch > 0 else 1
    decay = weight_decay * batch * accumulate / nominal_batch if nominal_batch > 0 else weight_decay
    if name == "auto":
        images = steps_per_epoch * batch
        iterations = math.ceil(images / max(batch, nominal_batch or batch)) * epochs
        name, lr0, momentum = (("sgd", 0.01, 0.9) if iterations > AUTO_SGD_ITERATIONS else
                               ("adamw", round(0.002 * 5 / (4 + num_classes), 6), 0.9))
        warmup_bias_lr = 0.0
    warmup = warmup_steps_for(warmup_epochs, steps_per_epoch, epochs)
    rate = WarmupDecay(lr0, lrf, epochs, steps_per_epoch, warmup, cosine)
    bias_rate = WarmupDecay(lr0, lrf, epochs, steps_per_epoch, warmup, cosine, warmup_bias_lr)
    common = dict(learning_rate=rate, bias_learning_rate=bias_rate, kernel_decay=decay,
                  gradient_scale=float(accumulate * replicas),
                  global_clipnorm=clip_norm if clip_norm > 0 else None,
                  gradient_accumulation_steps=accumulate if accumulate > 1 else None,
                  accumulate_warmup=warmup if accumulate > 1 else 0)
    if name == "sgd":
        optimizer = NesterovSGD(momentum=MomentumWarmup(momentum, warmup), **common)
    else:
        optimizer = GroupedAdamW(beta_1=momentum, **common)
    return optimizer, OptimizerChoice(name, lr0, momentum, warmup_bias_lr, decay, accumulate, warmup)


def _summed_over_replicas(optimizer, grads, variables) -> list:
    """``grads`` summed over the replicas in sync (as they are on one replica)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(grads)
    return [g for g, _ in optimizer._all_reduce_sum_gradients(zip(grads, variables))]


def _serialize(value):
    if isinstance(value, keras.optimizers.schedules.LearningRateSchedule):
        return keras.saving.serialize_keras_object(value)
    return value


def _deserialize(value):
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value)
    return value
