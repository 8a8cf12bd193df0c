"""What ``max_mask_anchors`` costs and what it drops: positives per image, the mask term with
the cap against without it, and the memory of the mask term's forward and backward pass.

    python tools/measure_mask_anchor_cap.py --size 640 --instances 90 --batch 2 --caps 256,0

Prints, one JSON line each:
- the positives per image of the loss-parity fixtures (tests/fixtures/loss, 128 px);
- for a synthetic batch at COCO's highest density (``--instances`` per image: boxes of
  log-uniform sides from 4 to 60% of the image, elliptic masks, 80 classes, seeded random
  raw outputs): the positives per image, then per cap (0: all) the seg term, how many
  positives it covers, the cosine between its coefficient and prototype gradients and the
  uncapped ones, and the fraction of the positives it leaves out;
- per cap, in a fresh process each: the peak resident memory of the loss's forward pass and
  the seg term's backward pass over the process's peak before it (after one pass with a cap
  of 16), in MB, and its seconds (fastest of ``--repeats``, 2 threads).

The positives do not depend much on the outputs being random: each GT keeps its ``topk``
best candidates of the anchors inside it, whatever their scores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "loss"
NUM_CLASSES = 80


def fixture_positives() -> dict:
    """Positives per image of each fixture's heads (the reference's own assignment)."""
    out = {}
    for path in sorted(FIXTURES.glob("*.npz")):
        with np.load(path) as data:
            for key in ("conv_fg", "conv_o2o_fg"):
                if key in data.files:
                    out[f"{path.stem} {key[5:]}"] = data[key].sum(axis=1).tolist()
    return out


def synthetic_batch(size: int, instances: int, batch: int, seed: int = 0):
    """(targets, raw outputs) at COCO density, as tf tensors."""
    import tensorflow as tf

    from tfseg.contracts import num_anchors, proto_size

    rng = np.random.default_rng(seed)
    proto, anchors = proto_size(size), num_anchors(size)
    centres = (np.arange(proto) + 0.5) * 4
    boxes = np.zeros((batch, instances, 4), np.float32)
    masks = np.zeros((batch, instances, proto, proto), np.uint8)
    for b in range(batch):
        sides = size * np.exp(rng.uniform(np.log(0.04), np.log(0.6), (instances, 2)))
        mids = rng.uniform(sides / 2, size - sides / 2)
        boxes[b] = np.concatenate([mids - sides / 2, mids + sides / 2], axis=1)
        for i, (cx, cy, (w, h)) in enumerate(zip(mids[:, 0], mids[:, 1], sides)):
            masks[b, i] = ((((centres[None] - cx) / (w / 2)) ** 2
                            + ((centres[:, None] - cy) / (h / 2)) ** 2) <= 1.0)
    targets = {"boxes": tf.constant(boxes),
               "classes": tf.constant(rng.integers(0, NUM_CLASSES, (batch, instances)), tf.int32),
               "masks": tf.constant(masks)}
    raw = {"box_logits": rng.normal(0.0, 1.5, (batch, anchors, 64)),
           "class_logits": rng.normal(-3.0, 1.5, (batch, anchors, NUM_CLASSES)),
           "mask_coefficients": rng.normal(0.0, 0.4, (batch, anchors, 32)),
           "prototypes": rng.normal(0.0, 1.0, (batch, proto, proto, 32))}
    return targets, {k: tf.constant(v.astype(np.float32)) for k, v in raw.items()}


def mask_term(size: int, targets: dict, raw: dict, cap: int):
    """The seg term, its gradients, and the positives covered, with ``max_mask_anchors`` cap
    (run-time shapes, the CPU default)."""
    import tensorflow as tf

    from tfseg.loss import YoloSegLoss

    loss = YoloSegLoss(image_size=size, num_classes=NUM_CLASSES, max_mask_anchors=cap,
                       static_shapes=False)
    inputs = [raw["mask_coefficients"], raw["prototypes"]]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        _, terms = loss(targets, raw)
    return terms["seg"], tape.gradient(terms["seg"], inputs)


def compare(args) -> None:
    """Positives per image, and each cap's seg term and gradients against the uncapped."""
    from tfseg.loss import YoloSegLoss

    targets, raw = synthetic_batch(args.size, args.instances, args.batch)
    probe = YoloSegLoss(image_size=args.size, num_classes=NUM_CLASSES)
    foreground = _foreground(probe, targets, raw)
    positives = foreground.sum(axis=1)
    print(json.dumps({"size": args.size, "instances": args.instances,
                      "positives_per_image": positives.tolist()}), flush=True)
    results = {}
    for cap in [0] + [c for c in args.caps if c]:
        value, (d_coef, d_proto) = mask_term(args.size, targets, raw, cap)
        results[cap] = (float(value), d_coef.numpy(), d_proto.numpy())
    _, all_coef, all_proto = results[0]
    for cap, (value, d_coef, d_proto) in results.items():
        touched = np.abs(d_coef).sum(axis=-1) > 0  # [B, A]
        print(json.dumps({
            "cap": cap, "seg": round(value, 5),
            "seg_vs_all": round(value / results[0][0], 4),
            "positives_covered": touched.sum(axis=1).tolist(),
            "cos_coefficients": round(_cosine(d_coef, all_coef), 4),
            "cos_prototypes": round(_cosine(d_proto, all_proto), 4),
            "positives_left_out": round(1.0 - touched.sum() / positives.sum(), 4)}), flush=True)


def _foreground(loss, targets, raw) -> np.ndarray:
    """[B, A] positives of the loss's assignment."""
    import tensorflow as tf

    from tfseg.loss import assign
    from tfseg.ops.anchors import anchor_points
    from tfseg.ops.boxes import distances_to_boxes
    from tfseg.ops.dfl import dfl_expectation

    points, strides = anchor_points(loss.image_size)
    boxes = distances_to_boxes(points, dfl_expectation(raw["box_logits"], 16) * strides)
    out = assign(tf.sigmoid(raw["class_logits"]), boxes, points, targets["boxes"],
                 targets["classes"], loss.topk, loss.alpha, loss.beta)
    return out.foreground.numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


def child(args) -> None:
    """One cap's forward and backward in this (fresh) process: memory and time."""
    import tensorflow as tf

    from tfseg.benchmarks.timing import peak_rss_mb

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    targets, raw = synthetic_batch(args.size, args.instances, args.batch)
    # Everything but the mask term's own work, first: the assignment and the other terms.
    mask_term(args.size, targets, raw, 16)
    before = peak_rss_mb()
    seconds = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        _, grads = mask_term(args.size, targets, raw, args.child)
        [g.numpy() for g in grads]
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"cap": args.child, "peak_over_before_mb": round(peak_rss_mb() - before, 1),
                      "seconds": round(min(seconds), 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=640)
    parser.add_argument("--instances", type=int, default=90)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--caps", default="256,0", help="comma-separated; 0: all positives")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.caps = [int(c) for c in args.caps.split(",")]
    if args.child is not None:
        child(args)
        return
    print(json.dumps({"fixtures_positives_per_image": fixture_positives()}), flush=True)
    compare(args)
    for cap in args.caps:
        subprocess.run([sys.executable, __file__, "--size", str(args.size), "--instances",
                        str(args.instances), "--batch", str(args.batch), "--repeats",
                        str(args.repeats), "--child", str(cap)], check=True)


if __name__ == "__main__":
    main()
