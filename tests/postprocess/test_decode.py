"""DFL decode and class scoring on hand-made logits."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.contracts import num_anchors
from tfseg.ops.dfl import dfl_expectation
from tfseg.postprocess.decode import best_class, decode_boxes

REG_MAX = 16
PEAK = 60.0  # a logit this far above the rest makes the softmax one-hot to float precision


def side_logits(distance_bins: float) -> np.ndarray:
    """Logits whose expectation is ``distance_bins`` (integer, or integer + 0.5 as two equal bins)."""
    logits = np.zeros(REG_MAX, np.float32)
    low = int(np.floor(distance_bins))
    logits[low] = PEAK
    if distance_bins != low:
        logits[low + 1] = PEAK
    return logits


def anchor_logits(left, top, right, bottom) -> np.ndarray:
    return np.concatenate([side_logits(d) for d in (left, top, right, bottom)])


def test_dfl_expectation_of_peaked_and_split_bins():
    logits = np.stack([anchor_logits(0, 3, 15, 7.5)])[None]  # [1, 1, 64]
    distances = dfl_expectation(tf.constant(logits), REG_MAX).numpy()
    np.testing.assert_allclose(distances[0, 0], [0.0, 3.0, 15.0, 7.5], atol=1e-4)


def test_decode_boxes_uses_anchor_centres_and_strides():
    size = 64
    count = num_anchors(size)  # 64 + 16 + 4 = 84
    logits = np.tile(anchor_logits(0, 0, 0, 0), (1, count, 1)).astype(np.float32)
    # Anchor 0: stride 8, centre (4, 4); distances (0, 0, 2, 3) bins -> (4, 4, 20, 28).
    logits[0, 0] = anchor_logits(0, 0, 2, 3)
    # Anchor 9: stride 8, row 1 column 1, centre (12, 12); left 2 bins -> x1 = -4, clipped to 0.
    logits[0, 9] = anchor_logits(2, 1, 1, 0.5)
    # Last anchor: stride 32, centre (48, 48); (1, 0.5, 0.5, 1) -> (16, 32, 64, 80) clipped.
    logits[0, count - 1] = anchor_logits(1, 0.5, 0.5, 1)
    boxes = decode_boxes(tf.constant(logits), size, REG_MAX).numpy()[0]
    np.testing.assert_allclose(boxes[0], [4, 4, 20, 28], atol=1e-3)
    np.testing.assert_allclose(boxes[9], [0, 4, 20, 16], atol=1e-3)
    np.testing.assert_allclose(boxes[count - 1], [16, 32, 64, 64], atol=1e-3)
    # Anchor 64 is the first of stride 16 at centre (8, 8): a zero-size box there.
    np.testing.assert_allclose(boxes[64], [8, 8, 8, 8], atol=1e-3)


def test_best_class_scores_and_first_index_on_ties():
    logits = tf.constant([[[0.0, 2.0, 1.0], [1.0, 1.0, -3.0], [-5.0, -6.0, -4.0]]])
    scores, classes = best_class(logits)
    np.testing.assert_allclose(scores.numpy()[0], 1 / (1 + np.exp([-2.0, -1.0, 4.0])), rtol=1e-6)
    assert classes.numpy()[0].tolist() == [1.0, 0.0, 2.0]


@pytest.mark.parametrize("size", [32, 96])
def test_decode_boxes_batch_rows_independent(size):
    count = num_anchors(size)
    first = np.tile(anchor_logits(1, 1, 1, 1), (count, 1))
    second = np.tile(anchor_logits(0, 0, 0, 0), (count, 1))
    boxes = decode_boxes(tf.constant(np.stack([first, second]), tf.float32), size, REG_MAX).numpy()
    widths_first = boxes[0, :, 2] - boxes[0, :, 0]
    # Stride-8 anchors away from the border: 1 bin each side = 16 pixels wide.
    assert np.isclose(widths_first[size // 8 + 1], 16.0, atol=1e-3)
    np.testing.assert_allclose(boxes[1, :, 2] - boxes[1, :, 0], 0.0, atol=1e-3)
