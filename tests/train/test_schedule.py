"""Warmup/decay schedules at hand-computed iterations."""

import keras
import pytest

from tfseg.train.schedule import MomentumWarmup, WarmupDecay, warmup_steps_for

# lr0 0.01, lrf 0.1, 10 epochs of 10 steps, 20 warmup steps.
# Linear f(e) = (1 - e/10) * 0.9 + 0.1: f(0) = 1, f(1) = 0.91, f(2) = 0.82, f(9) = 0.19.
WEIGHTS = WarmupDecay(0.01, 0.1, epochs=10, steps_per_epoch=10, warmup_steps=20)
BIASES = WarmupDecay(0.01, 0.1, epochs=10, steps_per_epoch=10, warmup_steps=20, warmup_start=0.1)


@pytest.mark.parametrize("step, expected", [
    (0, 0.0),
    (5, 0.01 * 5 / 20),            # epoch 0, a quarter of the warmup
    (15, 0.0091 * 15 / 20),        # epoch 1: target 0.01 * 0.91
    (20, 0.0082),                  # warmup over, epoch 2
    (25, 0.0082),                  # decay steps per epoch, not per iteration
    (99, 0.0019),                  # last epoch: 0.01 * 0.19
])
def test_weight_rate_warms_up_from_zero_then_decays_linearly(step, expected):
    assert float(WEIGHTS(step)) == pytest.approx(expected, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("step, expected", [
    (0, 0.1),
    (5, 0.1 + (0.01 - 0.1) * 0.25),       # 0.0775: biases come *down* to the rate
    (15, 0.1 + (0.0091 - 0.1) * 0.75),    # 0.031825
    (30, 0.0073),                         # epoch 3, after warmup: same as the weights
])
def test_bias_rate_warms_down_from_warmup_bias_lr(step, expected):
    assert float(BIASES(step)) == pytest.approx(expected, rel=1e-5)


def test_cosine_decay_is_halfway_at_half_the_epochs():
    cosine = WarmupDecay(0.01, 0.1, epochs=10, steps_per_epoch=10, warmup_steps=0, cosine=True)
    assert float(cosine(0)) == pytest.approx(0.01)
    assert float(cosine(50)) == pytest.approx(0.01 * 0.55, rel=1e-5)  # 0.1 + 0.9 * (1 + cos(pi/2)) / 2
    assert float(cosine(99)) == pytest.approx(0.01 * (0.1 + 0.9 * (1 - 0.95105652) / 2), rel=1e-5)  # cos(0.9 pi)


def test_momentum_warms_up_from_0_8():
    momentum = MomentumWarmup(0.937, warmup_steps=20)
    assert float(momentum(0)) == pytest.approx(0.8)
    assert float(momentum(10)) == pytest.approx(0.8685)
    assert float(momentum(30)) == pytest.approx(0.937)


def test_warmup_length_follows_the_recipe():
    assert warmup_steps_for(3.0, 500) == 1500
    assert warmup_steps_for(3.0, 10) == 30  # no minimum (Ultralytics 8.4)
    assert warmup_steps_for(3.0, 10, epochs=30) == 30
    assert warmup_steps_for(3.0, 10, epochs=3) == 20  # the last epoch trains after warmup
    assert warmup_steps_for(3.0, 10, epochs=1) == 0
    assert warmup_steps_for(0.0, 500) == 0


def test_schedules_serialize_and_come_back_equal():
    for schedule in (BIASES, MomentumWarmup(0.9, 7)):
        again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
        assert type(again) is type(schedule) and again.get_config() == schedule.get_config()
        assert float(again(13)) == pytest.approx(float(schedule(13)))
