"""The synthetic tracking clip: deterministic, readable, ground truth that matches the pixels."""

import cv2
import numpy as np

from tfseg.data.video import render_frames, write_clip
from tfseg.track.writers import read_mot


def test_the_clip_is_written_and_its_ground_truth_is_consistent(tmp_path):
    written = write_clip(tmp_path / "clip", frames=12, width=96, height=80, objects=3, seed=4)
    capture = cv2.VideoCapture(written["video"])
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 12
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (96, 80)
    gt = read_mot(written["gt"])
    assert len(gt) == written["rows"] > 0
    assert set(gt[:, 0].astype(int)) <= set(range(1, 13)) and set(gt[:, 1].astype(int)) <= {1, 2, 3}
    assert np.all(gt[:, 8] >= 0.25) and np.all(gt[:, 7] <= 2)
    for frame in range(1, 13):  # one row per object and frame at most
        ids = gt[gt[:, 0] == frame, 1]
        assert len(ids) == len(set(ids))
    assert "seqLength=12" in (tmp_path / "clip" / "seqinfo.ini").read_text()


def test_same_seed_same_frames_and_objects_move_and_occlude():
    first = list(render_frames(40, 120, 90, objects=6, seed=1))
    again = list(render_frames(40, 120, 90, objects=6, seed=1))
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))
    assert not np.array_equal(first[0][0], list(render_frames(1, 120, 90, 6, seed=2))[0][0])
    centres = {}
    for _, instances in (first[0], first[-1]):
        for track_id, _, visible, _ in instances:
            if visible.any():
                centres.setdefault(track_id, []).append(np.argwhere(visible).mean(0))
    moved = [np.abs(a - b).max() for a, b in (c for c in centres.values() if len(c) == 2)]
    assert max(moved) > 5
    fractions = [f for _, instances in first for _, _, _, f in instances]
    assert min(fractions) < 0.9  # some frame has an object partly hidden by another
    # the visible masks of one frame never overlap: each pixel shows one object at most
    for _, instances in first:
        total = sum(v.astype(int) for _, _, v, _ in instances)
        assert total.max() <= 1
