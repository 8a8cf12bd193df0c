"""Latency of the exports: TFLite (2 threads) raw and end-to-end in every mode, and SavedModel.

    tfseg benchmark export --sizes 320 640 --runs 20 --modes float32 int8
    python -m tfseg.benchmarks.export --model yolov8-seg-n --sizes 320,640 --runs 20 \\
        --modes float32,float16,dynamic_int8,int8 --out bench.json   (also prints a table)

End-to-end runs use score threshold 0, so NMS keeps the full N = 100 detections (the worst
case for the tail: 100 masks). Weights are a fresh network's (latency does not depend on
them); int8 calibrates on random images (enough for timing, not for accuracy). Prints a
table: file, size, mode, median and p90 milliseconds, detections, file MB.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from tfseg.benchmarks.timing import times_ms

MODES = ("float32", "float16", "dynamic_int8", "int8")


def _row(kind: str, size: int, mode: str, times: list[float], detections, megabytes) -> dict:
    return {"kind": kind, "size": size, "mode": mode, "median_ms": statistics.median(times),
            "p90_ms": float(np.percentile(times, 90)), "detections": detections,
            "mb": megabytes}


def bench_tflite(path: Path, signature: str, image: np.ndarray, runs: int, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path), num_threads=threads or None  # 0: LiteRT's choice
                         ).get_signature_runner(signature)
    # Run-time thresholds of the end-to-end file at -1: the export's own.
    feed = {name: np.full([1], -1, d["dtype"]) for name, d in runner.get_input_details().items()
            if name != "images"}
    out = {}

    def once():
        out.update(runner(images=image[None], **feed))
    times = times_ms(once, runs, warmup=3)
    detections = int(out["num_detections"][0]) if "num_detections" in out else None
    return times, detections


def bench_savedmodel(path: Path, signature: str, image: np.ndarray, runs: int):
    import tensorflow as tf

    fn = tf.saved_model.load(str(path)).signatures[signature]
    batch = tf.constant(image[None])
    out = {}

    def once():
        out.update({k: v.numpy() for k, v in fn(images=batch).items()})
    times = times_ms(once, runs, warmup=3)
    return times, int(out["num_detections"][0]) if "num_detections" in out else None


def bench_size(model_name: str, size: int, modes: list[str], runs: int, threads: int,
               work: Path) -> list[dict]:
    import tensorflow as tf

    from tfseg.export.savedmodel import write_archive
    from tfseg.export import signatures
    from tfseg.export.tflite import export_tflite
    from tfseg.model import build_model
    from tfseg.postprocess import PostProcess

    rng = np.random.default_rng(0)
    network = build_model(model_name, 80, size)
    post = PostProcess(score_threshold=0.0, iou_threshold=0.7, max_detections=100)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    def calibration():
        return (rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(8))
    rows = []
    for mode in modes:
        for end_to_end in (False, True):
            kind = "tflite e2e" if end_to_end else "tflite raw"
            try:
                files = export_tflite(network, post, size, work, f"{model_name}_{size}", [mode],
                                      raw=not end_to_end, end_to_end=end_to_end,
                                      calibration=calibration)
            except Exception as err:  # report and go on: one mode must not hide the others
                rows.append({"kind": kind, "size": size, "mode": mode, "error": str(err)[:160]})
                continue
            path = next(iter(files.values()))
            times, detections = bench_tflite(path, "detect" if end_to_end else "raw", image,
                                             runs, threads)
            rows.append(_row(kind, size, mode, times, detections, path.stat().st_size / 1e6))
    saved = work / f"sm_{size}"
    endpoints = {
        "raw": (lambda images: signatures.raw_outputs(network, images),
                [tf.TensorSpec([1, size, size, 3], tf.uint8, name="images")]),
        "pixels": (lambda images: signatures.pixels_detections(network, post, images),
                   [tf.TensorSpec([1, size, size, 3], tf.uint8, name="images")])}
    write_archive(network, post, endpoints, saved)
    for signature, kind in (("raw", "savedmodel raw"), ("pixels", "savedmodel e2e")):
        times, detections = bench_savedmodel(saved, signature, image, runs)
        rows.append(_row(kind, size, "float32", times, detections, None))
    return rows


def run(sizes: list[int], batch: int, runs: int, modes=MODES, model: str = "yolov8-seg-n",
        threads: int = 2) -> list[dict]:
    """``tfseg benchmark export``: rows for every size and mode (batch is always 1 here)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfseg-bench-") as work:
        for size in sizes:
            rows += bench_size(model, int(size), list(modes), runs, threads, Path(work))
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'export':<16}{'size':>6} {'mode':<14}{'median ms':>10}{'p90 ms':>9}"
             f"{'dets':>6}{'MB':>7}"]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['kind']:<16}{r['size']:>6} {r['mode']:<14}  n/a: {r['error']}")
            continue
        mb = f"{r['mb']:.1f}" if r["mb"] else "-"
        dets = r["detections"] if r["detections"] is not None else "-"
        lines.append(f"{r['kind']:<16}{r['size']:>6} {r['mode']:<14}{r['median_ms']:>10.1f}"
                     f"{r['p90_ms']:>9.1f}{dets:>6}{mb:>7}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolov8-seg-n")
    parser.add_argument("--sizes", default="320,640")
    parser.add_argument("--modes", default="float32,float16,dynamic_int8,int8")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], 1, args.runs, args.modes.split(","),
               args.model, args.threads)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
