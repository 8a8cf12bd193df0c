"""Parameter groups, kernel-only decay, bias rates and the "auto" rule of tfseg.train.optim."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.train.optim import (GroupedAdamW, NesterovSGD, make_optimizer, parameter_group)
from tfseg.train.schedule import WarmupDecay


def _model():
    model = keras.Sequential([keras.Input((4, 4, 2)), keras.layers.Conv2D(3, 3, use_bias=True),
                              keras.layers.BatchNormalization(), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    for v in model.trainable_variables:
        v.assign(np.ones(v.shape, np.float32))
    return model


def _step(optimizer, model, gradient_value=0.0):
    grads = [tf.fill(v.shape, gradient_value) for v in model.trainable_variables]
    optimizer.apply(grads, model.trainable_variables)
    return {v.path: v.numpy() for v in model.trainable_variables}


def test_groups_of_the_real_model_put_decay_on_kernels_only():
    from tfseg.model.yolo_seg import build_model

    model = build_model("yolov8-seg-n", 3, 64)
    groups = {}
    for v in model.trainable_variables:
        groups.setdefault(parameter_group(v), set()).add(v.name)
    assert groups["decay"] == {"kernel"}
    assert groups["bias"] == {"bias", "beta"}
    assert groups["no_decay"] == {"gamma"}
    assert not any("batch_norm" in v.path or "bn" in v.path.split("/")[-2]
                   for v in model.trainable_variables if parameter_group(v) == "decay")


def test_sgd_decays_kernels_only_coupled_through_nesterov_momentum():
    model = _model()
    sgd = NesterovSGD(learning_rate=0.1, momentum=0.5, kernel_decay=0.5)
    after = _step(sgd, model, gradient_value=0.0)
    for path, value in after.items():
        if path.endswith("kernel"):  # g = 0.5 w; b = g; w -= 0.1 (g + 0.5 b) = 0.075 w
            assert value == pytest.approx(np.full(value.shape, 0.925)), path
        else:                        # biases, beta, gamma: zero gradient, no decay
            assert value == pytest.approx(np.ones(value.shape)), path


def test_adamw_decays_kernels_only_decoupled():
    model = _model()
    adamw = GroupedAdamW(learning_rate=0.1, kernel_decay=0.5)
    after = _step(adamw, model, gradient_value=0.0)
    for path, value in after.items():
        expected = 0.95 if path.endswith("kernel") else 1.0  # w -= 0.1 * 0.5 * w
        assert value == pytest.approx(np.full(value.shape, expected), abs=1e-6), path


def test_adamw_without_decay_steps_as_keras_adam():
    # GroupedAdamW computes Adam's per-update scalars once per update and updates all
    # variables of a group as one flat vector (tfseg.train.optim, "Flat state"): the
    # arithmetic must stay Keras Adam's. Tolerance 1e-6 relative: float32 evaluation of the
    # same expressions, rounded a few ulps apart after three steps; without the bias
    # corrections the first step alone is 3x off.
    rng = np.random.default_rng(0)
    ours, theirs = _model(), _model()
    adamw = GroupedAdamW(learning_rate=0.01, kernel_decay=0.0)
    adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8)
    for _ in range(3):
        grads = [rng.normal(size=v.shape).astype(np.float32) for v in ours.trainable_variables]
        adamw.apply([tf.constant(g) for g in grads], ours.trainable_variables)
        adam.apply([tf.constant(g) for g in grads], theirs.trainable_variables)
    for a, b in zip(ours.trainable_variables, theirs.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=0, err_msg=a.path)
    assert not np.allclose(ours.trainable_variables[0].numpy(), 1.0)


def test_adamw_biases_step_as_keras_adam_at_their_own_rate():
    # The bias group's scalars come from its own schedule, computed once per update: biases
    # and batch-norm offsets step as Keras Adam at that rate, the others at the weights'.
    rng = np.random.default_rng(1)
    ours, at_weights_rate, at_bias_rate = _model(), _model(), _model()
    bias_rate = keras.optimizers.schedules.ExponentialDecay(0.05, 1000, 1.0)  # constant 0.05
    adamw = GroupedAdamW(learning_rate=0.01, bias_learning_rate=bias_rate, kernel_decay=0.0)
    weights_adam = keras.optimizers.Adam(learning_rate=0.01, epsilon=1e-8)
    bias_adam = keras.optimizers.Adam(learning_rate=0.05, epsilon=1e-8)
    for _ in range(3):
        grads = [rng.normal(size=v.shape).astype(np.float32) for v in ours.trainable_variables]
        adamw.apply([tf.constant(g) for g in grads], ours.trainable_variables)
        weights_adam.apply([tf.constant(g) for g in grads], at_weights_rate.trainable_variables)
        bias_adam.apply([tf.constant(g) for g in grads], at_bias_rate.trainable_variables)
    groups = set()
    for a, w, b in zip(ours.trainable_variables, at_weights_rate.trainable_variables,
                       at_bias_rate.trainable_variables):
        groups.add(parameter_group(a))
        expected = b if parameter_group(a) == "bias" else w
        np.testing.assert_allclose(a.numpy(), expected.numpy(), rtol=1e-6, atol=1e-7,
                                   err_msg=a.path)
    assert groups == {"bias", "decay", "no_decay"}


def test_biases_follow_their_own_warmup_rate():
    model = _model()
    weights = WarmupDecay(0.01, 1.0, epochs=1, steps_per_epoch=1, warmup_steps=10)
    biases = WarmupDecay(0.01, 1.0, epochs=1, steps_per_epoch=1, warmup_steps=10, warmup_start=0.1)
    sgd = NesterovSGD(learning_rate=weights, bias_learning_rate=biases, momentum=0.0,
                      kernel_decay=0.0)
    after = _step(sgd, model, gradient_value=1.0)  # iteration 0: weights' rate 0, biases' 0.1
    for v in model.trainable_variables:
        expected = 0.9 if parameter_group(v) == "bias" else 1.0
        assert after[v.path] == pytest.approx(np.full(v.shape, expected)), v.path


def test_gradient_scale_then_global_clip():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    model.layers[0].kernel.assign([[0.0]])
    sgd = NesterovSGD(learning_rate=1.0, momentum=0.0, kernel_decay=0.0, gradient_scale=4.0)
    _step(sgd, model, 1.0)  # gradient 1 * 4
    assert model.layers[0].kernel.numpy()[0, 0] == pytest.approx(-4.0)
    clipped = NesterovSGD(learning_rate=1.0, momentum=0.0, kernel_decay=0.0, gradient_scale=4.0,
                          global_clipnorm=2.0)
    model.layers[0].kernel.assign([[0.0]])
    _step(clipped, model, 1.0)  # norm 4 clipped to 2
    assert model.layers[0].kernel.numpy()[0, 0] == pytest.approx(-2.0)


def test_accumulation_updates_every_second_batch_with_the_scaled_then_clipped_mean():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    kernel = model.layers[0].kernel
    kernel.assign([[0.0]])
    sgd = NesterovSGD(learning_rate=1.0, momentum=0.0, kernel_decay=0.0, gradient_scale=2.0,
                      global_clipnorm=3.0, gradient_accumulation_steps=2)
    _step(sgd, model, 1.0)  # accumulated, not applied
    assert kernel.numpy()[0, 0] == 0.0
    assert (int(sgd.iterations.numpy()), int(sgd._iterations.numpy())) == (0, 1)
    _step(sgd, model, 3.0)  # mean (1 + 3) / 2 = 2, x 2 = 4 (the sum), clipped to 3
    assert kernel.numpy()[0, 0] == pytest.approx(-3.0)
    assert (int(sgd.iterations.numpy()), int(sgd._iterations.numpy())) == (1, 2)
    assert not np.any(sgd._accumulator.numpy())  # reset for the next update
    _step(sgd, model, 0.5)
    _step(sgd, model, 0.25)  # (0.5 + 0.25) / 2 * 2 = 0.75, under the clip
    assert kernel.numpy()[0, 0] == pytest.approx(-3.75)
    assert int(sgd.iterations.numpy()) == 2


def test_accumulation_grows_from_one_batch_over_the_warmup():
    """accumulate 4 over a warmup of 4 batches: batches per update round(1 + 3 i / 4) =
    1, 2 (1.75), 2 (2.5, half to even), 3 (3.25), 4; an update once that many batches
    gathered since the last one: at batches 0, 2, 6, 10; each applies the sum of its batches."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    kernel = model.layers[0].kernel
    kernel.assign([[0.0]])
    sgd = NesterovSGD(learning_rate=1.0, momentum=0.0, kernel_decay=0.0, gradient_scale=4.0,
                      gradient_accumulation_steps=4, accumulate_warmup=4)
    values, updates = [], []
    for batch in range(11):
        _step(sgd, model, float(batch + 1))  # gradient batch + 1
        values.append(float(kernel.numpy()[0, 0]))
        updates.append(int(sgd.iterations.numpy()))
    assert updates == [1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4]
    # Sums applied: 1; 2 + 3; 4 + 5 + 6 + 7; 8 + 9 + 10 + 11.
    assert values == pytest.approx([-1, -1, -6, -6, -6, -6, -28, -28, -28, -28, -66])
    assert int(sgd._last_update.numpy()) == 10 and int(sgd._iterations.numpy()) == 11
    assert NesterovSGD.from_config(sgd.get_config()).accumulate_warmup == 4


def test_keras_weight_decay_and_ema_are_refused():
    with pytest.raises(ValueError, match="kernel_decay"):
        GroupedAdamW(weight_decay=0.01)
    with pytest.raises(ValueError, match="kernel_decay"):
        NesterovSGD(use_ema=True)


def _make(name, steps, batch, epochs, nc=3):
    return make_optimizer(name, lr0=0.02, lrf=0.01, momentum=0.937, weight_decay=5e-4,
                          warmup_epochs=3, warmup_bias_lr=0.1, cosine=False, epochs=epochs,
                          steps_per_epoch=steps, batch=batch, num_classes=nc)


def test_auto_picks_adamw_with_class_count_rate_for_short_runs():
    optimizer, choice = _make("auto", steps=10, batch=16, epochs=10)  # ceil(160 / 64) * 10 = 30
    assert isinstance(optimizer, GroupedAdamW)
    assert choice.lr0 == pytest.approx(0.001429)  # round(0.002 * 5 / (4 + 3), 6)
    assert choice.momentum == 0.9 and choice.warmup_bias_lr == 0.0
    assert choice.accumulate == 4 and choice.weight_decay == pytest.approx(5e-4)


def test_auto_picks_sgd_for_long_runs_and_explicit_names_keep_lr0():
    optimizer, choice = _make("auto", steps=10_000, batch=64, epochs=2)  # 20000 > 10000
    assert isinstance(optimizer, NesterovSGD) and choice.lr0 == 0.01 and choice.momentum == 0.9
    optimizer, choice = _make("SGD", steps=10, batch=24, epochs=1)
    assert isinstance(optimizer, NesterovSGD) and choice.lr0 == 0.02
    assert choice.accumulate == 3 and choice.weight_decay == pytest.approx(5e-4 * 72 / 64)
    with pytest.raises(ValueError, match="train.optimizer"):
        _make("rmsprop", steps=10, batch=16, epochs=1)


def test_optimizer_config_round_trip():
    optimizer, _ = _make("sgd", steps=10, batch=16, epochs=5)
    again = NesterovSGD.from_config(optimizer.get_config())
    assert float(again.bias_learning_rate(3)) == pytest.approx(float(optimizer.bias_learning_rate(3)))
    assert float(again.momentum(3)) == pytest.approx(float(optimizer.momentum(3)))
    assert again.kernel_decay == optimizer.kernel_decay


def test_callbacks_read_the_recipe_optimizer_inside_a_loss_scale_wrapper():
    """mixed_float16 wraps the optimizer; the wrapper's own batch counter stays 0, the one the
    resume check and the lr log read must be the inner optimizer's."""
    from tfseg.train.callbacks import inner_optimizer

    model = _model()
    wrapped = keras.optimizers.LossScaleOptimizer(NesterovSGD(learning_rate=0.1))
    _step(wrapped, model, 1.0)
    assert int(wrapped._iterations.numpy()) == 0
    assert int(inner_optimizer(wrapped)._iterations.numpy()) == 1
    sgd = NesterovSGD()
    assert inner_optimizer(sgd) is sgd
