"""Post-processing time per image: graph part (PostProcess), host part, both.

Inputs are synthetic raw outputs (80 classes) arranged so that exactly ``detections``
anchors survive; the original image is 4:3 (letterboxed with padding rows).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfseg.benchmarks.timing import median_ms
from tfseg.contracts import REG_MAX, num_anchors, proto_size
from tfseg.ops.letterbox import letterbox_info
from tfseg.postprocess import PostProcess
from tfseg.postprocess.host import encode_rle, to_original


def synthetic_raw_outputs(size: int, classes: int, detections: int, seed: int = 0) -> dict:
    """Raw outputs where ``detections`` well-separated stride-8 anchors score high; each
    predicts a box of 1..2 bins per side, the other anchors score ~0."""
    rng = np.random.default_rng(seed)
    a, p = num_anchors(size), proto_size(size)
    cells = size // 8
    grid = np.arange(cells * cells).reshape(cells, cells)[::4, ::4].reshape(-1)  # 32 px apart
    chosen = rng.choice(grid, detections, replace=False)
    box = rng.normal(0, 1, (1, a, 4, REG_MAX)).astype(np.float32)
    box[0, chosen] = -20.0
    bins = rng.integers(1, 3, (detections, 4))
    for row, anchor in enumerate(chosen):
        box[0, anchor, np.arange(4), bins[row]] = 20.0
    cls = np.full((1, a, classes), -12.0, np.float32)
    cls[0, chosen, rng.integers(0, classes, detections)] = rng.uniform(1.0, 5.0, detections)
    return {"box_logits": box.reshape(1, a, 4 * REG_MAX), "class_logits": cls,
            "mask_coefficients": rng.normal(0, 1, (1, a, 32)).astype(np.float32),
            "prototypes": rng.normal(0, 1, (1, p, p, 32)).astype(np.float32)}


def postprocess_times(size: int, detections: int, runs: int, classes: int = 80) -> dict:
    raw = {k: tf.constant(v) for k, v in synthetic_raw_outputs(size, classes, detections).items()}
    post = tf.function(PostProcess(score_threshold=0.25, iou_threshold=0.7,
                                   max_detections=detections))
    info = letterbox_info(size * 3 // 4, size, size).numpy()[None]

    def graph():
        return {k: v.numpy() for k, v in post(raw).items()}

    kept = graph()
    host_ms = median_ms(lambda: to_original(kept, info), runs)
    return {"target": "postprocess", "image_size": size, "detections": int(kept["num_detections"][0]),
            "graph_ms": round(median_ms(graph, runs), 2), "host_ms": round(host_ms, 2),
            "total_ms": round(median_ms(lambda: to_original(graph(), info), runs), 2),
            "rle_ms": round(median_ms(lambda: encode_rle(to_original(kept, info)[0]), runs)
                            - host_ms, 2)}


def run(sizes: list[int], batch: int, runs: int) -> list[dict]:
    return [postprocess_times(size, detections=100, runs=runs) for size in sizes]
