"""FusedBatchNormalization: the fused training kernel gives Keras' batch-norm outputs and
gradients, and moves its statistics as PyTorch's batch-norm (the reference) does."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfseg.model.layers import FusedBatchNormalization


def test_training_step_matches_hand_computed_values():
    # One channel, values 1, 2, 3, 6: mean 3, biased variance (4 + 1 + 0 + 9) / 4 = 3.5.
    layer = FusedBatchNormalization(epsilon=1e-3, momentum=0.97)
    x = np.array([1.0, 2.0, 3.0, 6.0], np.float32).reshape(1, 2, 2, 1)
    out = np.asarray(layer(x, training=True)).ravel()
    np.testing.assert_allclose(out, (np.array([1, 2, 3, 6]) - 3.0) / np.sqrt(3.5 + 1e-3), rtol=1e-5)
    # Moving stats start at mean 0, variance 1 and move 3 % towards the batch's: the variance
    # towards the unbiased one, 14 / 3 (PyTorch's convention; Keras' layer would use 3.5).
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.03 * 3.0], rtol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), [0.97 + 0.03 * 14 / 3], rtol=1e-5)


def test_matches_keras_batch_norm_in_values_statistics_and_gradients():
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2.0, 3.0, (4, 5, 6, 3)).astype(np.float32))
    fused = FusedBatchNormalization(epsilon=1e-3, momentum=0.97)
    plain = keras.layers.BatchNormalization(epsilon=1e-3, momentum=0.97)
    for layer in (fused, plain):
        layer.build(x.shape)
        layer.gamma.assign([0.5, 1.0, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3])
    upstream = tf.constant(rng.normal(size=(4, 5, 6, 3)).astype(np.float32))
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            objective = tf.reduce_sum(y * upstream)
        grads = tape.gradient(objective, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean])
    for got, want in zip(*results):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-5)
    # Keras moves the variance towards the biased batch variance, ours towards the unbiased
    # one: n / (n - 1) times it, n = 4 * 5 * 6 values per channel.
    biased = (plain.moving_variance.numpy() - 0.97) / 0.03
    np.testing.assert_allclose(fused.moving_variance.numpy(), 0.97 + 0.03 * biased * 120 / 119,
                               rtol=1e-5)
    assert np.all(np.abs(fused.moving_variance.numpy() - plain.moving_variance.numpy()) > 1e-4)
    # Inference reads the moving statistics through Keras' own path.
    plain.moving_variance.assign(fused.moving_variance)
    np.testing.assert_allclose(np.asarray(fused(x, training=False)),
                               np.asarray(plain(x, training=False)), rtol=1e-5, atol=1e-6)


def test_frozen_layer_uses_moving_statistics_in_training():
    layer = FusedBatchNormalization(epsilon=1e-3, momentum=0.97)
    layer.build((1, 1, 2, 1))
    layer.trainable = False
    x = np.array([1.0, 3.0], np.float32).reshape(1, 1, 2, 1)
    out = np.asarray(layer(x, training=True)).ravel()
    np.testing.assert_allclose(out, x.ravel() / np.sqrt(1.0 + 1e-3), rtol=1e-5)
    np.testing.assert_allclose(layer.moving_mean.numpy(), [0.0])


def test_half_precision_activations_go_through_the_kernel_with_float32_statistics():
    """Under mixed_bfloat16 the layer takes and returns bfloat16 activations (no float32 copy
    for the backward pass) and gives the float32 layer's outputs, gradients and moving
    statistics within bfloat16 rounding of its inputs."""
    rng = np.random.default_rng(1)
    x32 = rng.normal(2.0, 3.0, (4, 5, 6, 3)).astype(np.float32)
    x16 = tf.cast(x32, tf.bfloat16)
    reference_input = tf.constant(tf.cast(x16, tf.float32))  # the same rounded values
    upstream = tf.constant(rng.normal(size=(4, 5, 6, 3)).astype(np.float32))
    layers = {"float32": FusedBatchNormalization(epsilon=1e-3, momentum=0.97),
              "mixed_bfloat16": FusedBatchNormalization(epsilon=1e-3, momentum=0.97,
                                                        dtype="mixed_bfloat16")}
    results = {}
    for policy, layer in layers.items():
        layer.build(x32.shape)
        layer.gamma.assign([0.5, 1.0, 2.0])
        layer.beta.assign([0.1, -0.2, 0.3])
        x = x16 if policy == "mixed_bfloat16" else reference_input
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            objective = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)
        grads = tape.gradient(objective, [x, layer.gamma, layer.beta])
        results[policy] = (y, grads, layer)
    y16, grads16, layer16 = results["mixed_bfloat16"]
    y32, grads32, layer32 = results["float32"]
    assert y16.dtype == tf.bfloat16 and grads16[0].dtype == tf.bfloat16
    assert layer16.gamma.dtype == "float32" and layer16.moving_mean.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y16, tf.float32), y32, rtol=2e-2, atol=2e-2)
    for got, want in zip(grads16, grads32):
        np.testing.assert_allclose(tf.cast(got, tf.float32), want, rtol=2e-2, atol=5e-2)
    # Statistics are computed in float32 from the same values: moving stats agree tightly.
    np.testing.assert_allclose(layer16.moving_mean.numpy(), layer32.moving_mean.numpy(), rtol=1e-5)
    np.testing.assert_allclose(layer16.moving_variance.numpy(), layer32.moving_variance.numpy(),
                               rtol=1e-5)
    # The kernel itself ran on bfloat16 (its T attribute), not on a float32 copy.
    traced = tf.function(lambda x: layer16(x, training=True)).get_concrete_function(
        tf.TensorSpec(x32.shape, tf.bfloat16))
    kernels = [op for op in traced.graph.get_operations() if op.type == "FusedBatchNormV3"]
    assert [op.get_attr("T") for op in kernels] == [tf.bfloat16]
