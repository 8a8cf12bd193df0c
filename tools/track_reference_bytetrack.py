"""Ultralytics' ByteTrack on detections saved by tools/track_yardstick.py (run in the
reference's own venv; tfseg is not imported here, and nothing of the reference's is copied).

    /work/ultra-venv/bin/python tools/track_reference_bytetrack.py detections.npz out.txt

Input: an .npz with ``boxes [F, N, 4]`` xyxy pixels, ``scores [F, N]``, ``classes [F, N]``
and ``counts [F]`` (valid detections per frame). Output: MOTChallenge rows with 1-based
frames, and on stdout a JSON line with the seconds spent in ``update``.
"""

import json
import sys
import time
from argparse import Namespace
from pathlib import Path

import numpy as np
import yaml
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import ROOT


class Detections:
    """The results-like object BYTETracker.update reads: conf, cls, xywh (centre), boolean
    indexing and len()."""

    def __init__(self, boxes, scores, classes):
        self.xyxy, self.conf, self.cls = boxes, scores, classes
        self.xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1)

    def __len__(self):
        return len(self.conf)

    def __getitem__(self, index):
        return Detections(self.xyxy[index], self.conf[index], self.cls[index])


def main(detections_path: str, output_path: str) -> None:
    data = np.load(detections_path)
    settings = yaml.safe_load((ROOT / "cfg/trackers/bytetrack.yaml").read_text())  # its defaults
    tracker = BYTETracker(Namespace(**settings))
    lines, seconds = [], 0.0
    for frame, count in enumerate(data["counts"], start=1):
        detections = Detections(data["boxes"][frame - 1, :count].astype(np.float32),
                                data["scores"][frame - 1, :count].astype(np.float32),
                                data["classes"][frame - 1, :count].astype(np.float32))
        start = time.perf_counter()
        tracks = tracker.update(detections)
        seconds += time.perf_counter() - start
        for x1, y1, x2, y2, track_id, score, *_ in tracks:
            lines.append(f"{frame},{int(track_id)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1")
    Path(output_path).write_text("\n".join(lines) + "\n")
    print(json.dumps({"seconds": seconds, "frames": int(len(data["counts"])), "settings": settings}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
