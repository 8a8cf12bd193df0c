"""ByteTrack on hand-made detection sequences: ids persist through crossings and gaps,
low scores extend tracks but never start one, one-frame flickers get no id."""

import numpy as np

from tfseg.track.bytetrack import ByteTracker
from tfseg.track.settings import TrackerSettings


def box(cx, cy, w=20.0, h=20.0):
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def step(tracker, boxes, scores, classes=None):
    """One frame -> {detection index: track id}."""
    boxes = np.array(boxes, np.float64).reshape(-1, 4)
    classes = np.zeros(len(boxes), int) if classes is None else classes
    return {obj.detection: obj.track_id for obj in tracker.update(boxes, np.array(scores), classes)}


def test_ids_start_at_one_on_the_first_frame_and_follow_motion():
    tracker = ByteTracker()
    assert step(tracker, [box(50, 50), box(200, 50)], [0.9, 0.8]) == {0: 1, 1: 2}
    for t in range(1, 20):  # both move 5 px a frame; detections listed in reverse order
        ids = step(tracker, [box(200 - 5 * t, 50), box(50 + 5 * t, 50)], [0.8, 0.9])
        assert ids == {0: 2, 1: 1}


def test_a_crossing_pair_keeps_its_ids():
    tracker = ByteTracker()
    history = []
    for t in range(40):  # A goes right, B goes left, 8 px apart vertically: they overlap mid-way
        a, b = box(40 + 6 * t, 100), box(280 - 6 * t, 108)
        ids = step(tracker, [a, b], [0.9, 0.9])
        history.append((ids[0], ids[1]))
    assert set(history) == {(1, 2)}


def test_a_missing_object_is_recovered_within_the_buffer():
    tracker = ByteTracker(TrackerSettings(track_buffer=10))
    seen = []
    for t in range(30):
        moving = box(30 + 4 * t, 60)
        if 10 <= t < 16:  # gone for 6 frames (occluded): the filter carries it on
            assert step(tracker, [box(300, 300)], [0.9]) == {0: 2}
            continue
        seen.append(step(tracker, [moving, box(300, 300)], [0.9, 0.9])[0])
    assert set(seen) == {1}


def test_beyond_the_buffer_a_returning_object_gets_a_new_id():
    tracker = ByteTracker(TrackerSettings(track_buffer=3))
    for t in range(5):
        assert step(tracker, [box(50, 50)], [0.9]) == {0: 1}
    for _ in range(6):
        step(tracker, [], [])
    step(tracker, [box(50, 50)], [0.9])  # unconfirmed: seen once
    assert step(tracker, [box(50, 50)], [0.9]) == {0: 2}


def test_low_scores_extend_a_track_but_never_start_one():
    tracker = ByteTracker()
    for t in range(10):  # a faint object (0.15: between low 0.1 and high 0.25) all along
        assert step(tracker, [box(100 + 2 * t, 100)], [0.15]) == {}
    assert len(tracker.tracks) == 0
    # A confident one (unconfirmed in its first frame), whose score then drops as it gets occluded
    assert step(tracker, [box(40, 40)], [0.9]) == {}
    for t in range(1, 5):
        assert step(tracker, [box(40 + 3 * t, 40)], [0.9]) == {0: 1}
    for t in range(5, 12):
        assert step(tracker, [box(40 + 3 * t, 40)], [0.15]) == {0: 1}
    assert step(tracker, [box(40 + 3 * 12, 40)], [0.05]) == {}  # below the low threshold


def test_a_one_frame_flicker_gets_no_id_and_ids_stay_dense():
    tracker = ByteTracker()
    step(tracker, [box(50, 50)], [0.9])
    assert step(tracker, [box(50, 50), box(200, 200)], [0.9, 0.9]) == {0: 1}  # new: unconfirmed
    assert step(tracker, [box(50, 50)], [0.9]) == {0: 1}                      # flicker gone
    step(tracker, [box(50, 50), box(150, 150)], [0.9, 0.9])
    assert step(tracker, [box(50, 50), box(150, 150)], [0.9, 0.9]) == {0: 1, 1: 2}


def test_new_track_threshold_decides_which_high_detections_start_tracks():
    tracker = ByteTracker(TrackerSettings(track_high_thresh=0.3, new_track_thresh=0.6))
    assert step(tracker, [box(50, 50), box(150, 150)], [0.5, 0.7]) == {1: 1}
    assert step(tracker, [box(50, 50), box(150, 150)], [0.5, 0.7]) == {1: 1}
    assert step(tracker, [box(50, 50), box(150, 150)], [0.7, 0.7]) == {1: 1}  # unconfirmed now
    assert step(tracker, [box(50, 50), box(150, 150)], [0.7, 0.7]) == {0: 2, 1: 1}


def test_the_class_and_box_reported_are_the_matched_detections():
    tracker = ByteTracker()
    step(tracker, [box(50, 50)], [0.9], np.array([2]))
    detection = box(53, 51, 22, 18)
    (obj,) = tracker.update(np.array([detection]), np.array([0.8]), np.array([1]))
    np.testing.assert_allclose(obj.box, detection)
    assert (obj.track_id, obj.detection, obj.class_id, obj.score) == (1, 0, 1, 0.8)
