"""Track scores (motmetrics) on known answers, and ByteTrack on the generated clip's truth."""

import numpy as np
import pytest

from tfseg.data.video import write_clip
from tfseg.track.bytetrack import ByteTracker
from tfseg.track.writers import mot_lines, read_mot

pytest.importorskip("motmetrics")
from tfseg.track.metrics import mot_scores  # noqa: E402  (needs motmetrics)


def rows(spec):
    """[(frame, id, x, y)] of 10 x 10 boxes -> MOTChallenge rows."""
    return np.array([[f, i, x, y, 10, 10, 1, -1, -1, -1] for f, i, x, y in spec], np.float64)


GT = rows([(f, i, 20 * i + f, 5, ) for f in range(1, 11) for i in (1, 2)])


def test_perfect_tracks_score_one():
    scores = mot_scores(GT, GT.copy())
    assert (scores["idf1"], scores["mota"], scores["id_switches"]) == (1.0, 1.0, 0)
    assert scores["num_objects"] == scores["num_predictions"] == 20


def test_an_id_swap_halfway_is_one_switch_per_object():
    hyp = GT.copy()
    late = hyp[:, 0] > 5
    hyp[late, 1] = 3 - hyp[late, 1]  # ids 1 and 2 exchanged from frame 6
    scores = mot_scores(GT, hyp)
    assert scores["id_switches"] == 2 and scores["mota"] == pytest.approx(1 - 2 / 20)
    assert scores["idf1"] == pytest.approx(0.5)  # each identity holds half its frames


def test_a_box_shifted_below_the_iou_threshold_is_a_miss_and_a_false_positive():
    hyp = GT[:1].copy()
    hyp[0, 2] += 6  # IoU 4/16 = 0.25 < 0.5
    scores = mot_scores(GT[:1], hyp)
    assert (scores["misses"], scores["false_positives"], scores["mota"]) == (1, 1, -1.0)


def test_bytetrack_follows_the_generated_clip(tmp_path):
    """The clip's ground truth as detections, jittered, with occluded objects' scores lowered
    and some detections dropped: ByteTrack keeps nearly every identity."""
    written = write_clip(tmp_path / "clip", frames=90, width=320, height=240, objects=6, seed=5)
    gt = read_mot(written["gt"])
    rng = np.random.default_rng(0)
    tracker, lines = ByteTracker(), []
    for frame in range(1, 91):
        truth = gt[(gt[:, 0] == frame) & (rng.uniform(size=len(gt)) > 0.05)]  # 5 % missed
        boxes = np.c_[truth[:, 2:4], truth[:, 2:4] + truth[:, 4:6]] + rng.normal(0, 1.0, (len(truth), 4))
        scores = np.where(truth[:, 8] < 0.6, 0.15, 0.85)  # half-hidden objects score low
        lines += mot_lines(frame, tracker.update(boxes, scores, truth[:, 7].astype(int)))
    hyp = np.array([[float(v) for v in line.split(",")] for line in lines])
    scores = mot_scores(gt, hyp)
    assert scores["idf1"] > 0.9 and scores["id_switches"] <= 2, scores
