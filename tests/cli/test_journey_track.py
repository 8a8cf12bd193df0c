"""The tracking journey as a user types it: a clip with ground truth, then ``tfseg track``.

Two ``tfseg`` runs in a fresh folder holding the shared tiny run: ``tfseg data video``
writes the clip and its gt.txt; ``tfseg track`` with a tracker YAML of the user's own (the
tiny net's scores are far below the shipped thresholds) writes the MOT text, tracks.json
and the overlay video, which must agree with each other and with the clip.
"""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest

from cli_runner import run_tfseg as tfseg
from tfseg.track.writers import read_mot

# An untrained net's best scores are a few thousandths: thresholds under them, and IoU alone
# as the similarity (times such a score, no pair would pass the gate).
TRACKER = ("track_high_thresh: 0.001\ntrack_low_thresh: 0.0005\nnew_track_thresh: 0.001\n"
           "track_buffer: 15\nfuse_score: false\n")


@pytest.mark.slow  # the tiny training run, then two tfseg processes
def test_track_a_generated_clip(tiny_run, tmp_path):
    tiny_run.copy_into(tmp_path)
    made = tfseg(tmp_path, "data", "video", "--output", "clip", "--frames", "24", "--width", "128",
                 "--height", "96", "--objects", "3", "--seed", "3")
    assert "clip/clip.mp4 (24 frames of 128x96, 3 objects)" in made.stdout
    gt = read_mot(tmp_path / "clip/gt/gt.txt")
    assert len(gt) and set(gt[:, 1].astype(int)) <= {1, 2, 3}
    (tmp_path / "mine.yaml").write_text(TRACKER)

    done = tfseg(tmp_path, "track", "source=clip/clip.mp4", "weights=runs/train/train",
                 "tracker=mine.yaml", "max_det=5")
    run = tmp_path / "runs/track/track"
    assert "results: runs/track/track" in done.stdout
    assert "track: 24 frames in 1 sequence(s)" in done.stdout

    capture = cv2.VideoCapture(str(run / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 24
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (128, 96)

    records = json.loads((run / "tracks.json").read_text())
    assert [r["frame"] for r in records] == list(range(1, 25))
    objects = [(r["frame"], t) for r in records for t in r["tracks"]]
    assert objects, "the tracker followed nothing"
    rows = read_mot(run / "clip.txt")
    assert len(rows) == len(objects)  # one MOT row per tracked object and frame
    for row, (frame, obj) in zip(rows, objects):
        x1, y1, x2, y2 = obj["box_xyxy"]
        assert (int(row[0]), int(row[1])) == (frame, obj["id"])
        np.testing.assert_allclose(row[2:6], [x1, y1, x2 - x1, y2 - y1], atol=0.02)
        assert obj["mask_rle"]["size"] == [96, 128] and obj["class_name"] in ("circle", "rectangle", "triangle")
    # ids persist: the first frame's ids come back in later frames, and none repeats within a frame
    per_frame = [[t["id"] for t in r["tracks"]] for r in records]
    assert all(len(ids) == len(set(ids)) for ids in per_frame)
    assert set(per_frame[0]) & set(per_frame[-1])
    assert max(max(ids, default=0) for ids in per_frame) <= len({i for ids in per_frame for i in ids})

    if importlib.util.find_spec("motmetrics") is None:  # the track-eval extra (dev has it)
        return
    from tfseg.track.metrics import mot_scores

    scores = mot_scores(gt, rows)  # motmetrics reads both files as MOTChallenge rows
    assert scores["num_objects"] == len(gt) and scores["num_predictions"] == len(rows)
    assert 0.0 <= scores["idf1"] <= 1.0
