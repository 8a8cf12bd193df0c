"""IoU cost and the gated one-to-one assignment."""

import numpy as np
import pytest

from tfseg.track.association import assign, box_iou, iou_cost


def test_box_iou_by_hand():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]])
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    iou = box_iou(a, b)
    assert iou[0, 0] == pytest.approx(50 / 150)
    assert iou[0, 1] == 0 and iou[0, 2] == 1
    assert np.all(iou[1] == 0)  # an empty box overlaps nothing


def test_box_iou_equals_the_graph_side_pairwise_iou():
    import tensorflow as tf

    from tfseg.ops.boxes import pairwise_iou

    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 500, (40, 2))
    boxes = np.concatenate([corners, corners + rng.uniform(5, 80, (40, 2))], axis=1)
    np.testing.assert_allclose(box_iou(boxes, boxes[:30]),
                               pairwise_iou(tf.constant(boxes), tf.constant(boxes[:30])).numpy(),
                               atol=1e-6)


def test_fused_cost_multiplies_iou_by_score():
    overlap = box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 10], [5, 0, 15, 10]]))
    cost = iou_cost(overlap, np.array([0.5, 0.9]))
    np.testing.assert_allclose(cost, [[1 - 0.5, 1 - 0.9 / 3]])


def test_assignment_is_globally_optimal_not_greedy():
    # Greedy would give row 0 its best column 0 (cost 0.1) and row 1 column 1 (0.9): 1.0;
    # the optimum crosses them: 0.3 + 0.3.
    cost = np.array([[0.1, 0.3], [0.3, 0.9]])
    matches, rows, cols = assign(cost, max_cost=0.95)
    assert sorted(map(tuple, matches)) == [(0, 1), (1, 0)]
    assert len(rows) == 0 and len(cols) == 0


def test_the_gate_refuses_costly_pairs_and_keeps_the_allowed_ones():
    cost = np.array([[0.2, 0.99], [0.95, 0.97], [0.99, 0.4]])
    matches, rows, cols = assign(cost, max_cost=0.8)
    assert sorted(map(tuple, matches)) == [(0, 0), (2, 1)]
    assert rows.tolist() == [1] and cols.tolist() == []


def test_one_good_pair_beats_two_poor_ones():
    # Row 0 fits column 0 well; matching both rows would take two pairs near the gate
    # (0.75 + 0.7). Leaving a row and a column out costs the gate each, so one pair wins.
    cost = np.array([[0.1, 0.75], [0.7, 0.99]])
    matches, rows, cols = assign(cost, max_cost=0.8)
    assert matches.tolist() == [[0, 0]]
    assert rows.tolist() == [1] and cols.tolist() == [1]


def test_empty_sides():
    matches, rows, cols = assign(np.zeros((0, 3)), 0.8)
    assert matches.shape == (0, 2) and rows.tolist() == [] and cols.tolist() == [0, 1, 2]
    matches, rows, cols = assign(np.zeros((2, 0)), 0.8)
    assert rows.tolist() == [0, 1] and cols.tolist() == []
