"""ByteTrack: every detection box counts, the faint ones only to keep tracks alive.

Each frame (Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection
Box", 2022):

1. every track moves one frame ahead with its Kalman filter;
2. first association: confirmed tracks (tracked and lost) against the high-score
   detections (cost ``1 - IoU``, times the score with ``fuse_score``), gated at
   ``match_thresh``; a matched lost track is found again with its old id;
3. second association: the tracks still unmatched that were tracked last frame against
   the low-score detections (gate 0.5): an occluded object's faint detection extends its
   track, but a low score never starts one; tracks left now are lost;
4. tracks seen in one frame only (unconfirmed) against the high-score detections left
   (gate 0.7); unconfirmed tracks left are removed: one-frame flickers get no id;
5. high-score detections left at or above ``new_track_thresh`` start unconfirmed tracks
   (confirmed at once on the first frame, where nothing could confirm them);
6. lost tracks older than the buffer are removed, and of a tracked and a lost track that
   overlap almost fully (IoU above 0.85), the younger is dropped.

The three associations involve disjoint tracks and all use the predicted state, so the
matched tracks are corrected by one batched Kalman update. Tracks are rows of arrays (one
table, no object per track): a frame of 100 objects costs a few array operations.

A track gets its id when it is confirmed, so ids count up without gaps. Tracks report the
box of the detection they matched (its mask belongs to that box), not the filter's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tfseg.track import kalman
from tfseg.track.association import assign, box_iou, iou_cost
from tfseg.track.settings import TrackerSettings

SECOND_PASS_GATE = 0.5   # 1 - IoU a low-score detection may cost
UNCONFIRMED_GATE = 0.7   # 1 - IoU a second sighting may cost
DUPLICATE_IOU = 0.85     # a tracked and a lost track overlapping this much are one object

# Track states. Removed tracks are deleted from the table.
NEW, TRACKED, LOST = 0, 1, 2


@dataclass
class TrackTable:
    """All tracks of a tracker, one row each.

    Attributes:
        mean: ``[T, 8]`` Kalman state; covariance: ``[T, 8, 8]``.
        box: ``[T, 4]`` xyxy of the last matched detection; score, class_id: ``[T]`` its.
        state: ``[T]`` NEW, TRACKED or LOST.
        track_id: ``[T]`` int, 0 until confirmed.
        start_frame, last_frame: ``[T]`` int, the frame it started and last matched.
        detection: ``[T]`` int, the detection it matched in the current frame, or -1.
    """
    mean: np.ndarray
    covariance: np.ndarray
    box: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    state: np.ndarray
    track_id: np.ndarray
    start_frame: np.ndarray
    last_frame: np.ndarray
    detection: np.ndarray

    @classmethod
    def empty(cls) -> TrackTable:
        return cls(np.zeros((0, 8)), np.zeros((0, 8, 8)), np.zeros((0, 4)), np.zeros(0),
                   *(np.zeros(0, np.int64) for _ in range(6)))

    def __len__(self) -> int:
        return len(self.state)

    def rows(self, index: np.ndarray) -> TrackTable:
        """The tracks at ``index`` (an int index or a bool mask)."""
        return TrackTable(*(column[index] for column in self._columns()))

    def extended(self, other: TrackTable) -> TrackTable:
        return TrackTable(*(np.concatenate(pair) for pair in zip(self._columns(), other._columns())))

    def _columns(self) -> list[np.ndarray]:
        return [getattr(self, name) for name in _COLUMNS]


_COLUMNS = tuple(f.name for f in dataclasses.fields(TrackTable))


class TrackedObject(NamedTuple):
    """One tracked object in one frame: its id and the detection (by index) it matched."""
    track_id: int
    detection: int
    box: np.ndarray  # [4] xyxy, the detection's
    score: float
    class_id: int


class ByteTracker:
    """Persistent ids for the detections of consecutive frames of one sequence.

    Args:
        settings: the tracker YAML's values.
        frame_rate: frames per second of the sequence; the buffer is ``track_buffer`` frames
            at 30 frames/s and scales with it.
    """

    def __init__(self, settings: TrackerSettings = TrackerSettings(), frame_rate: float = 30.0):
        self.settings = settings
        self.max_lost_frames = int(round(frame_rate / 30.0 * settings.track_buffer))
        self.tracks = TrackTable.empty()
        self.frame = 0
        self._next_id = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray,
               classes: np.ndarray) -> list[TrackedObject]:
        """One frame's detections (``[n, 4]`` xyxy pixels, ``[n]`` scores, ``[n]`` classes)
        -> the confirmed tracks that matched one of them, in detection order."""
        self.frame += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        classes = np.asarray(classes, np.int64).reshape(-1)
        s, t = self.settings, self.tracks
        strong = np.flatnonzero(scores >= s.track_high_thresh)
        low = np.flatnonzero((scores >= s.track_low_thresh) & (scores < s.track_high_thresh))
        self._predict()
        # [T, n] IoU of where each track should be now with every detection, sliced per pass
        overlap = box_iou(kalman.xyah_to_boxes(t.mean), boxes)

        confirmed = np.flatnonzero(t.track_id > 0)  # tracked and lost
        first, rest, strong_left = assign(
            iou_cost(overlap[confirmed][:, strong], scores[strong] if s.fuse_score else None),
            s.match_thresh)
        was_tracked = confirmed[rest][t.state[confirmed[rest]] == TRACKED]
        second, gone, _ = assign(iou_cost(overlap[was_tracked][:, low]), SECOND_PASS_GATE)
        left = strong[strong_left]
        fresh = np.flatnonzero(t.track_id == 0)
        third, flicker, still_left = assign(
            iou_cost(overlap[fresh][:, left], scores[left] if s.fuse_score else None),
            UNCONFIRMED_GATE)

        matched = np.concatenate([confirmed[first[:, 0]], was_tracked[second[:, 0]], fresh[third[:, 0]]])
        detections = np.concatenate([strong[first[:, 1]], low[second[:, 1]], left[third[:, 1]]])
        self._correct(matched, detections, boxes, scores, classes)
        t.state[was_tracked[gone]] = LOST
        keep = np.ones(len(t), bool)
        keep[fresh[flicker]] = False

        starting = left[still_left]
        self._start(starting[scores[starting] >= s.new_track_thresh], boxes, scores, classes, keep)
        self._forget()
        t = self.tracks
        shown = np.flatnonzero((t.state == TRACKED) & (t.track_id > 0))
        shown = shown[np.argsort(t.detection[shown], kind="stable")]
        return [TrackedObject(*fields) for fields in zip(
            t.track_id[shown].tolist(), t.detection[shown].tolist(), t.box[shown],
            t.score[shown].tolist(), t.class_id[shown].tolist())]

    def _predict(self) -> None:
        t = self.tracks
        t.detection[:] = -1
        if not len(t):
            return
        mean = t.mean.copy()
        mean[t.state != TRACKED, 7] = 0.0  # a track out of sight does not keep growing or shrinking
        t.mean, t.covariance = kalman.predict(mean, t.covariance)

    def _correct(self, rows: np.ndarray, detections: np.ndarray, boxes: np.ndarray,
                 scores: np.ndarray, classes: np.ndarray) -> None:
        """The matched tracks take their detections: one batched Kalman update."""
        t = self.tracks
        if len(rows):
            t.mean[rows], t.covariance[rows] = kalman.update(
                t.mean[rows], t.covariance[rows], kalman.boxes_to_xyah(boxes[detections]))
        t.box[rows], t.score[rows], t.class_id[rows] = boxes[detections], scores[detections], classes[detections]
        t.detection[rows], t.last_frame[rows], t.state[rows] = detections, self.frame, TRACKED
        self._confirm(np.sort(rows[t.track_id[rows] == 0]))

    def _confirm(self, rows: np.ndarray) -> None:
        self.tracks.track_id[rows] = np.arange(self._next_id, self._next_id + len(rows))
        self._next_id += len(rows)

    def _start(self, new: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
               keep: np.ndarray) -> None:
        """Drop the rows not kept and add one unconfirmed track per detection in ``new``."""
        mean, covariance = kalman.initiate(kalman.boxes_to_xyah(boxes[new]))
        frame = np.full(len(new), self.frame)
        started = TrackTable(mean, covariance, boxes[new], scores[new], classes[new],
                             np.full(len(new), NEW), np.zeros(len(new), np.int64), frame, frame,
                             new.astype(np.int64))
        self.tracks = self.tracks.rows(keep).extended(started)
        if self.frame == 1:
            rows = np.arange(len(self.tracks))
            self.tracks.state[rows] = TRACKED
            self._confirm(rows)

    def _forget(self) -> None:
        """Remove lost tracks past the buffer, and lost duplicates of tracked ones."""
        t = self.tracks
        keep = ~((t.state == LOST) & (self.frame - t.last_frame > self.max_lost_frames))
        tracked = np.flatnonzero((t.state == TRACKED) & (t.track_id > 0))
        lost = np.flatnonzero((t.state == LOST) & keep)
        if len(tracked) and len(lost):
            expected = kalman.xyah_to_boxes(t.mean)
            for i, j in zip(*np.nonzero(box_iou(expected[tracked], expected[lost]) > DUPLICATE_IOU)):
                a, b = tracked[i], lost[j]
                older_tracked = self.frame - t.start_frame[a] >= t.last_frame[b] - t.start_frame[b]
                keep[b if older_tracked else a] = False
        if not keep.all():
            self.tracks = t.rows(keep)
