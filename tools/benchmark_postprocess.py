"""Time tfseg's post-processing per image: graph part (PostProcess), host part, both.

Inputs are synthetic raw outputs at a 640 input (8400 anchors, 80 classes) arranged so that
exactly ``--detections`` anchors survive; the original image is 640 x 480 (letterboxed with
80 rows of padding). Prints median milliseconds over ``--runs`` runs after a warm-up.

    python tools/benchmark_postprocess.py --detections 100 --runs 20
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import tensorflow as tf

from tfseg.contracts import REG_MAX, num_anchors, proto_size
from tfseg.ops.letterbox import letterbox_info
from tfseg.postprocess import PostProcess
from tfseg.postprocess.host import encode_rle, to_original


def synthetic_raw_outputs(size: int, classes: int, detections: int, seed: int = 0) -> dict:
    """Raw outputs where ``detections`` well-separated stride-8 anchors score high.

    Each chosen anchor predicts a box of 2..6 bins per side (16..48 px), others score ~0.
    """
    rng = np.random.default_rng(seed)
    a, p = num_anchors(size), proto_size(size)
    cells = size // 8
    chosen = rng.choice(np.arange(cells * cells).reshape(cells, cells)[::4, ::4].reshape(-1),
                        detections, replace=False)  # 32 px apart: boxes overlap < 0.7
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


def median_ms(fn, runs: int) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--detections", type=int, default=100)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    raw = {k: tf.constant(v) for k, v in synthetic_raw_outputs(
        args.size, args.classes, args.detections).items()}
    post = tf.function(PostProcess(score_threshold=0.25, iou_threshold=0.7,
                                   max_detections=args.detections))
    info = letterbox_info(480, 640, args.size).numpy()[None]
    detections = {k: v.numpy() for k, v in post(raw).items()}
    kept = int(detections["num_detections"][0])

    def graph():
        return {k: v.numpy() for k, v in post(raw).items()}

    def both():
        return to_original(graph(), info)

    result = {
        "detections_kept": kept,
        "graph_ms": median_ms(graph, args.runs),
        "host_ms": median_ms(lambda: to_original(detections, info), args.runs),
        "total_ms": median_ms(both, args.runs),
        "rle_ms": median_ms(lambda: encode_rle(to_original(detections, info)[0]), args.runs),
    }
    result["rle_ms"] -= result["host_ms"]  # RLE alone (it needs the host output)
    print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()}))


if __name__ == "__main__":
    main()
