"""CLEAR-MOT and identity scores of tracks against ground truth (motmetrics, extra track-eval).

Both sides are MOTChallenge rows (``frame, id, x, y, w, h, ...``, see tfseg.track.writers);
a hypothesis box matches a ground-truth box of the same frame when their IoU is at least
``iou_threshold`` (0.5, as MOTChallenge scores).
"""

from __future__ import annotations

import numpy as np

from tfseg.optional import require
from tfseg.track.association import box_iou


def mot_scores(ground_truth: np.ndarray, hypotheses: np.ndarray,
               iou_threshold: float = 0.5) -> dict:
    """IDF1, MOTA, ID switches and friends of one sequence.

    Args:
        ground_truth, hypotheses: ``[rows, >= 6]`` MOTChallenge rows.
        iou_threshold: the least IoU of a match.

    Returns:
        ``{"idf1", "mota", "id_switches", "num_objects", "num_predictions", "false_positives",
        "misses", "mostly_tracked"}`` as floats / ints.
    """
    mm = require("motmetrics", "track-eval", "scoring tracks (IDF1, MOTA)")
    accumulator = mm.MOTAccumulator(auto_id=False)
    frames = np.union1d(ground_truth[:, 0], hypotheses[:, 0]).astype(int)
    for frame in frames:
        gt = ground_truth[ground_truth[:, 0] == frame]
        hyp = hypotheses[hypotheses[:, 0] == frame]
        # motmetrics takes 1 - IoU, NaN where a pair may not match (its own iou_matrix
        # calls np.asfarray, gone from numpy 2)
        overlap = box_iou(_xyxy(gt), _xyxy(hyp))
        distances = np.where(overlap >= iou_threshold, 1.0 - overlap, np.nan)
        accumulator.update(gt[:, 1].astype(int).tolist(), hyp[:, 1].astype(int).tolist(),
                           distances, frameid=int(frame))
    names = ["idf1", "mota", "num_switches", "num_objects", "num_predictions",
             "num_false_positives", "num_misses", "mostly_tracked"]
    row = mm.metrics.create().compute(accumulator, metrics=names, name="sequence").iloc[0]
    return {"idf1": float(row["idf1"]), "mota": float(row["mota"]),
            "id_switches": int(row["num_switches"]), "num_objects": int(row["num_objects"]),
            "num_predictions": int(row["num_predictions"]),
            "false_positives": int(row["num_false_positives"]), "misses": int(row["num_misses"]),
            "mostly_tracked": int(row["mostly_tracked"])}


def _xyxy(rows: np.ndarray) -> np.ndarray:
    """MOTChallenge rows -> ``[n, 4]`` xyxy boxes."""
    return np.concatenate([rows[:, 2:4], rows[:, 2:4] + rows[:, 4:6]], axis=1)
