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
(rates, momentum, Adam's bias corrections) once per group and updates the group's slice of
the flat state (``_update_group``, see "Flat state").

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
``gradient_accumulator``; once ``accumulate`` batches have gathered since the last update,
update with their sum / ``accumulate`` and reset it); scale by ``gradient_scale``; clip
(``global_clipnorm``, so the clip bounds the summed gradient, as the reference clips); update;
then the weight average, if any (``after_update``). ``iterations`` counts updates,
``_iterations`` batches (the schedules read it); both, the batch of the last update, the
accumulator and the slots are optimizer variables, saved and restored with the Keras
checkpoint.

Flat state: the update is elementwise, so it runs on all variables at once
(tfseg.train.flat). The optimizer keeps its accumulator as one vector over every trainable
variable and each slot (momentum; Adam's moments) as one vector per parameter group; the
variables lie in that vector group by group (decay, bias, no_decay) so each group is one
slice with its own scalars. A step gathers the gradients and the weights into vectors,
updates inside the accumulate-or-update condition, and writes the weights back (unchanged
values on a batch that only accumulates). Written per variable, the update and the weight
average made about 27 graph ops per model weight, most of them the condition's captures of
every variable, slot and gradient: 9,500 ops for yolov8-seg-n and seconds of tracing at the
start of every run. On the vectors they make about 8 (tests/train/test_flat.py).

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
import numpy as np
import tensorflow as tf

from tfseg.train.flat import FlatLayout, read, write
from tfseg.train.schedule import MomentumWarmup, WarmupDecay, warmup_steps_for

NOMINAL_BATCH = 64  # the reference recipe's nominal batch size (gradient accumulation target)
AUTO_SGD_ITERATIONS = 10_000  # "auto": SGD for runs longer than this many nominal iterations
_DECAYED_NAMES = {"kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"}
_BIAS_NAMES = {"bias", "beta"}
GROUPS = ("decay", "bias", "no_decay")  # parameter groups, in their order in the flat state


def parameter_group(variable) -> str:
    """``"decay"``, ``"bias"`` or ``"no_decay"`` for a model variable, from its name."""
    name = variable.name.split("/")[-1].split(":")[0]
    if name in _DECAYED_NAMES:
        return "decay"
    if name in _BIAS_NAMES:
        return "bias"
    return "no_decay"


def flat_order(variables) -> list[int]:
    """The order in which the optimizers lay ``variables`` out in their flat state: group by
    group (``GROUPS``), in their given order within a group. Indices into ``variables``."""
    groups = [GROUPS.index(parameter_group(v)) for v in variables]
    return sorted(range(len(variables)), key=groups.__getitem__)


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
        self._refuse_clipnorm()
        # Graph code run after each batch's step (tfseg.train.ema.ModelEMA's average), as
        # after_update(due, updated): due, the update condition (None: every batch updates);
        # updated, None or (variables, vector): the trainable variables in the flat order and
        # their values after this batch, so the average need not read them again.
        self.after_update = None

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

    def _group_scalars(self, learning_rate) -> tuple[dict, dict]:
        """This update's scalars (``_step_scalars``) for the weights' rate and for the bias
        schedule's rate (the same dict when there is no bias schedule)."""
        weights = self._step_scalars(learning_rate)
        if self.bias_learning_rate is None:
            return weights, weights
        return weights, self._step_scalars(self.bias_learning_rate(self._iterations))

    def _refuse_clipnorm(self):
        if self.clipnorm:
            raise ValueError(f"{self.name}: clipnorm (per variable) is not supported; use "
                             "global_clipnorm, as the recipe does")

    def update_step(self, gradient, variable, learning_rate):
        """Keras' per-variable update: not used, the update is flat (``_update_flat``)."""
        raise NotImplementedError(f"{self.name} updates all variables at once: call apply()")

    def _build_flat(self, variables, slots: tuple[str, ...]):
        """Keras' build without its per-variable gradient accumulators, then the flat state:
        the layout (variables ordered by parameter group), one accumulator over all of them,
        and each slot as one vector per non-empty group.

        Raises:
            ValueError: trainable variables of more than one dtype.
        """
        steps = self.gradient_accumulation_steps
        self.gradient_accumulation_steps = None  # the flat accumulator below replaces Keras'
        try:
            keras.optimizers.Optimizer.build(self, variables)
        finally:
            self.gradient_accumulation_steps = steps
        dtypes = sorted({keras.backend.standardize_dtype(v.dtype) for v in variables})
        if len(dtypes) > 1:
            raise ValueError(f"{self.name}: trainable variables of several dtypes {dtypes}; "
                             "the update needs one (mixed precision keeps them float32)")
        self._dtype = dtypes[0] if dtypes else "float32"
        groups = [parameter_group(v) for v in variables]
        self._order = flat_order(variables)
        self._layout = FlatLayout([variables[i].shape for i in self._order])
        sizes = [0] * len(GROUPS)
        for i, size in zip(self._order, self._layout.sizes):
            sizes[GROUPS.index(groups[i])] += size
        self._group_sizes = sizes
        self._slots = {name: [self.add_variable((size,), initializer="zeros", dtype=self._dtype,
                                                name=f"{name}_{group}", aggregation="none")
                              if size else None for group, size in zip(GROUPS, sizes)]
                       for name in slots}
        self._accumulator = None
        if steps:
            self._accumulator = self.add_variable((self._layout.size,), initializer="zeros",
                                                  dtype=self._dtype, name="gradient_accumulator",
                                                  aggregation="none")
        self._build_counters()

    # Keras 3.15's TF backend all-reduces the replicas' gradients inside its update: after
    # clipping (each replica clipped alone) and, when accumulating, inside a ``cond`` (a
    # ``merge_call`` there cannot trace without XLA). Here they are summed first, outside any
    # cond, so every replica holds the same summed gradients and updates its own copy of
    # each variable (the slots' aggregation is "none", the weights are written through each
    # replica's handle: no merge_call).

    def _backend_apply_gradients(self, grads, trainable_variables):
        """Sum over replicas, then accumulate or update (Keras' ``(g + acc) / steps``).

        Args:
            grads: this replica's gradients, one per variable (no None).
            trainable_variables: the variables they belong to (those without a gradient
                keep their value and their slots, as in Keras).
        """
        grads = _summed_over_replicas(self, grads, trainable_variables)
        given = {self._get_variable_index(v): g for g, v in zip(grads, trainable_variables)}
        variables = self._trainable_variables
        gradient = self._layout.flatten(
            [tf.cast(given[i], self._dtype) if i in given else
             tf.zeros(variables[i].shape, self._dtype) for i in self._order])
        weights = self._layout.flatten([read(variables[i]) for i in self._order])
        held = None  # where the variables without a gradient lie, when there are any
        if len(given) < len(variables):
            held = np.concatenate([np.full(size, i not in given)
                                   for i, size in zip(self._order, self._layout.sizes)])
        steps = self.gradient_accumulation_steps
        if not steps:
            updated, due = self._update_flat(gradient, weights, held), None
        else:
            batch = tf.cast(self._iterations, tf.int64)  # this batch's index
            self.assign_add(self._accumulator, gradient)
            due = batch - self._last_update >= self._accumulate_now()

            def update():
                summed = self._accumulator / steps
                updated = self._update_flat(summed, weights, held)  # Adam counts it from 1
                self.assign(self._accumulator, tf.zeros_like(summed))
                self.assign_add(self._updates, 1)
                self.assign(self._last_update, batch)
                return updated

            updated = tf.cond(due, update, lambda: weights)
        for i, value in zip(self._order, self._layout.unflatten(updated)):
            if i in given:
                write(variables[i], value)
        if self.after_update is not None:
            # Variables without a gradient were not written: their slice of updated is stale.
            self.after_update(due, None if held is not None else
                              ([variables[i] for i in self._order], updated))

    def _update_flat(self, gradient, weights, held=None):
        """Scale and clip the summed gradient, then update each group's slice.

        Args:
            gradient: the summed gradient, a vector in the layout's order.
            weights: the weights before the update, same order.
            held: None, or a numpy bool vector (same order) marking variables without a
                gradient, whose slots keep their values.

        Returns:
            The updated weights, same order. The slots are updated in place.
        """
        self._refuse_clipnorm()  # also when set after construction
        if self.gradient_scale != 1.0:
            gradient = gradient * self.gradient_scale
        gradient = super()._clip_gradients([gradient])[0]  # global clip: one norm over all
        weights_scalars, bias_scalars = self._group_scalars(self.learning_rate)
        parts = []
        for k, (group, g, w) in enumerate(zip(GROUPS, tf.split(gradient, self._group_sizes),
                                              tf.split(weights, self._group_sizes))):
            if not self._group_sizes[k]:
                continue
            scalars = bias_scalars if group == "bias" else weights_scalars
            slots = {name: vectors[k] for name, vectors in self._slots.items()}
            decay = self.kernel_decay if group == "decay" else 0.0
            before = {name: read(slot) for name, slot in slots.items()} if held is not None else {}
            parts.append(self._update_group(g, w, slots, scalars, decay))
            if held is not None:
                start = sum(self._group_sizes[:k])
                keep = tf.constant(held[start:start + self._group_sizes[k]])
                for name, slot in slots.items():
                    self.assign(slot, tf.where(keep, before[name], read(slot)))
        return tf.concat(parts, axis=0) if parts else weights

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
        self._build_flat(variables, ("momentum",))

    def _momentum_now(self):
        if callable(self.momentum):
            return self.momentum(self._iterations)
        return self.momentum

    def _step_scalars(self, learning_rate) -> dict:
        return {"lr": tf.cast(learning_rate, tf.float32),
                "mu": tf.cast(self._momentum_now(), tf.float32)}

    def _update_group(self, gradient, weights, slots, scalars, decay):
        """Coupled decay (kernels: ``decay`` > 0), then ``b = mu * b + g``,
        ``w -= g lr + b mu lr``: TensorFlow's Nesterov momentum kernel's arithmetic, in its
        order, which is PyTorch's step. Returns the new weights."""
        lr = tf.cast(scalars["lr"], self._dtype)
        mu = tf.cast(scalars["mu"], self._dtype)
        if decay:
            gradient = gradient + decay * weights
        buffer = slots["momentum"] * mu + gradient
        self.assign(slots["momentum"], buffer)
        return weights - (gradient * lr + buffer * mu * lr)

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
        self._build_flat(variables, ("m", "v", "v_hat") if self.amsgrad else ("m", "v"))

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

    def _update_group(self, gradient, weights, slots, scalars, decay):
        """Decoupled decay (kernels: ``w -= lr decay w``), then Keras Adam's update, in the
        order TensorFlow's Adam kernel evaluates it: ``m += (g - m)(1 - b1)``,
        ``v += (g^2 - v)(1 - b2)``, ``w -= m alpha / (sqrt(v) + eps)``. Returns the new
        weights."""
        cast = {key: tf.cast(value, self._dtype) for key, value in scalars.items()}
        if decay:
            weights = weights - weights * (cast["lr"] * decay)
        m = slots["m"] + (gradient - slots["m"]) * (1 - cast["beta_1"])
        v = slots["v"] + (tf.square(gradient) - slots["v"]) * (1 - cast["beta_2"])
        self.assign(slots["m"], m)
        self.assign(slots["v"], v)
        if self.amsgrad:
            v = tf.maximum(slots["v_hat"], v)
            self.assign(slots["v_hat"], v)
        return weights - (m * cast["alpha"]) / (tf.sqrt(v) + cast["epsilon"])

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
