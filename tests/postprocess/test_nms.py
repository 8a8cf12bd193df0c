"""NMS survivors on hand-made boxes, matched by IoU (never by index)."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.ops.boxes import pairwise_iou
from tfseg.postprocess.nms import batched_nms

# name: (box xyxy, score, class). IoU(A, B) = IoU(A, C) = 81 / 119 = 0.68; IoU(B, C) = 1.
CANDIDATES = {
    "A": ((0, 0, 10, 10), 0.9, 0),
    "B": ((1, 1, 11, 11), 0.8, 0),
    "C": ((1, 1, 11, 11), 0.7, 1),
    "D": ((30, 30, 40, 40), 0.6, 0),
    "E": ((50, 50, 60, 60), 0.1, 0),  # below the score threshold
}
NAMES = ["D", "E", "B", "A", "C"]  # a scrambled anchor order


def inputs(names=NAMES):
    boxes = np.array([CANDIDATES[n][0] for n in names], np.float32)
    scores = np.array([CANDIDATES[n][1] for n in names], np.float32)
    classes = np.array([CANDIDATES[n][2] for n in names], np.float32)
    # The coefficients name their anchor, to check they travel with the kept box.
    coefficients = np.array([[ord(n), -ord(n)] for n in names], np.float32)
    return boxes, scores, classes, coefficients


def run(max_detections=6, iou=0.5, agnostic=False, topk=0, batch=None):
    batch = batch or [inputs()]
    stacked = [tf.constant(np.stack(parts)) for parts in zip(*batch)]
    return {k: v.numpy() for k, v in batched_nms(
        *stacked, image_size=64, max_detections=max_detections, iou_threshold=iou,
        score_threshold=0.25, agnostic=agnostic, pre_nms_topk=topk).items()}


def assert_survivors(out, image, expected):
    count = int(out["num_detections"][image])
    assert count == len(expected)
    boxes = out["boxes"][image, :count]
    want = np.array([CANDIDATES[n][0] for n in expected], np.float32).reshape(-1, 4)
    iou = pairwise_iou(tf.constant(want), tf.constant(boxes)).numpy()  # [expected, kept]
    for row, name in enumerate(expected):
        # Match by IoU and score (B and C share a box, so the score decides).
        matches = [j for j in range(count) if iou[row, j] > 0.999
                   and np.isclose(out["scores"][image, j], CANDIDATES[name][1])]
        assert len(matches) == 1, f"{name} not among survivors"
        j = matches[0]
        assert out["classes"][image, j] == CANDIDATES[name][2]
        np.testing.assert_array_equal(out["coefficients"][image, j], [ord(name), -ord(name)])
    # Padding rows are zero everywhere.
    for key in ("boxes", "scores", "classes", "coefficients"):
        assert not np.any(out[key][image, count:])


@pytest.mark.parametrize("iou, agnostic, expected", [
    (0.5, False, ["A", "C", "D"]),
    (0.5, True, ["A", "D"]),
    (0.7, False, ["A", "B", "C", "D"]),
    (0.7, True, ["A", "B", "D"]),  # C overlaps B by 1.0
])
def test_survivors(iou, agnostic, expected):
    assert_survivors(run(iou=iou, agnostic=agnostic), 0, expected)


def test_max_detections_keeps_the_best_scores():
    assert_survivors(run(max_detections=2, iou=0.5), 0, ["A", "C"])


def test_pre_nms_topk_limits_candidates():
    # Only A (0.9) and B (0.8) enter; B is suppressed by A.
    assert_survivors(run(iou=0.5, topk=2), 0, ["A"])


def test_batch_images_are_independent():
    out = run(iou=0.5, batch=[inputs(), inputs(["E", "D", "C", "E", "E"])])
    assert_survivors(out, 0, ["A", "C", "D"])
    assert_survivors(out, 1, ["C", "D"])


def test_nothing_above_threshold_gives_all_padding():
    out = run(batch=[inputs(["E", "E"])])
    assert out["num_detections"].tolist() == [0]
    assert not np.any(out["boxes"]) and not np.any(out["scores"])


def test_dynamic_batch_gives_the_same_survivors():
    """A batch of unknown size (the SavedModel bytes signature) takes the tf.map_fn path."""
    batch = [inputs(), inputs(["E", "D", "C", "E", "E"])]
    stacked = [np.stack(parts) for parts in zip(*batch)]
    specs = [tf.TensorSpec([None, *part.shape[1:]], tf.float32) for part in stacked]

    @tf.function(input_signature=specs)
    def dynamic(boxes, scores, classes, coefficients):
        assert boxes.shape[0] is None
        return batched_nms(boxes, scores, classes, coefficients, image_size=64,
                           max_detections=6, iou_threshold=0.5, score_threshold=0.25)

    out = {k: v.numpy() for k, v in dynamic(*stacked).items()}
    assert_survivors(out, 0, ["A", "C", "D"])
    assert_survivors(out, 1, ["C", "D"])


def test_static_batch_is_unrolled_without_a_loop():
    """A static batch lowers to per-image NMS ops, no While loop (TFLite WHILE)."""
    stacked = [tf.constant(np.stack(parts)) for parts in zip(inputs(), inputs())]
    graph = tf.function(lambda *args: batched_nms(
        *args, image_size=64, max_detections=6, iou_threshold=0.5,
        score_threshold=0.25)).get_concrete_function(*stacked).graph
    op_types = [op.type for op in graph.get_operations()]
    assert op_types.count("NonMaxSuppressionV5") == 2
    assert not {"While", "StatelessWhile"} & set(op_types)
