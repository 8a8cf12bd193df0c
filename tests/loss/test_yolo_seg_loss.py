"""YoloSegLoss end to end on hand-built raw outputs (no network needed)."""

import functools
import math

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss import YoloSegLoss
from tfseg.ops.boxes import boxes_to_distances
from tfseg.ops.anchors import anchor_points

S, A, P, C = 64, 84, 16, 2  # 64 px input: 8x8 + 4x4 + 2x2 = 84 anchors; prototypes 16x16


def _perfect_outputs(gt_box):
    """Raw outputs of a "perfect" network for one GT box, image 0 of a batch of 2.

    Box logits: the log of the two-bin ("tent") weights of each anchor's true distances, so the
    DFL expectation is the true distance. Class logits 0. One prototype channel is +1 inside the
    GT mask and -1 outside, and every anchor's coefficient on it is 20.
    """
    points, strides = anchor_points(S)
    distances = boxes_to_distances(points, tf.constant(gt_box, tf.float32)[None, None]) / strides
    t = np.clip(distances.numpy()[0], 0, 16 - 1.01)  # [A, 4]
    tent = np.maximum(1 - np.abs(t[..., None] - np.arange(16)), 0)  # [A, 4, 16]
    box_logits = np.log(np.maximum(tent, 1e-12)).reshape(1, A, 64).astype(np.float32)
    mask = np.zeros((P, P), np.float32)
    x1, y1, x2, y2 = (int(v) // 4 for v in gt_box)
    mask[y1:y2, x1:x2] = 1.0
    prototypes = np.zeros((2, P, P, 32), np.float32)
    prototypes[..., 0] = 2 * mask - 1
    coefficients = np.zeros((2, A, 32), np.float32)
    coefficients[..., 0] = 20.0
    y_pred = {"box_logits": tf.constant(np.concatenate([box_logits, box_logits])),
              "class_logits": tf.zeros([2, A, C]),
              "mask_coefficients": tf.constant(coefficients),
              "prototypes": tf.constant(prototypes)}
    masks = np.zeros((2, 3, P, P), np.uint8)
    masks[0, 0] = mask
    y_true = {"boxes": tf.constant([[gt_box, [0, 0, 0, 0], [0, 0, 0, 0]], [[0, 0, 0, 0]] * 3],
                                   tf.float32),
              "classes": tf.constant([[1, -1, -1], [-1, -1, -1]]),
              "masks": tf.constant(masks)}
    return y_true, y_pred


def test_perfect_prediction_hand_values():
    # GT (0,0,32,32): candidates are the 16 stride-8 anchors (centres 4..28), 4 stride-16 ones
    # (8, 24) and the stride-32 one at (16,16): 21, every distance / stride ending in .5.
    # Predicted boxes equal the GT (IoU 1), all scores sigmoid(0) = 0.5, so the metric ties and
    # the top-10 each get target score ~1: score sum ~10.
    #   box: 1 - CIoU = 0.
    #   dfl: each side's target sits halfway between two bins, and the tent prediction puts
    #        0.5 on each: -ln 0.5 = ln 2 per anchor; weighted mean ln 2; x1.5 = 1.039721.
    #   cls: every logit is 0, so every BCE is ln 2 whatever the target:
    #        2 images * 84 anchors * 2 classes * ln 2 / 10 = 23.28975; x0.5 = 11.64487.
    #   seg: logits +-20 on the right side: ~0.
    #   total = (0 + 0 + 11.64487 + 1.039721) * batch 2 = 25.36919.
    y_true, y_pred = _perfect_outputs([0, 0, 32, 32])
    total, terms = YoloSegLoss(S, C)(y_true, y_pred)
    ln2 = math.log(2)
    assert float(terms["box"]) == pytest.approx(0.0, abs=1e-5)
    assert float(terms["seg"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["dfl"]) == pytest.approx(1.5 * ln2, rel=1e-5)
    assert float(terms["cls"]) == pytest.approx(0.5 * 2 * A * C * ln2 / 10, rel=1e-4)
    assert float(total) == pytest.approx(2 * (1.5 * ln2 + 0.5 * 2 * A * C * ln2 / 10), rel=1e-4)


def test_a_shifted_ground_truth_costs_box_and_seg_loss():
    # The same outputs against GT box and mask moved by 8 px (2 prototype pixels): the box term
    # must rise, and the mask term is known by hand. The new box (2..10)^2 in prototype pixels
    # holds 64 pixels, all target 1; the prediction is +20 on the old (0..8)^2 region, so the
    # 36 shared pixels cost ~0 and the 28 others cost softplus(20) = 20 each:
    # per anchor 28 * 20 / 64 = 8.75 (every positive has the same coefficients); x7.5 = 65.625.
    y_true, y_pred = _perfect_outputs([0, 0, 32, 32])
    y_true["boxes"] = tf.constant([[[8, 8, 40, 40], [0] * 4, [0] * 4], [[0] * 4] * 3], tf.float32)
    masks = np.zeros((2, 3, P, P), np.uint8)
    masks[0, 0, 2:10, 2:10] = 1
    y_true["masks"] = tf.constant(masks)
    _, terms = YoloSegLoss(S, C)(y_true, y_pred)
    assert float(terms["box"]) > 0.5
    assert float(terms["seg"]) == pytest.approx(7.5 * 28 * 20 / 64, rel=1e-5)


def _random_case(seed=0, batch=2, gts=3):
    rng = np.random.default_rng(seed)
    y_true = {"boxes": tf.constant([[[4, 4, 40, 30], [20, 10, 60, 60], [0, 0, 0, 0]],
                                    [[0, 0, 64, 64], [8, 8, 24, 24], [0, 0, 0, 0]]], tf.float32),
              "classes": tf.constant([[0, 1, -1], [1, 1, -1]]),
              "masks": tf.constant(rng.integers(0, 2, (batch, gts, P, P)), tf.uint8)}
    y_pred = {"box_logits": tf.constant(rng.normal(size=(batch, A, 64)), tf.float32),
              "class_logits": tf.constant(rng.normal(size=(batch, A, C)), tf.float32),
              "mask_coefficients": tf.constant(rng.normal(size=(batch, A, 32)), tf.float32),
              "prototypes": tf.constant(rng.normal(size=(batch, P, P, 32)), tf.float32)}
    return y_true, y_pred


@pytest.mark.parametrize("zero_boxes", [True, False], ids=["empty_images", "padding_with_boxes"])
def test_no_ground_truth_only_class_loss(zero_boxes):
    # Every row is padding (class -1); rows that still carry boxes must assign nothing either.
    # Targets are all zero, the score sum clamps to 1, so cls = 0.5 * sum softplus(logit), and
    # box, dfl and seg are exactly 0.
    y_true, y_pred = _random_case()
    y_true["classes"] = tf.fill([2, 3], -1)
    if zero_boxes:
        y_true["boxes"] = tf.zeros([2, 3, 4])
    loss_fn = YoloSegLoss(S, C)
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        total, terms = loss_fn(y_true, y_pred)
    logits = y_pred["class_logits"].numpy().astype(np.float64)
    expected_cls = 0.5 * np.sum(np.log1p(np.exp(logits)))
    assert float(terms["box"]) == 0.0 and float(terms["dfl"]) == 0.0
    assert float(terms["seg"]) == 0.0
    assert float(terms["cls"]) == pytest.approx(expected_cls, rel=1e-5)
    assert float(total) == pytest.approx(2 * expected_cls, rel=1e-5)
    grads = tape.gradient(total, y_pred)
    np.testing.assert_array_equal(grads["box_logits"].numpy(), 0.0)
    # d total / d logit = batch * gain * sigmoid(logit)
    np.testing.assert_allclose(grads["class_logits"].numpy(), 1.0 / (1.0 + np.exp(-logits)),
                               rtol=1e-5)


def test_gradients_are_finite_and_reach_every_output():
    y_true, y_pred = _random_case()
    with tf.GradientTape() as tape:
        tape.watch(y_pred)
        total, _ = YoloSegLoss(S, C)(y_true, y_pred)
    assert np.isfinite(float(total))
    for name, grad in tape.gradient(total, y_pred).items():
        assert np.all(np.isfinite(grad.numpy())), name
        assert np.abs(grad.numpy()).sum() > 0, name


def test_gains_scale_each_term():
    y_true, y_pred = _random_case()
    _, unit = YoloSegLoss(S, C, box_gain=1, cls_gain=1, dfl_gain=1)(y_true, y_pred)
    _, default = YoloSegLoss(S, C)(y_true, y_pred)
    for name, gain in {"box": 7.5, "seg": 7.5, "cls": 0.5, "dfl": 1.5}.items():
        assert float(unit[name]) > 0
        assert float(default[name]) == pytest.approx(gain * float(unit[name]), rel=1e-5)


@pytest.mark.slow  # XLA compiles the whole loss (minutes on 2 cores)
def test_jit_compiled_matches_eager():
    y_true, y_pred = _random_case(seed=3)
    loss_fn = YoloSegLoss(S, C)

    def forward_backward(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(y_pred)
            total, terms = loss_fn(y_true, y_pred)
        return total, terms, tape.gradient(total, y_pred)

    eager = forward_backward(y_true, y_pred)
    jitted = tf.function(forward_backward, jit_compile=True)(y_true, y_pred)
    assert float(jitted[0]) == pytest.approx(float(eager[0]), rel=1e-4)
    for name in eager[1]:
        assert float(jitted[1][name]) == pytest.approx(float(eager[1][name]), rel=1e-4), name
    for name in eager[2]:
        np.testing.assert_allclose(jitted[2][name].numpy(), eager[2][name].numpy(),
                                   rtol=1e-3, atol=1e-5, err_msg=name)


@pytest.mark.slow  # many traced gradient steps (190 s on 2 shared cores)
def test_descending_the_gradient_lowers_every_term():
    # Treat the raw outputs as free variables: 40 Adam steps on the total must lower each term,
    # which a sign error or a detached term would prevent.
    y_true, y_pred = _random_case(seed=5)
    variables = {name: tf.Variable(value) for name, value in y_pred.items()}
    loss_fn = YoloSegLoss(S, C)
    optimizer = tf.keras.optimizers.Adam(0.05)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            total, terms = loss_fn(y_true, variables)
        grads = tape.gradient(total, list(variables.values()))
        optimizer.apply_gradients(zip(grads, variables.values()))
        return terms

    first = {name: float(value) for name, value in step().items()}
    for _ in range(40):
        last = step()
    for name, value in last.items():
        assert float(value) < 0.7 * first[name], (name, first[name], float(value))


def _crowded_batch(counts, max_instances=40, size=128, seed=3):
    """Random raw outputs and targets with ``counts[b]`` GTs in image b, padded to M."""
    rng = np.random.default_rng(seed)
    points, _ = anchor_points(size)
    anchors, proto = points.shape[0], size // 4
    batch = len(counts)
    boxes = np.zeros((batch, max_instances, 4), np.float32)
    classes = -np.ones((batch, max_instances), np.int32)
    masks = np.zeros((batch, max_instances, proto, proto), np.uint8)
    for b, count in enumerate(counts):
        for i in range(count):
            x, y = rng.uniform(0, size - 40, 2)
            w, h = rng.uniform(6, 40, 2)
            boxes[b, i] = [x, y, x + w, y + h]
            classes[b, i] = rng.integers(C)
            masks[b, i, int(y) // 4:int(y + h) // 4, int(x) // 4:int(x + w) // 4] = 1
    y_true = {"boxes": tf.constant(boxes), "classes": tf.constant(classes),
              "masks": tf.constant(masks)}
    y_pred = {"box_logits": tf.Variable(rng.normal(size=(batch, anchors, 64)).astype(np.float32)),
              "class_logits": tf.Variable(rng.normal(size=(batch, anchors, C)).astype(np.float32)),
              "mask_coefficients": tf.Variable(
                  rng.normal(size=(batch, anchors, 32)).astype(np.float32)),
              "prototypes": tf.Variable(rng.normal(size=(batch, proto, proto, 32)).astype(np.float32))}
    return y_true, y_pred


@functools.cache
def _traced_loss(static_shapes: bool):
    """(loss, a tf.function of the loss and its gradients): traced once per mode, since every
    case below has the same shapes (batch 2, M = 40, 128 px), as a training run traces once."""
    loss = YoloSegLoss(128, C, static_shapes=static_shapes)

    @tf.function
    def total_terms_and_gradients(y_true, y_pred):
        with tf.GradientTape() as tape:
            tape.watch(list(y_pred.values()))
            total, terms = loss(y_true, y_pred)
        return total, terms, tape.gradient(total, list(y_pred.values()))

    return loss, total_terms_and_gradients


@pytest.mark.parametrize("static_shapes", [True, False], ids=["static", "run-time"])
@pytest.mark.parametrize("counts", [[3, 0], [17, 5], [33, 40], [0, 0], [1, 16]])
def test_loss_on_instances_in_use_equals_the_fully_padded_loss(counts, static_shapes):
    # Bucket sizes for M = 40 are 16, 32, 40: the cases cover each, the edges and no GT at all.
    # The reference is the loss computed on all M slots (the private whole-M path), eagerly;
    # the cut loss is traced (a graph, as in training), so run-time shapes are unknown there.
    loss, traced = _traced_loss(static_shapes)
    y_true, y_pred = _crowded_batch(counts)
    total, terms, grads = traced(y_true, {k: tf.convert_to_tensor(v) for k, v in y_pred.items()})
    total, terms = float(total), {k: float(v) for k, v in terms.items()}
    with tf.GradientTape() as tape:
        full_total, full_terms = loss.loss_on(
            y_true, {k: tf.convert_to_tensor(v) for k, v in y_pred.items()})
    full_grads = tape.gradient(full_total, list(y_pred.values()))
    full_total, full_terms = float(full_total), {k: float(v) for k, v in full_terms.items()}
    assert total == pytest.approx(full_total, rel=1e-6)
    for name in terms:
        assert terms[name] == pytest.approx(full_terms[name], rel=1e-5, abs=1e-7), name
    for grad, full in zip(grads, full_grads):
        np.testing.assert_allclose(grad.numpy(), full.numpy(), rtol=1e-5, atol=1e-7)
    assert full_terms["box"] > 0 or sum(counts) == 0
    # One trace served every case of this mode (the point of sizing work at run time).
    assert traced.experimental_get_tracing_count() == 1


def test_instances_in_use_is_the_last_real_slot_plus_one():
    from tfseg.loss.yolo_seg_loss import instances_in_use

    classes = tf.constant([[0, 2, -1, -1, -1], [1, -1, -1, 4, -1]])
    assert int(instances_in_use(classes)) == 4  # a gap does not hide a later real slot
    assert int(instances_in_use(-tf.ones([2, 5], tf.int32))) == 0
