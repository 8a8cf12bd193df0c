"""Export latency beside the reference's, timed in one process, with the machine's floor.

    python tools/compare_export_latency.py --reference-python /path/to/venv/bin/python \\
        [--model yolov8-seg-n] [--sizes 320 640] [--threads 2] [--rounds 20] [--work DIR] \\
        [--out latency.json]

Per input size S:
1. The reference's files, made in its own environment (``--reference-python``: a venv with
   ultralytics, torch, onnx, litert-torch and ai-edge-quantizer) with YOLO_OFFLINE=1: the same
   architecture built from its YAML name (fresh weights, 80 classes), exported to its LiteRT
   .tflite (float32, and int8 calibrated on a folder of random images written here) and to
   ONNX. Nothing is downloaded; a file its exporter cannot make is reported with the reason.
2. Ours, from a fresh network of the same architecture (80 classes): raw float32, end-to-end
   float32 (score threshold 0, so N = 100 detections and 100 masks), raw int8 and end-to-end
   int8 (int8 calibrated on random images: enough for timing, not for accuracy).
3. Every file timed here, batch 1, ``--threads`` threads, interleaved (each round calls each
   file once, the order rotating), outputs read back: ours and the reference's .tflite in
   LiteRT (ai-edge-litert), its .onnx in ONNX Runtime (``pip install -e .[bench]``). The
   minimum over rounds is the figure reported: on a shared machine it is the one that
   survives; medians are in the JSON.
4. The floor: each file's multiply-adds (tfseg.benchmarks.floor) over this machine's
   measured fp32 or int8 peak on the same thread count.

Prints a table with our time over the reference's for the same precision. The reference's
files hold the network and its box decoding, no NMS and no masks: the end-to-end rows are
compared with its raw file of the same precision, the price of NMS and masks included.
``reference`` is the subcommand step 1 runs in the reference's environment.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_ultralytics import REFERENCE_NAMES  # noqa: E402  (same folder, stdlib only)

CALIBRATION_IMAGES = 8


def make_reference(model_name: str, size: int, out: Path) -> dict:
    """In the reference's venv: its LiteRT float32 and int8 and ONNX files, or why not."""
    import cv2
    import numpy as np
    from ultralytics import YOLO

    out.mkdir(parents=True, exist_ok=True)
    calib = out / "calibration"
    for split in ("images", "labels"):
        (calib / split / "val").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(CALIBRATION_IMAGES):  # random pixels, one polygon each: a valid YOLO set
        cv2.imwrite(str(calib / "images/val" / f"{i}.jpg"),
                    rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
        (calib / "labels/val" / f"{i}.txt").write_text("0 0.5 0.2 0.8 0.7 0.2 0.7\n")
    (calib / "data.yaml").write_text(f"path: {calib}\ntrain: images/val\nval: images/val\n"
                                     "names:\n  0: thing\n")
    yaml = f"{REFERENCE_NAMES[model_name]}.yaml"
    jobs = {"litert_float32": dict(format="litert"),
            "litert_int8": dict(format="litert", quantize=8, data=str(calib / "data.yaml")),
            "onnx_float32": dict(format="onnx", simplify=False)}
    files, errors = {}, {}
    for name, options in jobs.items():
        os.chdir(out)
        try:
            files[name] = str(Path(YOLO(yaml).export(imgsz=size, **options)).resolve())
        except Exception as error:  # report and go on: one format must not hide the others
            errors[name] = f"{type(error).__name__}: {str(error)[:300]}"
    return {"files": files, "errors": errors}


def _reference_files(python: str, model_name: str, size: int, work: Path) -> dict:
    out = work / f"reference_{model_name}_{size}"
    cached = out / "files.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    done = subprocess.run([python, __file__, "reference", "--model", model_name, "--size",
                           str(size), "--out", str(out)], capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        return {"files": {}, "errors": {"reference": done.stderr[-600:]}}
    cached.write_text(lines[-1])
    return json.loads(lines[-1])


def _our_files(model_name: str, size: int, work: Path) -> dict:
    """Our raw and end-to-end .tflite files, float32 and int8, of a fresh network."""
    import numpy as np

    from tfseg.export.tflite import export_tflite
    from tfseg.model import build_model
    from tfseg.postprocess import PostProcess

    stem = f"{model_name}_{size}"
    expected = {f"{k}{m}": work / f"{stem}_{k}{m}.tflite" for k in ("", "raw_")
                for m in ("float32", "int8")}
    if not all(p.is_file() for p in expected.values()):
        rng = np.random.default_rng(0)

        def calibration():
            return (rng.integers(0, 256, (size, size, 3), np.uint8) for _ in range(8))
        export_tflite(build_model(model_name, 80, size),
                      PostProcess(score_threshold=0.0, iou_threshold=0.7, max_detections=100),
                      size, work, stem, ["float32", "int8"], calibration=calibration)
    return {f"ours {'raw' if k.startswith('raw_') else 'e2e'} {k.removeprefix('raw_')}": p
            for k, p in expected.items()}


def _tflite_call(path: Path, threads: int):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        if np.issubdtype(detail["dtype"], np.integer):
            data = rng.integers(0, 256, detail["shape"]).astype(detail["dtype"])
        else:
            data = rng.uniform(0, 1, detail["shape"]).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], data)
    outputs = [d["index"] for d in interpreter.get_output_details()]

    def call():
        interpreter.invoke()
        return [interpreter.get_tensor(i) for i in outputs]
    return call


def _onnxruntime():
    """ONNX Runtime (tfseg[bench]), which times the reference's .onnx file beside ours."""
    from tfseg.optional import require

    return require("onnxruntime", extra="bench", purpose="timing the reference's .onnx file")


def _onnx_call(path: Path, threads: int):
    import numpy as np

    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {i.name: np.random.default_rng(0).uniform(0, 1, i.shape).astype(np.float32)
            for i in session.get_inputs()}
    return lambda: session.run(None, feed)


def measure_size(args, size: int, work: Path) -> dict:
    """Files, timings, peaks and floors of one input size.

    The peak kernels (tfseg.benchmarks.floor) run in the same interleaved rounds as the
    files, so the floor is measured under the same load as the times it is compared with.
    """
    from tfseg.benchmarks.floor import floor_ms, peak_kernels, peaks, tflite_macs
    from tfseg.benchmarks.timing import time_interleaved

    reference = _reference_files(args.reference_python, args.model, size, work)
    files = _our_files(args.model, size, work)
    for name, path in reference["files"].items():
        files[f"reference {name.replace('_', ' ')}"] = Path(path)
    calls = {name: (_onnx_call if path.suffix == ".onnx" else _tflite_call)(path, args.threads)
             for name, path in files.items()}
    kernels = peak_kernels(args.threads)
    calls.update({name: kernel[0] for name, kernel in kernels.items()})
    timed = {name: {"min_ms": round(min(t), 2), "median_ms": round(statistics.median(t), 2)}
             for name, t in time_interleaved(calls, args.rounds).items()}
    peak = peaks(kernels, {name: timed[name]["min_ms"] for name in kernels})
    for name, path in files.items():
        if path.suffix == ".tflite":
            macs = tflite_macs(path)
            precision = "int8" if name.endswith("int8") else "fp32"
            timed[name].update(gmacs=round(macs / 1e9, 3),
                               floor_ms=round(floor_ms(macs, peak[precision]), 2))
    return {"size": size, "timings": timed, "peak_macs_per_s": peak,
            "reference_errors": reference["errors"],
            "files": {k: str(v) for k, v in files.items()}}


ROWS = (("raw float32", "ours raw float32", "reference litert float32", "reference onnx float32"),
        ("e2e float32, 100 masks", "ours e2e float32", "reference litert float32",
         "reference onnx float32"),
        ("raw int8", "ours raw int8", "reference litert int8", None),
        ("e2e int8, 100 masks", "ours e2e int8", "reference litert int8", None))


def table(results: list[dict], model: str, threads: int) -> str:
    """Rows per size: our minimum, the reference's, the ratios and the floor."""
    lines = [f"{model}, batch 1, {threads} threads, minimum of interleaved rounds (ms)",
             f"{'size':>5} {'export':<24}{'ours':>8}{'ref LiteRT':>12}{'ref ONNX':>10}"
             f"{'x LiteRT':>10}{'x ONNX':>8}{'floor':>8}{'x floor':>9}"]

    def ms(timings, name):
        return timings[name]["min_ms"] if name in timings else None

    for result in results:
        timings, peak = result["timings"], result["peak_macs_per_s"]
        gmacs = {n: timings.get(n, {}).get("gmacs") for n in ("ours raw float32",
                                                               "reference litert float32")}
        lines.append(f"{result['size']:>5} measured peak: fp32 {peak['fp32'] / 1e9:.0f} GMAC/s, "
                     f"int8 {peak['int8'] / 1e9:.0f} GMAC/s; network GMAC: ours "
                     f"{gmacs['ours raw float32']}, reference {gmacs['reference litert float32']}")
        for label, ours, litert, onnx in ROWS:
            mine, theirs, other = ms(timings, ours), ms(timings, litert), onnx and ms(timings, onnx)
            cells = [f"{v:.1f}" if v else "-" for v in (mine, theirs, other)]
            ratios = [f"{mine / v:.2f}" if v and mine else "-" for v in (theirs, other)]
            floor = timings.get(ours, {}).get("floor_ms")
            lines.append(f"{result['size']:>5} {label:<24}{cells[0]:>8}{cells[1]:>12}{cells[2]:>10}"
                         f"{ratios[0]:>10}{ratios[1]:>8}{floor or '-':>8}"
                         f"{(f'{mine / floor:.1f}' if floor and mine else '-'):>9}")
        for name, error in result["reference_errors"].items():
            lines.append(f"      reference {name} not made: {error.splitlines()[-1][:160]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    ref = sub.add_parser("reference", help="(run in the reference's venv) make its files")
    ref.add_argument("--model", required=True, choices=sorted(REFERENCE_NAMES))
    ref.add_argument("--size", type=int, required=True)
    ref.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reference-python", help="python of a venv with ultralytics")
    parser.add_argument("--model", default="yolov8-seg-n", choices=sorted(REFERENCE_NAMES))
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--work", type=Path, help="keep (and reuse) the files here")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.command == "reference":
        print(json.dumps(make_reference(args.model, args.size, args.out)))
        return
    if not args.reference_python:
        parser.error("--reference-python is required")
    from tfseg.errors import MissingPackageError

    try:  # before the long part: making the reference's files
        _onnxruntime()
    except MissingPackageError as error:
        raise SystemExit(f"compare_export_latency: error: {error}") from None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="tfseg-latency-"))
    work.mkdir(parents=True, exist_ok=True)
    results = [measure_size(args, size, work) for size in args.sizes]
    print(table(results, args.model, args.threads))
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "threads": args.threads,
                                        "sizes": results}, indent=1))


if __name__ == "__main__":
    main()
