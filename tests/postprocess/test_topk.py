"""The end-to-end (one-to-one, top-k) post-processing: a hand-worked case, the choice made by
PostProcess, and equality with the reference's own end-to-end detections of YOLO26."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tfseg.contracts import num_anchors, proto_size
from tfseg.postprocess import PostProcess
from tfseg.postprocess.masks import detection_masks
from tfseg.postprocess.topk import end_to_end_detections, topk_pairs

SIZE, CLASSES, K = 64, 3, 32
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "model"


def hand_made():
    """One image, reg_max 1 (plain distances): three scored anchors.

    Anchor 0 (stride 8, centre (4, 4)): distances (0.5, 0.5, 1, 2) strides -> box
    (0, 0, 12, 20); class 1 at logit 4 and class 2 at logit 3.
    Anchor 70 (stride 16, row 1 col 2, centre (40, 24)): distances (1, 1, 1, 1) -> (24, 8,
    56, 40); class 0 at logit 2.
    Anchor 83 (the last, stride 32, centre (48, 48)): class 0 at logit -1 (score 0.27).
    """
    a, p = num_anchors(SIZE), proto_size(SIZE)
    raw = {"o2o_box_logits": np.ones((1, a, 4), np.float32),
           "o2o_class_logits": np.full((1, a, CLASSES), -10.0, np.float32),
           "o2o_mask_coefficients": np.zeros((1, a, K), np.float32),
           "prototypes": np.zeros((1, p, p, K), np.float32)}
    raw["o2o_box_logits"][0, 0] = (0.5, 0.5, 1.0, 2.0)
    raw["o2o_class_logits"][0, 0, 1:] = (4.0, 3.0)
    raw["o2o_mask_coefficients"][0, 0, 0] = 1.0
    raw["o2o_class_logits"][0, 70, 0] = 2.0
    raw["o2o_class_logits"][0, 83, 0] = -1.0
    raw["prototypes"][..., 0] = 10.0
    # The one-to-many head says something else entirely: top-k must not read it.
    raw.update(box_logits=np.zeros((1, a, 4), np.float32),
               class_logits=np.full((1, a, CLASSES), 9.0, np.float32),
               mask_coefficients=np.zeros((1, a, K), np.float32))
    return raw


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


def test_hand_worked_top_k_pairs_boxes_and_masks():
    out = {k: np.asarray(v) for k, v in PostProcess(score_threshold=0.25, max_detections=5)(
        hand_made()).items()}
    # pairs in score order: (anchor 0, class 1), (0, 2), (70, 0), (83, 0); the same anchor
    # twice, once per class, as the published top-k allows
    assert out["num_detections"].tolist() == [4]
    np.testing.assert_allclose(out["scores"][0, :4], sigmoid([4, 3, 2, -1]), atol=1e-6)
    assert out["scores"][0, 4] == 0  # sigmoid(-10) < 0.25: zeroed
    assert out["classes"][0].tolist() == [1, 2, 0, 0, 0]
    np.testing.assert_allclose(out["boxes"][0, :3], [[0, 0, 12, 20], [0, 0, 12, 20],
                                                     [24, 8, 56, 40]], atol=1e-5)
    np.testing.assert_array_equal(out["boxes"][0, 4], 0)
    # anchor 0's mask: sigmoid(10) inside its box (prototype cells 0..2 x 0..4), zero outside
    mask = out["masks"][0, 0]
    assert mask[:5, :3].min() > 0.99 and mask[5:].max() == 0 and mask[:, 3:].max() == 0
    np.testing.assert_allclose(out["masks"][0, 2][2:10, 6:14], 0.5, atol=1e-6)  # coefficient 0


def test_threshold_pads_to_n_and_nms_option_reads_the_other_head():
    raw = hand_made()
    out = PostProcess(score_threshold=0.5, max_detections=200)(raw)  # N > A = 84: padded
    assert tuple(out["boxes"].shape) == (1, 200, 4)
    assert int(out["num_detections"][0]) == 3  # 0.27 is below 0.5
    nms = PostProcess(score_threshold=0.5, max_detections=10, end_to_end=False)(raw)
    assert int(nms["num_detections"][0]) == 10  # the one-to-many head: every anchor scores 0.9999
    assert PostProcess(end_to_end=False).get_config()["end_to_end"] is False


def test_run_time_thresholds_equal_a_post_process_built_with_them():
    # Two images, each given its own score threshold and row limit at run time: each must get
    # what a PostProcess constructed with those values gives it (the IoU threshold, for
    # which the top-k path has no NMS, changes nothing).
    one = hand_made()
    raw = {k: np.concatenate([v, v]) for k, v in one.items()}
    post = PostProcess(score_threshold=0.25, max_detections=5)
    out = post(raw, score_threshold=tf.constant([0.6, -1.0]), iou_threshold=tf.constant([0.1, 0.9]),
               max_detections=tf.constant([5, 2]))
    built = [PostProcess(score_threshold=0.6, max_detections=5)(one),
             PostProcess(score_threshold=0.25, max_detections=5)(one)]
    assert np.asarray(out["num_detections"]).tolist() == [3, 2]  # 0.6 keeps 3; the limit 2
    for b, reference in enumerate(built):
        n = int(out["num_detections"][b])
        for key in ("boxes", "scores", "classes", "masks"):
            np.testing.assert_allclose(np.asarray(out[key][b, :n]),
                                       np.asarray(reference[key][0, :n]), atol=1e-6)
            assert not np.asarray(out[key][b, n:]).any()  # rows past the limit are zero


def test_top_k_pairs_equal_a_brute_force_choice():
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(size=(2, 50, 7)).astype(np.float32)
    scores, anchors, classes = (np.asarray(t) for t in topk_pairs(tf.constant(probabilities), 10))
    for b in range(2):
        best_anchors = np.argsort(-probabilities[b].max(-1))[:10]
        pairs = [(probabilities[b, a, c], a, c) for a in best_anchors for c in range(7)]
        pairs.sort(key=lambda t: -t[0])
        np.testing.assert_allclose(scores[b], [p[0] for p in pairs[:10]])
        assert anchors[b].tolist() == [p[1] for p in pairs[:10]]
        assert classes[b].tolist() == [p[2] for p in pairs[:10]]
    assert anchors.dtype == np.int32 and classes.dtype == np.int32


@pytest.mark.parametrize("name", ["yolo26-seg-n", "yolo26-seg-s"])
def test_equals_the_reference_end_to_end_detections(name):
    """Our model with the reference's weights + our top-k = the reference's own top-k."""
    from tfseg.model import build_model
    from tfseg.model.import_ultralytics import apply_state_dict

    from reference_weights import CROP_SIZE, reference_like_weights, scene_crop

    model = build_model(name, 3, CROP_SIZE)
    apply_state_dict(model, reference_like_weights(
        json.loads((FIXTURES / f"{name}.state.json").read_text())))
    scene = cv2.imread(str(FIXTURES / "scene.png"))[..., ::-1]
    crop = (scene_crop(scene).astype(np.float32) / 255.0)[None]
    raw = model(crop)
    with np.load(FIXTURES / f"{name}.outputs.npz") as data:
        reference = data["e2e_detections"][0]  # [k, 6 + 32]: x1 y1 x2 y2 score class coefs
    n = 20
    out = {k: np.asarray(v)[0] for k, v in end_to_end_detections(raw, 0.0, n).items()}
    np.testing.assert_allclose(out["scores"], reference[:n, 4], atol=1e-5)
    assert out["classes"].tolist() == reference[:n, 5].astype(int).tolist()
    ref_boxes = np.clip(reference[:n, :4], 0, CROP_SIZE)  # ours are clipped to the input
    np.testing.assert_allclose(out["boxes"], ref_boxes, atol=1e-3)
    ref_masks = detection_masks(tf.constant(reference[None, :n, 6:]), raw["prototypes"],
                                tf.constant(ref_boxes[None]))
    np.testing.assert_allclose(out["masks"], np.asarray(ref_masks)[0], atol=1e-4)
    assert len(set(out["classes"].tolist())) > 1 and out["scores"][0] > 0.5  # not trivial
