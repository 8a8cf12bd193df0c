"""Tracking yardstick: our ByteTrack against the reference's on the SAME detections.

    nice -n 19 python tools/track_yardstick.py --weights /work/models/runs/train/shapes256

1. writes the generated clip (tfseg.data.video; 300 frames at 640 x 480, 10 objects by
   default) with its ground truth;
2. runs the model once per frame (down to the tracker's low threshold, 0.1) and saves the
   detections (.npz, reused on the next run);
3. tracks them with tfseg's ByteTracker and, in the reference's venv, with Ultralytics'
   BYTETracker and its default bytetrack.yaml (tools/track_reference_bytetrack.py);
4. scores both against the ground truth with motmetrics (IDF1, MOTA, ID switches);
5. times the trackers alone on synthetic frames of 100 moving objects.

Needs the track-eval extra (motmetrics) here and an Ultralytics install at
``--reference-python`` (YOLO_OFFLINE=1 is set for it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from tfseg.data.video import write_clip
from tfseg.track.bytetrack import ByteTracker
from tfseg.track.metrics import mot_scores
from tfseg.track.settings import TrackerSettings
from tfseg.track.writers import mot_lines, read_mot

REFERENCE_SCRIPT = Path(__file__).with_name("track_reference_bytetrack.py")


def detect_clip(weights: str, video: str, output: Path, low: float) -> Path:
    """Detections of every frame, padded: boxes [F, N, 4], scores/classes [F, N], counts [F]."""
    if output.is_file():
        return output
    from tfseg.predict.backends import KerasBackend
    from tfseg.predict.loop import detect_image
    from tfseg.predict.sources import iter_frames
    from tfseg.resolve import resolve_model

    loaded = resolve_model(weights)
    backend = loaded.model if hasattr(loaded.model, "detect") else KerasBackend(loaded.model, conf=low)
    frames = [detect_image(backend, frame.image, low) for frame in iter_frames(video)]
    return save_detections(output, [(d.boxes, d.scores, d.classes) for d in frames])


def save_detections(path: Path, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Path:
    most = max(1, max(len(s) for _, s, _ in frames))
    boxes = np.zeros((len(frames), most, 4), np.float32)
    scores, classes = np.zeros((len(frames), most), np.float32), np.zeros((len(frames), most), np.int32)
    for i, (b, s, c) in enumerate(frames):
        boxes[i, :len(s)], scores[i, :len(s)], classes[i, :len(s)] = b, s, c
    np.savez(path, boxes=boxes, scores=scores, classes=classes,
             counts=np.array([len(s) for _, s, _ in frames], np.int32))
    return path


def track_ours(detections: Path) -> tuple[np.ndarray, float]:
    """MOT rows from tfseg's ByteTracker (shipped defaults) and the seconds in ``update``."""
    data = np.load(detections)
    tracker, lines, seconds = ByteTracker(TrackerSettings()), [], 0.0
    for frame, count in enumerate(data["counts"], start=1):
        boxes, scores = data["boxes"][frame - 1, :count], data["scores"][frame - 1, :count]
        start = time.perf_counter()
        tracked = tracker.update(boxes, scores, data["classes"][frame - 1, :count])
        seconds += time.perf_counter() - start
        lines += mot_lines(frame, tracked)
    rows = np.array([[float(v) for v in line.split(",")] for line in lines]).reshape(-1, 10)
    return rows, seconds


def track_reference(python: str, detections: Path, output: Path) -> tuple[np.ndarray, float]:
    done = subprocess.run([python, str(REFERENCE_SCRIPT), str(detections), str(output)],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, "YOLO_OFFLINE": "1"})
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return read_mot(output), report["seconds"]


def crowd_detections(frames: int, objects: int, seed: int = 0):
    """Synthetic detections of ``objects`` boxes moving at constant velocity on a
    1920 x 1080 frame with 2 px jitter, scores spread over both association passes."""
    rng = np.random.default_rng(seed)
    size = rng.uniform(20, 60, (objects, 2))
    position = rng.uniform([0, 0], [1920, 1080], (objects, 2))
    velocity = rng.normal(0, 3, (objects, 2))
    base_score = rng.uniform(0.2, 0.95, objects)
    result = []
    for t in range(frames):
        centre = position + t * velocity + rng.normal(0, 2, (objects, 2))
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
        scores = np.clip(base_score + rng.normal(0, 0.05, objects), 0.0, 1.0)
        result.append((boxes.astype(np.float32), scores.astype(np.float32), np.zeros(objects, np.int32)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", default="/work/models/runs/train/shapes256")
    parser.add_argument("--work", default="track_yardstick", help="clip, detections and outputs")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-python", default="/work/ultra-venv/bin/python")
    parser.add_argument("--speed-objects", type=int, default=100)
    parser.add_argument("--speed-frames", type=int, default=500)
    args = parser.parse_args()

    work = Path(args.work)
    clip = work / "clip"
    if not (clip / "gt" / "gt.txt").is_file():
        write_clip(clip, args.frames, args.width, args.height, args.objects, args.seed)
    gt = read_mot(clip / "gt" / "gt.txt")
    detections = detect_clip(args.weights, str(clip / "clip.mp4"), work / "detections.npz",
                             TrackerSettings().track_low_thresh)
    counts = np.load(detections)["counts"]
    print(f"clip: {args.frames} frames {args.width}x{args.height}, {args.objects} objects, "
          f"{len(gt)} ground-truth boxes; detections (score >= 0.1): {int(counts.sum())}")

    ours, _ = track_ours(detections)
    reference, _ = track_reference(args.reference_python, detections, work / "reference.txt")
    print(f"{'tracker':<25}{'IDF1':>8}{'MOTA':>8}{'IDsw':>6}{'FP':>6}{'FN':>6}{'ids':>6}")
    for name, rows in (("tfseg ByteTracker", ours), ("Ultralytics BYTETracker", reference)):
        s = mot_scores(gt, rows)
        print(f"{name:<25}{s['idf1']:>8.4f}{s['mota']:>8.4f}{s['id_switches']:>6}"
              f"{s['false_positives']:>6}{s['misses']:>6}{len(set(rows[:, 1].astype(int))):>6}")

    crowd = save_detections(work / "crowd.npz", crowd_detections(args.speed_frames, args.speed_objects))
    _, ours_seconds = track_ours(crowd)
    _, reference_seconds = track_reference(args.reference_python, crowd, work / "crowd_reference.txt")
    print(f"tracker alone, {args.speed_objects} objects x {args.speed_frames} frames: "
          f"tfseg {args.speed_frames / ours_seconds:.0f} frames/s, "
          f"Ultralytics {args.speed_frames / reference_seconds:.0f} frames/s")


if __name__ == "__main__":
    main()
