"""mask_loss sizes its work to the busiest image's positives without changing the result."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss.buckets import power_of_two_buckets
from tfseg.loss.mask_loss import _mask_loss_top, mask_loss


def test_buckets_are_powers_of_two_up_to_the_cap():
    assert power_of_two_buckets(256) == [16, 32, 64, 128, 256]
    assert power_of_two_buckets(100) == [16, 32, 64, 100]
    assert power_of_two_buckets(10) == [10]


def _case(positives_per_image, num_anchors=300):
    """B images, M=2 GTs, P=4, one prototype channel of ones (logit = coefficient)."""
    batch = len(positives_per_image)
    rng = np.random.default_rng(0)
    masks = np.zeros((batch, 2, 4, 4), np.uint8)
    masks[:, 0, :2, :2] = 1  # GT 0: box (0, 0, 8, 8) px, all ones inside
    gt_boxes = np.tile(np.array([[0, 0, 8, 8], [0, 0, 16, 16]], np.float32), (batch, 1, 1))
    foreground = np.zeros((batch, num_anchors), bool)
    for b, count in enumerate(positives_per_image):
        foreground[b, rng.choice(num_anchors, count, replace=False)] = True
    gt_index = rng.integers(0, 2, (batch, num_anchors)).astype(np.int32)
    priority = rng.random((batch, num_anchors)).astype(np.float32)
    coefficients = tf.Variable(rng.normal(size=(batch, num_anchors, 1)).astype(np.float32))
    prototypes = tf.ones((batch, 4, 4, 1))
    return (coefficients, prototypes, tf.constant(masks), tf.constant(gt_boxes),
            tf.constant(gt_index), tf.constant(foreground), tf.constant(priority))


def test_zero_logits_give_ln2_whatever_the_bucket():
    # 20 and 3 positives (bucket 32); coefficients 0 -> BCE ln 2 on every pixel of every box.
    coefficients, *rest = _case([20, 3])
    coefficients.assign(tf.zeros_like(coefficients))
    assert float(mask_loss(coefficients, *rest)) == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize("static_shapes", [pytest.param(True, marks=pytest.mark.slow), False],
                         ids=["static", "run-time"])  # static: the XLA buckets, ~5x slower
@pytest.mark.parametrize("positives", [[20, 3], [40, 0], [0, 0], [200, 1], [290, 5]])
def test_loss_and_gradient_equal_the_full_cap_computation(positives, static_shapes):
    coefficients, prototypes, *rest = _case(positives)
    # Traced (a graph, as in training), so run-time shapes really are unknown while tracing.
    sized = tf.function(lambda: mask_loss(coefficients, prototypes, *rest, max_anchors=256,
                                          static_shapes=static_shapes))
    results = []
    for compute in (sized,
                    lambda: _mask_loss_top(coefficients, prototypes, rest[0], rest[1], rest[2],
                                           tf.cast(rest[3], tf.float32), rest[4], 256, 4)):
        with tf.GradientTape() as tape:
            value = compute()
        results.append((float(value), tape.gradient(value, coefficients).numpy()))
    (bucketed, grad_bucketed), (full, grad_full) = results
    assert bucketed == pytest.approx(full, rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(grad_bucketed, grad_full, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("static_shapes", [True, False])
def test_run_time_sizes_trace_one_copy_of_the_loss(static_shapes):
    # Static shapes build a switch over the bucket sizes; run-time shapes build no switch.
    coefficients, *rest = _case([20, 3])
    graph = tf.function(lambda: mask_loss(coefficients, *rest, static_shapes=static_shapes)
                        ).get_concrete_function().graph
    switches = [op for op in graph.get_operations() if op.type in ("Case", "StatelessCase")]
    assert len(switches) == (1 if static_shapes else 0)
