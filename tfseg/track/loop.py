"""track(): frames -> detections (predict's path) -> ByteTrack -> files and a summary.

Writes into ``output_dir``: ``<sequence>.txt`` (MOTChallenge rows), ``tracks.json`` (per
frame: id, box, score, class and RLE mask of each tracked object), and overlays (an .mp4
per video or camera, a .jpg per frame under ``<sequence>/`` for images).

A video file or a camera is one sequence with a tracker of its own; a folder, glob or list of
images is one sequence named after the folder (or ``frames``), in file-name order.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tfseg.predict.backends import KerasBackend
from tfseg.predict.loop import detect_image
from tfseg.predict.sources import Frame, iter_frames
from tfseg.runs import write_atomic
from tfseg.track.bytetrack import ByteTracker
from tfseg.track.settings import TrackerSettings
from tfseg.track.writers import SequenceWriter, frame_record


def sequence_name(source, frame: Frame) -> str:
    """The name of the sequence a frame belongs to (its video's stem, the folder's name)."""
    if frame.is_video:
        return Path(frame.source).stem.replace(":", "")  # camera:0 -> camera0
    path = Path(str(source))
    return path.name if path.is_dir() else "frames"


def track(model_or_backend, source, output_dir: str | Path, class_names: list[str],
          settings: TrackerSettings = TrackerSettings(), iou: float = 0.7, max_det: int = 300,
          agnostic: bool = False, end2end: bool = True, save_overlays: bool = True,
          verbose: bool = True) -> dict:
    """Segment and track every frame of ``source``; write the MOT text, tracks.json, overlays.

    Args:
        model_or_backend: a Keras model or a backend (tfseg.predict.backends).
        source: video file, camera index, folder, glob or list of images (tfseg.predict.sources).
        output_dir: where files go (created).
        class_names: name per class index.
        settings: the tracker's; detections are kept down to ``track_low_thresh``.
        iou, max_det, agnostic, end2end: NMS settings of the Keras backend.
        save_overlays: write the overlay video / images.
        verbose: progress lines on long inputs and a summary at the end.

    Returns:
        Summary dict: frames, sequences, tracks (distinct ids over all sequences),
        tracked (objects summed over frames), detections, seconds, fps, output_dir, files.
    """
    backend = model_or_backend if hasattr(model_or_backend, "detect") else KerasBackend(
        model_or_backend, settings.track_low_thresh, iou, max_det, agnostic, end2end)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    writers: dict[str, SequenceWriter] = {}
    trackers: dict[str, ByteTracker] = {}
    records, ids, frames, tracked_count, detection_count = [], set(), 0, 0, 0
    start = last_report = time.perf_counter()

    def on_skip(path: str, reason: str) -> None:
        print(f"track: skipped {path}: {reason}", file=sys.stderr)

    try:
        for frame in iter_frames(source, on_skip=on_skip):
            name = sequence_name(source, frame)
            if name not in trackers:
                trackers[name] = ByteTracker(settings, frame.fps or 30.0)
                writers[name] = SequenceWriter(output_dir, name, frame.fps, save_overlays)
            detections = detect_image(backend, frame.image, settings.track_low_thresh)
            tracker = trackers[name]
            tracked = tracker.update(detections.boxes, detections.scores, detections.classes)
            writers[name].write(tracker.frame, frame.name, frame.image, detections, tracked, class_names)
            records.append(frame_record(name, tracker.frame, detections, tracked, class_names))
            ids.update((name, obj.track_id) for obj in tracked)
            frames, tracked_count = frames + 1, tracked_count + len(tracked)
            detection_count += len(detections)
            if verbose and time.perf_counter() - last_report > 5.0:
                last_report = time.perf_counter()
                print(f"track: {frames} frames, {len(ids)} tracks, "
                      f"{frames / (last_report - start):.1f} frames/s", flush=True)
    finally:
        for writer in writers.values():
            writer.close()
    files = [f for writer in writers.values() for f in writer.files]
    files.append(str(write_atomic(output_dir / "tracks.json", json.dumps(records))))
    seconds = time.perf_counter() - start
    summary = {"frames": frames, "sequences": len(writers), "tracks": len(ids),
               "tracked": tracked_count, "detections": detection_count, "seconds": seconds,
               "fps": frames / seconds if seconds else 0.0, "output_dir": str(output_dir),
               "files": files}
    if verbose:
        print(f"track: {frames} frames in {len(writers)} sequence(s), {len(ids)} tracks, "
              f"{tracked_count} tracked objects of {detection_count} detections, "
              f"{summary['fps']:.1f} frames/s -> {output_dir}")
    return summary
