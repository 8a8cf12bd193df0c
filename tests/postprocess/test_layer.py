"""PostProcess on hand-made raw outputs: the DETECTIONS contract, config and .keras round trip."""

import keras
import numpy as np
import tensorflow as tf

from tfseg.contracts import DETECTIONS, num_anchors, proto_size
from tfseg.postprocess import PostProcess

SIZE, CLASSES, REG_MAX, K = 64, 3, 16, 32
PEAK = 60.0


def box_logits_for(distances):
    """[4 * REG_MAX] logits peaked at integer bin distances (left, top, right, bottom)."""
    logits = np.zeros((4, REG_MAX), np.float32)
    logits[np.arange(4), distances] = PEAK
    return logits.reshape(-1)


def raw_outputs():
    """Image 0: three confident anchors (two overlap, same class); image 1: nothing."""
    a, p = num_anchors(SIZE), proto_size(SIZE)
    box = np.tile(box_logits_for([0, 0, 0, 0]), (2, a, 1))
    cls = np.full((2, a, CLASSES), -10.0, np.float32)
    coef = np.zeros((2, a, K), np.float32)
    # Anchor 0: stride 8 centre (4, 4), (0, 0, 2, 3) -> (4, 4, 20, 28), class 1, score s(8).
    box[0, 0] = box_logits_for([0, 0, 2, 3]); cls[0, 0, 1] = 8.0; coef[0, 0, 0] = 1.0
    # Anchor 9: stride 8 centre (12, 12), (1, 1, 1, 1) -> (4, 4, 20, 20): IoU 0.67 with
    # anchor 0, same class, lower score: suppressed at IoU 0.5.
    box[0, 9] = box_logits_for([1, 1, 1, 1]); cls[0, 9, 1] = 5.0
    # Anchor 70: stride 16, row 1 column 2, centre (40, 24) -> (24, 8, 56, 40), class 2.
    box[0, 70] = box_logits_for([1, 1, 1, 1]); cls[0, 70, 2] = 3.0; coef[0, 70, 0] = -1.0
    protos = np.zeros((2, p, p, K), np.float32)
    protos[..., 0] = 10.0
    return {"box_logits": box, "class_logits": cls, "mask_coefficients": coef, "prototypes": protos}


def test_detections_of_hand_made_outputs():
    out = PostProcess(score_threshold=0.25, iou_threshold=0.5, max_detections=5)(
        {k: tf.constant(v) for k, v in raw_outputs().items()})
    out = {k: v.numpy() for k, v in out.items()}
    for name, spec in DETECTIONS.items():
        assert out[name].dtype == np.dtype(spec.dtype), name
    assert out["masks"].shape == (2, 5, 16, 16)
    assert out["num_detections"].tolist() == [2, 0]
    np.testing.assert_allclose(out["boxes"][0, :2], [[4, 4, 20, 28], [24, 8, 56, 40]], atol=1e-3)
    np.testing.assert_allclose(out["scores"][0, :2], 1 / (1 + np.exp([-8.0, -3.0])), rtol=1e-5)
    assert out["classes"][0, :2].tolist() == [1, 2]
    # Mask 0: sigmoid(10) inside the box at 1/4 (columns 1..4, rows 1..6), zero outside.
    expected = np.zeros((16, 16), np.float32)
    expected[1:7, 1:5] = 1 / (1 + np.exp(-10.0))
    np.testing.assert_allclose(out["masks"][0, 0], expected, rtol=1e-6)
    # Mask 1: sigmoid(-10) inside (columns 6..13, rows 2..9).
    assert np.argwhere(out["masks"][0, 1]).min(0).tolist() == [2, 6]
    assert np.argwhere(out["masks"][0, 1]).max(0).tolist() == [9, 13]
    assert not np.any(out["masks"][0, 2:]) and not np.any(out["masks"][1])
    assert not np.any(out["boxes"][1])


def test_multi_label_keeps_an_anchor_once_per_class_it_scores_for():
    raw = raw_outputs()
    raw["class_logits"][0, 0, 2] = 2.0  # anchor 0 also scores sigmoid(2) = 0.88 for class 2
    inputs = {k: tf.constant(v) for k, v in raw.items()}
    single = PostProcess(0.25, 0.5, max_detections=5)(inputs)
    multi = PostProcess(0.25, 0.5, max_detections=5, multi_label=True)(inputs)
    assert single["num_detections"].numpy().tolist() == [2, 0]
    assert multi["num_detections"].numpy().tolist() == [3, 0]
    found = sorted(zip(multi["classes"].numpy()[0, :3].tolist(),
                       np.round(multi["scores"].numpy()[0, :3], 5).tolist()))
    expected = sorted([(1, 1 / (1 + np.exp(-8.0))), (2, 1 / (1 + np.exp(-2.0))),
                       (2, 1 / (1 + np.exp(-3.0)))])
    np.testing.assert_allclose(np.array(found), np.array(expected), atol=1e-5)
    # Anchor 0's class-2 copy has anchor 0's box and mask; anchor 9 (class 1) is still suppressed.
    rows = {round(float(s), 5): i for i, s in enumerate(multi["scores"].numpy()[0, :3])}
    copy = rows[round(1 / (1 + np.exp(-2.0)), 5)]
    np.testing.assert_allclose(multi["boxes"].numpy()[0, copy], [4, 4, 20, 28], atol=1e-3)
    np.testing.assert_allclose(multi["masks"].numpy()[0, copy], single["masks"].numpy()[0, 0])
    assert PostProcess.from_config(PostProcess(multi_label=True).get_config()).multi_label


def test_config_and_keras_file_round_trip(tmp_path):
    layer = PostProcess(score_threshold=0.3, iou_threshold=0.6, max_detections=4,
                        agnostic=True, pre_nms_topk=50)
    clone = PostProcess.from_config(layer.get_config())
    for key in ("score_threshold", "iou_threshold", "max_detections", "agnostic", "pre_nms_topk"):
        assert getattr(clone, key) == getattr(layer, key)
    raw = raw_outputs()
    inputs = {k: keras.Input(shape=v.shape[1:], name=k) for k, v in raw.items()}
    model = keras.Model(inputs, layer(inputs))
    path = tmp_path / "post.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    before, after = model.predict(raw, verbose=0), loaded.predict(raw, verbose=0)
    for key in DETECTIONS:
        np.testing.assert_array_equal(before[key], after[key])
    # Agnostic: anchor 70 (class 2) does not overlap, so still two detections.
    assert before["num_detections"].tolist() == [2, 0]


def _numpy(out):
    return {k: v.numpy() for k, v in out.items()}


def _assert_first_rows_equal(runtime, built, rows):
    """Rows [:rows] of a run-time call equal a layer built with those values; the rest zero."""
    np.testing.assert_array_equal(runtime["num_detections"], built["num_detections"])
    for key in ("boxes", "scores", "classes", "masks"):
        np.testing.assert_array_equal(runtime[key][:, :rows], built[key][:, :rows], err_msg=key)
        assert not runtime[key][:, rows:].any(), key


def test_runtime_thresholds_equal_a_layer_built_with_them():
    """Anchor 9 (score s(5), IoU 0.67 with anchor 0) survives NMS at IoU 0.7; a score
    threshold of 0.96 drops anchor 70 (s(3) = 0.953); max_detections 1 keeps the best row."""
    inputs = {k: tf.constant(v) for k, v in raw_outputs().items()}
    layer = PostProcess(0.25, 0.5, max_detections=5)
    cases = [({"iou_threshold": tf.constant(0.7)}, PostProcess(0.25, 0.7, 5), [3, 0]),
             ({"score_threshold": tf.constant(0.96)}, PostProcess(0.96, 0.5, 5), [1, 0]),
             ({"max_detections": tf.constant(1)}, PostProcess(0.25, 0.5, 1), [1, 0])]
    for runtime, built, counts in cases:
        got, want = _numpy(layer(inputs, **runtime)), _numpy(built(inputs))
        assert got["num_detections"].tolist() == counts, runtime
        assert got["masks"].shape == (2, 5, 16, 16)  # N stays the capacity
        _assert_first_rows_equal(got, want, built.max_detections)


def test_runtime_thresholds_per_image_negative_means_the_layers_own():
    inputs = {k: tf.constant(v) for k, v in raw_outputs().items()}
    layer = PostProcess(0.25, 0.5, max_detections=5)
    doubled = {k: tf.constant(np.concatenate([v[:1], v[:1]])) for k, v in raw_outputs().items()}
    got = _numpy(layer(doubled, score_threshold=tf.constant([-1.0, 0.96]),
                       iou_threshold=tf.constant([0.7, -1.0]),
                       max_detections=tf.constant([-1, 5])))
    assert got["num_detections"].tolist() == [3, 1]
    same = _numpy(layer(inputs, score_threshold=tf.constant(-1.0), iou_threshold=tf.constant(-1.0),
                        max_detections=tf.constant(-1)))
    _assert_first_rows_equal(same, _numpy(layer(inputs)), 5)


def test_runtime_thresholds_with_a_dynamic_batch_match_the_static_one():
    raw = raw_outputs()
    layer = PostProcess(0.25, 0.5, max_detections=5)
    specs = [{k: tf.TensorSpec([None, *v.shape[1:]], tf.float32) for k, v in raw.items()},
             tf.TensorSpec([None]), tf.TensorSpec([None]), tf.TensorSpec([None], tf.int32)]
    dynamic = tf.function(lambda r, s, i, m: layer(r, score_threshold=s, iou_threshold=i,
                                                   max_detections=m), input_signature=specs)
    args = (tf.constant([0.25, 0.25]), tf.constant([0.7, 0.7]), tf.constant([2, 2]))
    got = _numpy(dynamic({k: tf.constant(v) for k, v in raw.items()}, *args))
    want = _numpy(PostProcess(0.25, 0.7, 2)({k: tf.constant(v) for k, v in raw.items()}))
    assert got["num_detections"].tolist() == [2, 0]
    _assert_first_rows_equal(got, want, 2)
