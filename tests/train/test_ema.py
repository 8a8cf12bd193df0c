"""ModelEMA against the hand formula, BN statistics included; swap and save/restore."""

import math

import keras
import numpy as np
import pytest

from tfseg.train.ema import ModelEMA, ramped_decay


def _model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, use_bias=False),
                              keras.layers.BatchNormalization()])
    model.layers[0].kernel.assign(np.zeros((2, 1), np.float32))
    return model


def test_ramped_decay_formula():
    assert ramped_decay(2000) == pytest.approx(0.9999 * (1 - math.exp(-1)))
    assert ramped_decay(1) == pytest.approx(0.9999 * (1 - math.exp(-1 / 2000)))
    assert float(ramped_decay(np.float32(4000.0))) == pytest.approx(0.9999 * (1 - math.exp(-2)), rel=1e-6)


def test_ema_of_a_known_sequence_equals_the_hand_formula():
    model = _model()
    kernel, moving_mean = model.layers[0].kernel, model.layers[1].moving_mean
    ema = ModelEMA(model, decay=0.9, tau=1.0)  # d(1) = 0.9 (1 - e^-1) = 0.568909, d(2) = 0.778200
    kernel.assign(np.ones((2, 1), np.float32))
    moving_mean.assign([3.0])
    ema.update()
    kernel.assign(np.full((2, 1), 2.0, np.float32))
    ema.update()
    by_name = {w.path: s for w, s in zip(model.weights, ema.shadow_values())}
    s1 = 0.431091 * 1.0                      # 0.568909 * 0 + (1 - 0.568909) * 1
    s2 = 0.778200 * s1 + (1 - 0.778200) * 2  # = 0.779075
    assert by_name[kernel.path] == pytest.approx(np.full((2, 1), 0.779075), abs=1e-5)
    assert s2 == pytest.approx(0.779075, abs=1e-5)
    # BN moving mean: 0 -> 3 before update 1, then held at 3.
    m1 = 0.431091 * 3.0
    assert by_name[moving_mean.path] == pytest.approx([0.778200 * m1 + 0.2218 * 3.0], abs=1e-4)
    assert int(ema.updates.numpy()) == 2


def test_swapped_in_uses_the_average_then_restores_the_raw_weights(tmp_path):
    model = _model()
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    model.layers[0].kernel.assign(np.ones((2, 1), np.float32))
    ema.update()
    with ema.swapped_in(model):
        assert model.layers[0].kernel.numpy() == pytest.approx(np.full((2, 1), 0.431091), abs=1e-5)
    assert model.layers[0].kernel.numpy() == pytest.approx(np.ones((2, 1)))

    ema.save(tmp_path / "ema.npz", epoch=3)
    other = ModelEMA(_model())
    assert other.load(tmp_path / "ema.npz") == {"epoch": 3}
    assert int(other.updates.numpy()) == 1
    assert other.shadow_values()[0] == pytest.approx(ema.shadow_values()[0])


def test_loading_a_state_of_another_model_fails_clearly():
    ema = ModelEMA(_model())
    state = ema.state()
    state["shadow_0"] = np.zeros((3, 1), np.float32)
    with pytest.raises(ValueError, match="saved shape"):
        ema.load_state(state)


def _fit_with_ema(steps_per_execution, record=None):
    """A Dense + BN model trained 20 batches by the recipe's SGD with accumulation (16 of a
    nominal 64: an update every 4 batches after the ramp), its EMA updated in the step."""
    import tensorflow as tf

    from tfseg.train.optim import make_optimizer

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    optimizer, _ = make_optimizer("sgd", lr0=0.05, lrf=0.1, momentum=0.9, weight_decay=0.0,
                                  warmup_epochs=0, warmup_bias_lr=0.0, cosine=False, epochs=1,
                                  steps_per_epoch=20, batch=16, num_classes=1)
    model.compile(optimizer=optimizer, loss="mse", steps_per_execution=steps_per_execution)
    ema = ModelEMA(model, optimizer, decay=0.9, tau=2.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(320, 3)).astype(np.float32)
    y = (x @ [[1.0], [-2.0], [0.5]]).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model.fit(data, epochs=1, verbose=0, shuffle=False, callbacks=record or [])
    return model, optimizer, ema


def test_ema_in_the_train_step_follows_every_update_under_steps_per_execution():
    # Replay by hand: after each batch that made an optimizer update, fold the weights in.
    snapshots = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            snapshots.append((0, [w.numpy().copy() for w in self.model.weights]))

        def on_train_batch_end(self, batch, logs=None):
            updates = int(self.model.optimizer.iterations.numpy())
            if not snapshots or snapshots[-1][0] != updates:
                snapshots.append((updates, [w.numpy().copy() for w in self.model.weights]))

    model, optimizer, _ = _fit_with_ema(1, [Record()])
    updates = [u for u, _ in snapshots if u > 0]
    assert len(updates) >= 3 and updates == list(range(1, len(updates) + 1))
    by_hand = [np.asarray(v) for v in snapshots[0][1]]  # the start: weights before update 1
    for count, weights in snapshots:
        if count == 0:
            continue
        d = ramped_decay(count, 0.9, 2.0)
        by_hand = [d * s + (1 - d) * w for s, w in zip(by_hand, weights)]

    # Three batches per call of the train function: no callback sees the updates in between.
    _, optimizer3, ema3 = _fit_with_ema(3)
    assert int(ema3.updates.numpy()) == int(optimizer3.iterations.numpy()) == len(updates)
    for shadow, expected in zip(ema3.shadow_values(), by_hand):
        np.testing.assert_allclose(shadow, expected, rtol=1e-5, atol=1e-6)
