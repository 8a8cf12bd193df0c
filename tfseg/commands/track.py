"""``tfseg track source=<video|folder|glob|camera> weights=<run, weights or export>
tracker=bytetrack.yaml``: predict's detections, followed through the frames by ByteTrack.

The same keys as ``tfseg predict`` (its section), plus ``tracker``; results go to
runs/track/<name>: ``<sequence>.txt`` (MOTChallenge), ``tracks.json`` and the overlays.
"""

from __future__ import annotations

from pathlib import Path


def run(args) -> int:
    from tfseg.commands import predict

    return predict.run(args, verb="track", tracker="bytetrack.yaml")


def track_into(run_dir: Path, cfg, loaded, settings) -> int:
    """Track ``cfg.predict.source`` with the resolved model into ``run_dir``."""
    from tfseg.track.loop import track

    options = cfg.predict
    summary = track(loaded.model, options.source, run_dir, loaded.info.class_names, settings,
                    iou=options.iou, max_det=options.max_det, agnostic=options.agnostic,
                    end2end=options.end2end, save_overlays=options.save_overlays)
    print(f"results: {run_dir}")
    return 0 if summary["frames"] else 1
