"""Latency of the exports, one model or several side by side, timed in one process.

    tfseg benchmark export --sizes 320 640 --runs 20 --modes float32 int8
    tfseg benchmark export --models yolo26-seg-n yolov8-seg-n yolo11-seg-n --work DIR
    python -m tfseg.benchmarks.export --models yolov8-seg-n --sizes 320,640 --runs 20 \\
        --modes float32,float16,dynamic_int8,int8 --out bench.json   (also prints a table)

Per input size, every model's files are written first: the TFLite raw network and the
end-to-end file (post-processing inside) in each mode, and one SavedModel with a raw and an
end-to-end signature. Then all of that size's files are timed together, interleaved (each
round calls each file once, the order rotating: tfseg.benchmarks.timing.time_interleaved),
so the rows of one run compare with each other even on a shared machine. Each row gives
the minimum (the figure that survives other load), median and p90 milliseconds; end-to-end
rows add ``e2e_over_raw``, their minimum over the raw file's of the same model, size and mode:
the price of the post-processing (NMS or top-k, and 100 masks).

End-to-end runs use score threshold 0, so every file returns its full N = 100 detections (the
worst case for the tail: 100 masks). Weights are a fresh network's (latency does not depend on
them); int8 calibrates on random images (enough for timing, not for accuracy). ``--work`` keeps
the files and reuses them on the next run, so a second timing run on a quiet machine need not
export again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np

from tfseg.benchmarks.timing import time_interleaved
from tfseg.optional import litert_interpreter

MODES = ("float32", "float16", "dynamic_int8", "int8")
WARMUP = 3


def _tflite_call(path: Path, signature: str, image: np.ndarray, threads: int):
    interpreter_class = litert_interpreter("timing a .tflite file")
    runner = interpreter_class(model_path=str(path),
                               num_threads=threads or None  # 0: LiteRT's choice
                               ).get_signature_runner(signature)
    # Run-time thresholds of the end-to-end file at -1: the export's own.
    feed = {name: np.full([1], -1, d["dtype"]) for name, d in runner.get_input_details().items()
            if name != "images"}
    return lambda: runner(images=image[None], **feed)


def _savedmodel_call(path: Path, signature: str, image: np.ndarray):
    import tensorflow as tf

    from tfseg.predict.backends import load_savedmodel

    fn = load_savedmodel(path).signatures[signature]
    batch = tf.constant(image[None])
    return lambda: {k: v.numpy() for k, v in fn(images=batch).items()}


def _export_model(model_name: str, size: int, modes: list[str], work: Path) -> list[dict]:
    """Write (or find, in ``work``) one model's files of one size.

    Returns:
        one entry per file: model, kind, size, mode and path, or error instead of path.
    """
    import tensorflow as tf

    from tfseg.export import signatures
    from tfseg.export.savedmodel import write_archive
    from tfseg.export.tflite import export_tflite
    from tfseg.model import build_model
    from tfseg.postprocess import PostProcess

    stem = f"{model_name}_{size}"
    rng = np.random.default_rng(0)
    network = None
    post = PostProcess(score_threshold=0.0, iou_threshold=0.7, max_detections=100)

    def calibration():
        return (rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(8))
    paths = {(mode, e2e): work / f"{stem}_{'' if e2e else 'raw_'}{mode}.tflite"
             for mode in modes for e2e in (False, True)}
    errors = {}
    if not all(path.is_file() for path in paths.values()):
        network = build_model(model_name, 80, size)
        try:  # all modes at once: one SavedModel per kind, converted into each mode
            export_tflite(network, post, size, work, stem, modes, calibration=calibration)
        except Exception:  # one file at a time, so one mode's failure hides no other
            for (mode, e2e), path in paths.items():
                try:
                    export_tflite(network, post, size, work, stem, [mode], raw=not e2e,
                                  end_to_end=e2e, calibration=calibration)
                except Exception as err:
                    errors[mode, e2e] = str(err)[:160]
    entries = []
    for (mode, e2e), path in paths.items():
        entry = {"model": model_name, "kind": "tflite e2e" if e2e else "tflite raw",
                 "size": size, "mode": mode}
        entries.append({**entry, "error": errors[mode, e2e]} if (mode, e2e) in errors
                       else {**entry, "path": path})
    saved = work / f"{stem}_savedmodel"
    if not (saved / "saved_model.pb").is_file():
        network = network or build_model(model_name, 80, size)
        spec = [tf.TensorSpec([1, size, size, 3], tf.uint8, name="images")]
        write_archive(network, post, {
            "raw": (lambda images: signatures.raw_outputs(network, images), spec),
            "pixels": (lambda images: signatures.pixels_detections(network, post, images), spec),
        }, saved)
    for kind in ("savedmodel raw", "savedmodel e2e"):
        entries.append({"model": model_name, "kind": kind, "size": size, "mode": "float32",
                        "path": saved})
    return entries


def _row(entry: dict, times: list[float], output: dict) -> dict:
    path = entry["path"]
    return {"model": entry["model"], "kind": entry["kind"], "size": entry["size"],
            "mode": entry["mode"], "min_ms": min(times), "median_ms": statistics.median(times),
            "p90_ms": float(np.percentile(times, 90)),
            "detections": (int(output["num_detections"][0]) if "num_detections" in output
                           else None),
            "mb": path.stat().st_size / 1e6 if path.suffix == ".tflite" else None}


def bench_size(models: list[str], size: int, modes: list[str], runs: int, threads: int,
               work: Path) -> list[dict]:
    """Every model's files of one size, timed interleaved; one row per file (or error)."""
    entries = [e for model in models for e in _export_model(model, size, modes, work)]
    image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    calls, outputs = {}, {}
    for i, entry in enumerate(entries):
        if "path" not in entry:
            continue
        signature = "pixels" if entry["kind"] == "savedmodel e2e" else (
            "raw" if entry["kind"].endswith("raw") else "detect")
        fn = (_tflite_call(entry["path"], signature, image, threads)
              if entry["kind"].startswith("tflite")
              else _savedmodel_call(entry["path"], signature, image))
        calls[i] = lambda fn=fn, i=i: outputs.__setitem__(i, fn())
    times = time_interleaved(calls, runs, warmup=WARMUP)
    rows = [_row(e, times[i], outputs[i]) if i in times else
            {k: v for k, v in e.items() if k != "path"} for i, e in enumerate(entries)]
    raw = {(r["model"], r["kind"].split()[0], r["mode"]): r["min_ms"] for r in rows
           if r["kind"].endswith("raw") and "min_ms" in r}
    for r in rows:
        base = raw.get((r["model"], r["kind"].split()[0], r["mode"]))
        if r["kind"].endswith("e2e") and base and "min_ms" in r:
            r["e2e_over_raw"] = r["min_ms"] / base
    return rows


def run(sizes: list[int], batch: int, runs: int, modes=MODES, models=("yolov8-seg-n",),
        threads: int = 2, work: str | Path | None = None) -> list[dict]:
    """``tfseg benchmark export``: rows for every size, model and mode (batch is always 1)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfseg-bench-") as scratch:
        folder = Path(work or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for size in sizes:
            rows += bench_size(list(models), int(size), list(modes), runs, threads, folder)
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'model':<14}{'export':<16}{'size':>5} {'mode':<13}{'min ms':>8}{'median':>8}"
             f"{'p90':>8}{'dets':>6}{'MB':>7}{'e2e/raw':>9}"]
    for r in rows:
        head = f"{r['model']:<14}{r['kind']:<16}{r['size']:>5} {r['mode']:<13}"
        if "error" in r:
            lines.append(f"{head}  n/a: {r['error']}")
            continue
        mb = f"{r['mb']:.1f}" if r["mb"] else "-"
        dets = r["detections"] if r["detections"] is not None else "-"
        ratio = f"{r['e2e_over_raw']:.2f}" if "e2e_over_raw" in r else "-"
        lines.append(f"{head}{r['min_ms']:>8.1f}{r['median_ms']:>8.1f}{r['p90_ms']:>8.1f}"
                     f"{dets:>6}{mb:>7}{ratio:>9}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="yolov8-seg-n")
    parser.add_argument("--sizes", default="320,640")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", help="keep the files here and reuse them")
    parser.add_argument("--out", help="write the rows as JSON here")
    args = parser.parse_args()
    rows = run([int(s) for s in args.sizes.split(",")], 1, args.runs, args.modes.split(","),
               args.models.split(","), args.threads, args.work)
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
