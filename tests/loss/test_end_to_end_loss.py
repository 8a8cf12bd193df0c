"""YOLO26's dual-head loss: one-to-one assignment (topk2), the L1 distance term, the weighted
sum of the two heads and the epoch schedule of their weights."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss.assigner import assign
from tfseg.loss.box_loss import l1_distance_loss
from tfseg.loss.end_to_end_loss import EndToEndSegLoss, one_to_many_weight
from tfseg.loss.yolo_seg_loss import YoloSegLoss
from tfseg.ops.anchors import anchor_points
from tfseg.ops.boxes import boxes_to_distances
from tfseg.train.callbacks import OneToManyWeight

S, A, P, C = 64, 84, 16, 3  # 64 px input: 84 anchors, 16 x 16 prototypes


def _targets():
    """Two images: three instances (two overlapping, classes 0 and 2) and one (class 1)."""
    boxes = np.zeros((2, 4, 4), np.float32)
    boxes[0, :3] = [[4, 4, 40, 36], [20, 16, 60, 60], [44, 2, 62, 18]]
    boxes[1, 0] = [8, 24, 56, 56]
    classes = np.array([[0, 2, 1, -1], [1, -1, -1, -1]], np.int32)
    masks = np.zeros((2, 4, P, P), np.uint8)
    for b in range(2):
        for m in range(4):
            if classes[b, m] >= 0:
                x1, y1, x2, y2 = (int(v) // 4 for v in boxes[b, m])
                masks[b, m, y1:y2, x1:x2] = 1
    return {"boxes": tf.constant(boxes), "classes": tf.constant(classes),
            "masks": tf.constant(masks)}


def _raw_outputs(seed=0):
    """Random raw outputs of both heads, distances around 2 strides (reg_max 1)."""
    rng = np.random.default_rng(seed)

    def normal(*shape, mean=0.0, scale=1.0):
        return tf.constant(rng.normal(mean, scale, shape).astype(np.float32))

    raw = {"prototypes": normal(2, P, P, 32), "semantic_logits": normal(2, P // 2, P // 2, C)}
    for prefix in ("", "o2o_"):
        raw[prefix + "box_logits"] = normal(2, A, 4, mean=2.0, scale=0.7)
        raw[prefix + "class_logits"] = normal(2, A, C, mean=-1.0)
        raw[prefix + "mask_coefficients"] = normal(2, A, 32, scale=0.3)
    return raw


def _positives_per_gt(out, num_gts):
    """[B, M] count of positive anchors of each GT."""
    fg = out.foreground.numpy()
    index = out.gt_index.numpy()
    return np.stack([[np.sum(fg[b] & (index[b] == m)) for m in range(num_gts)]
                     for b in range(fg.shape[0])])


def test_one_to_one_assignment_gives_at_most_one_positive_per_gt_and_o2m_up_to_topk():
    y, raw = _targets(), _raw_outputs()
    points, strides = anchor_points(S)
    boxes = tf.concat([points - raw["box_logits"][..., :2] * strides,
                       points + raw["box_logits"][..., 2:] * strides], axis=-1)  # [B, A, 4]
    scores = tf.sigmoid(raw["class_logits"])
    many = assign(scores, boxes, points, y["boxes"], y["classes"], topk=10)
    first_cut = assign(scores, boxes, points, y["boxes"], y["classes"], topk=7)
    one = assign(scores, boxes, points, y["boxes"], y["classes"], topk=7, topk2=1)

    valid = y["classes"].numpy() >= 0
    counts_many, counts_one = _positives_per_gt(many, 4), _positives_per_gt(one, 4)
    assert counts_many.max() <= 10 and counts_many.max() > 1  # one-to-many: several per GT
    np.testing.assert_array_equal(counts_one, valid.astype(int))  # exactly one per real GT
    # topk2 only removes: each kept anchor was a positive of the same GT after the first cut,
    # the one whose alignment (the soft target it gets) was highest among that GT's positives.
    kept = one.foreground.numpy()
    assert np.all(first_cut.foreground.numpy()[kept])
    np.testing.assert_array_equal(one.gt_index.numpy()[kept], first_cut.gt_index.numpy()[kept])
    strength = first_cut.scores.numpy().max(-1)  # [B, A]
    for b, m in zip(*np.nonzero(valid)):
        mine = first_cut.foreground.numpy()[b] & (first_cut.gt_index.numpy()[b] == m)
        chosen = kept[b] & (one.gt_index.numpy()[b] == m)
        assert strength[b][chosen].item() == pytest.approx(strength[b][mine].max())


def test_topk2_normalizes_the_kept_positive_to_its_own_overlap():
    # One GT (0,0,30,10) and three candidates of IoU 0.8, 0.5, 1/3 (test_assigner's case):
    # with topk 3 then topk2 1 only p0 stays, and its target is its own IoU, 0.8.
    points = tf.constant([[5, 5], [15, 5], [25, 5]], tf.float32)
    pred_boxes = tf.constant([[[0, 0, 24, 10], [0, 0, 15, 10], [20, 0, 30, 10]]], tf.float32)
    scores = np.full((1, 3, 2), 0.01, np.float32)
    scores[0, :, 1] = [0.25, 0.64, 1.0]
    out = assign(tf.constant(scores), pred_boxes, points, tf.constant([[[0, 0, 30, 10]]]),
                 tf.constant([[1]]), topk=3, overlap="iou", topk2=1)
    np.testing.assert_array_equal(out.foreground.numpy(), [[True, False, False]])
    np.testing.assert_allclose(out.scores.numpy()[0, :, 1], [0.8, 0.0, 0.0], atol=1e-6)


def test_l1_distance_loss_by_hand():
    # One positive: predicted (10, 10, 10, 10) px, target (12, 8, 10, 14): |diff| 2, 2, 0, 4,
    # mean 2 px = 2 / 64 of the image; weight 0.5, normalizer 2 -> 2 / 64 * 0.5 / 2 = 0.0078125.
    # The background anchor's error (100 px) has weight 0 and counts for nothing.
    pred = tf.constant([[[10, 10, 10, 10], [0, 0, 0, 0]]], tf.float32)
    target = tf.constant([[[12, 8, 10, 14], [100, 100, 100, 100]]], tf.float32)
    value = l1_distance_loss(pred, target, tf.constant([[0.5, 0.0]]), tf.constant(2.0), 64)
    assert float(value) == pytest.approx(0.0078125, rel=1e-6)


def test_reg_max_1_loss_has_the_l1_term_in_place_of_dfl():
    # Every anchor predicts the GT (0,0,32,32) grown by 2 px per side (distances in strides:
    # true / stride + 2 / stride), so each positive's L1 error is 2 px = 2/64 of the image on
    # every side whatever its stride or weight: l1 = 1.5 * 2 / 64 = 0.046875.
    gt = [0, 0, 32, 32]
    points, strides = anchor_points(S)
    true = boxes_to_distances(points, tf.constant(gt, tf.float32)[None, None]) / strides
    box_logits = tf.tile(true + 2.0 / strides, [2, 1, 1])  # [2, A, 4]
    raw = {"box_logits": box_logits, "class_logits": tf.zeros([2, A, C]),
           "mask_coefficients": tf.zeros([2, A, 32]), "prototypes": tf.zeros([2, P, P, 32])}
    y = {"boxes": tf.constant([[gt, [0] * 4], [[0] * 4] * 2], tf.float32),
         "classes": tf.constant([[1, -1], [-1, -1]]), "masks": tf.zeros([2, 2, P, P], tf.uint8)}
    loss = YoloSegLoss(S, C, reg_max=1)
    total, terms = loss(y, raw)
    assert set(terms) == {"box", "seg", "cls", "l1"} and loss.term_names[3] == "l1"
    assert float(terms["l1"]) == pytest.approx(1.5 * 2 / 64, rel=1e-5)
    assert float(total) == pytest.approx(2 * sum(float(v) for v in terms.values()), rel=1e-6)


def test_dual_loss_is_the_weighted_sum_of_the_two_heads_computed_separately():
    y, raw = _targets(), _raw_outputs(seed=1)
    dual = EndToEndSegLoss(S, C)
    o2m = YoloSegLoss(S, C, reg_max=1, topk=10, semantic=True)
    o2o = YoloSegLoss(S, C, reg_max=1, topk=7, topk2=1, head_prefix="o2o_",
                      detach_prototypes=True, semantic=True)
    many_total, many = o2m(y, raw)
    one_total, one = o2o(y, raw)
    assert float(many_total) != pytest.approx(float(one_total))  # the heads differ
    for epoch, epochs in ((0, 10), (3, 10), (9, 10)):
        w = dual.set_epoch(epoch, epochs)
        total, terms = dual(y, raw)
        assert float(total) == pytest.approx(w * float(many_total) + (1 - w) * float(one_total),
                                             rel=1e-5)
        for name in ("box", "seg", "cls", "l1", "sem"):
            assert float(terms[name]) == pytest.approx(
                w * float(many[name]) + (1 - w) * float(one[name]), rel=1e-5, abs=1e-7)
        assert float(terms["o2o"]) == pytest.approx(float(one_total) / 2, rel=1e-5)


def test_one_to_one_loss_sends_no_gradient_to_the_shared_prototypes():
    y, raw = _targets(), _raw_outputs(seed=2)
    shared = {k: tf.Variable(raw[k]) for k in ("prototypes", "semantic_logits")}
    dual = EndToEndSegLoss(S, C)
    with tf.GradientTape(persistent=True) as tape:
        inputs = {**raw, **shared}
        one_total, _ = dual.one_to_one(y, inputs)
        many_total, _ = dual.one_to_many(y, inputs)
        one_own = tf.Variable(raw["o2o_mask_coefficients"])
        own_total, _ = dual.one_to_one(y, {**inputs, "o2o_mask_coefficients": one_own})
    assert all(g is None for g in tape.gradient(one_total, list(shared.values())))
    assert all(g is not None for g in tape.gradient(many_total, list(shared.values())))
    assert float(tf.reduce_max(tf.abs(tape.gradient(own_total, one_own)))) > 0


def test_weight_schedule_first_middle_last_and_after_the_end():
    assert one_to_many_weight(0, 11) == pytest.approx(0.8)
    assert one_to_many_weight(5, 11) == pytest.approx(0.45)  # halfway: (0.8 + 0.1) / 2
    assert one_to_many_weight(10, 11) == pytest.approx(0.1)
    assert one_to_many_weight(12, 11) == pytest.approx(0.1)
    assert one_to_many_weight(0, 1) == pytest.approx(0.8)


def test_weight_follows_the_epoch_in_a_resumed_fit_and_inside_compiled_steps():
    # A resumed Keras fit starts at initial_epoch; the callback must set that epoch's weight
    # (a counter of epochs seen would restart at 0.8), and the compiled step must read it.
    import keras

    dual = EndToEndSegLoss(S, C)
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x):
            return x * tf.cast(dual.o2m_weight, x.dtype)

    model = keras.Sequential([keras.Input((1,)), Probe()])
    model.compile(loss="mae", jit_compile=True)
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: seen.append((e, model.predict_on_batch(np.ones((1, 1)))[0, 0],
                                                  logs["o2m_weight"])))
    data = (np.ones((2, 1), np.float32), np.zeros((2, 1), np.float32))
    model.fit(*data, epochs=5, initial_epoch=3, verbose=0,
              callbacks=[OneToManyWeight(dual, 5), record])
    assert [e for e, _, _ in seen] == [3, 4]
    np.testing.assert_allclose([v for _, v, _ in seen], [0.275, 0.1], rtol=1e-6)
    np.testing.assert_allclose([w for _, _, w in seen], [0.275, 0.1], rtol=1e-6)


def test_semantic_loss_by_hand_smallest_mask_wins_where_masks_overlap():
    # 64 px image, 8 x 8 semantic logits, all 0 (probability 0.5). Class 0 covers the whole
    # image (area 256 at P = 16); class 1 a 4 x 4 block at stride 8 (area 64), and wins there
    # as the smaller mask: targets class 0 on 48 pixels, class 1 on 16, 64 pixels each.
    #   BCE: ln 2 everywhere.  Dice loss 1 - (2 * 0.5 * T + 1) / (0.5 * 64 + T + 1):
    #   class 0 (T 48): 1 - 49/81 = 32/81;  class 1 (T 16): 1 - 17/49 = 32/49.
    from tfseg.loss.mask_loss import semantic_loss

    masks = np.zeros((1, 3, P, P), np.uint8)
    masks[0, 0] = 1
    masks[0, 1, 4:12, 4:12] = 1
    masks[0, 2, :2, :2] = 1  # padding slot (class -1): ignored
    value = semantic_loss(tf.zeros([1, 8, 8, 2]), tf.constant(masks),
                          tf.constant([[0, 1, -1]]))
    expected = 0.5 * np.log(2) + 0.5 * (32 / 81 + 32 / 49) / 2
    assert float(value) == pytest.approx(expected, rel=1e-6)
    assert float(semantic_loss(tf.zeros([1, 8, 8, 2]), tf.constant(masks),
                               tf.constant([[-1, -1, -1]]))) == 0.0
