"""YOLO26-seg: parameter counts of the reference, the outputs of both heads, weight import
and raw-output parity of both heads with the reference (n and s), its training loss, and the
post-processing evaluation picks for it."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from tfseg.contracts import END_TO_END_OUTPUTS, RAW_OUTPUTS, TRAINING_OUTPUTS, num_anchors
from tfseg.evaluate.loop import make_detector
from tfseg.loss.end_to_end_loss import EndToEndSegLoss
from tfseg.model import build_model
from tfseg.model.import_ultralytics import apply_state_dict, reference_name_table
from tfseg.model.summary import count_parameters

SIZE = 96  # the fixtures' input: the central 96 x 96 crop of scene.png
PARITY = ("yolo26-seg-n", "yolo26-seg-s")
# Read from the reference (Ultralytics 8.4.190), not from our model:
#   YOLO_OFFLINE=1 python -c "from ultralytics import YOLO; \
#     print(sum(p.numel() for p in YOLO('yolo26n-seg.yaml').model.parameters()))"
# (and yolo26s-seg.yaml); the same figures as the comments of its yolo26-seg.yaml and as
# tests/fixtures/model/reference_counts.json (tools/make_model_fixtures.py). They include the
# training-only semantic branch of the Proto (79,184 parameters at n).
REFERENCE_PARAMETERS = {"yolo26-seg-n": 3_126_280, "yolo26-seg-s": 11_505_800}


@pytest.fixture(scope="module")
def nano():
    """yolo26-seg-n at 80 classes, 64 px (one build shared by the tests below)."""
    return build_model("yolo26-seg-n", 80, 64)


def test_parameter_count_equals_the_reference_at_80_classes(reference, nano):
    # Every scale is counted against reference_counts.json in test_yolo_seg.py; this one
    # also holds the figures read from the reference by hand.
    counts = count_parameters(nano)
    for name in PARITY:
        assert REFERENCE_PARAMETERS[name] == reference.counts[name]["parameters"]
    assert counts["parameters"] == REFERENCE_PARAMETERS["yolo26-seg-n"]
    assert counts["trainable"] == counts["parameters"]  # reg_max 1: no fixed DFL weights


def test_outputs_of_both_heads_and_the_semantic_branch(nano):
    out = nano(np.zeros((1, 64, 64, 3), np.float32))
    assert set(out) == set(RAW_OUTPUTS) | set(END_TO_END_OUTPUTS) | set(TRAINING_OUTPUTS)
    a = num_anchors(64)  # 64 + 16 + 4
    for prefix in ("", "o2o_"):
        assert tuple(out[f"{prefix}box_logits"].shape) == (1, a, 4)  # reg_max 1: no DFL bins
        assert tuple(out[f"{prefix}class_logits"].shape) == (1, a, 80)
        assert tuple(out[f"{prefix}mask_coefficients"].shape) == (1, a, 32)
    assert tuple(out["prototypes"].shape) == (1, 16, 16, 32)
    assert tuple(out["semantic_logits"].shape) == (1, 8, 8, 80)


def test_one_to_one_branches_do_not_train_the_features(nano):
    import tensorflow as tf

    model = nano
    x = tf.random.uniform((1, 64, 64, 3), seed=1)
    with tf.GradientTape(persistent=True) as tape:
        out = model(x)
        o2o = tf.reduce_sum(out["o2o_class_logits"])
        o2m = tf.reduce_sum(out["class_logits"])
    stem = model.get_layer("stem").conv.kernel
    assert tape.gradient(o2o, stem) is None  # stop-gradient before the one-to-one branches
    assert tape.gradient(o2m, stem) is not None
    head = model.get_layer("head")
    assert tape.gradient(o2o, head.o2o_class_branches[0].predict.kernel) is not None


def test_evaluation_scores_the_one_to_one_heads_top_k_not_nms(nano):
    # The detector training's evaluation builds (tfseg.evaluate.loop.make_detector, with the
    # eval section's settings) must take the one-to-one head's top-k path for YOLO26.
    from tfseg.postprocess.topk import end_to_end_detections

    images = tf.random.uniform((2, 64, 64, 3), seed=3)
    detections = make_detector(nano, 0.0, 0.7, 300)(images)  # untrained: keep every pair
    expected = end_to_end_detections(nano(images, training=False), 0.0, 300)
    for key, value in expected.items():
        np.testing.assert_allclose(detections[key].numpy(), value.numpy(), atol=1e-5)
    assert int(tf.reduce_max(detections["num_detections"])) > 0


def test_configure_loss_gives_the_dual_head_loss_with_its_log_terms(nano):
    nano.configure_loss()
    assert isinstance(nano.yolo_loss, EndToEndSegLoss)
    assert nano.yolo_loss.one_to_many.reg_max == 1
    assert [m.name for m in nano.loss_terms] == [
        "box_loss", "seg_loss", "cls_loss", "l1_loss", "sem_loss", "o2m_loss", "o2o_loss"]


@pytest.fixture(scope="module", params=PARITY)
def imported(request, reference):
    """(name, our model with the reference's weights, reference outputs, input crop)."""
    name = request.param
    model = build_model(name, 3, SIZE)
    apply_state_dict(model, reference.state(name))
    crop = reference.scene()[:, 32:128, 32:128]  # make_model_fixtures.scene_crop of 160 px
    return name, model, reference.outputs(name), crop


def _flat(outputs: dict, prefix: str) -> np.ndarray:
    """Reference per-level NCHW maps -> ``[A, K]`` in our anchor order (stride 8 first)."""
    levels = [outputs[f"{prefix}{i}"][0] for i in range(3)]  # each [K, H, W]
    return np.concatenate([level.reshape(level.shape[0], -1).T for level in levels], axis=0)


def test_name_table_covers_every_reference_tensor_once(imported, reference):
    name, model, _, _ = imported
    names = [n for n, _, _ in reference_name_table(model)]
    assert len(names) == len(set(names))
    assert {f"model.{n}" for n in names} == set(reference.state(name))
    assert len([v for _, v, _ in reference_name_table(model) if v is not None]) == len(model.weights)


def test_raw_outputs_of_both_heads_match_the_reference(imported):
    name, model, ref, crop = imported
    out = {k: np.asarray(v)[0] for k, v in model(crop).items()}
    for prefix in ("", "o2o_"):
        for ours, theirs in (("box_logits", "box"), ("class_logits", "cls"),
                             ("mask_coefficients", "coef")):
            np.testing.assert_allclose(out[prefix + ours], _flat(ref, prefix + theirs),
                                       atol=1e-4, err_msg=f"{name} {prefix}{ours}")
    np.testing.assert_allclose(out["prototypes"], ref["proto"][0].transpose(1, 2, 0), atol=1e-4)
    np.testing.assert_allclose(out["semantic_logits"], ref["semantic"][0].transpose(1, 2, 0),
                               atol=1e-4)
    # the comparison is not between zeros, and the two heads really differ
    assert np.abs(out["o2o_class_logits"]).max() > 0.1
    assert np.abs(out["o2o_class_logits"] - out["class_logits"]).max() > 0.1
