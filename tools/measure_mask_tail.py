"""Cost of the mask options in the end-to-end TFLite tail: e2e minus raw milliseconds.

    python tools/measure_mask_tail.py --size 320 --mask-sizes 0,56,112 --rounds 7 --runs 15

Exports one raw float32 file and one end-to-end float32 file per mask option (score
threshold 0, so NMS keeps the full N = 100 detections: the worst case of the tail), then
times them interleaved (file after file, ``--rounds`` times, ``--runs`` invocations each, 2
threads) and keeps each file's fastest run: on a shared machine the minimum is the figure
least disturbed by the neighbours. Prints raw, e2e, tail = e2e - raw, and e2e / raw.
Weights are a fresh network's (latency does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np


def export_files(size: int, options: list[tuple[int, str]], work: Path, max_det: int) -> dict:
    """{"raw": path, "e2e m=<m> <dtype>": path, ...} for a fresh yolov8-seg-n at ``size``."""
    from tfseg.export.tflite import export_tflite
    from tfseg.model import build_model
    from tfseg.postprocess import PostProcess

    network = build_model("yolov8-seg-n", 80, size)
    files = {}
    for i, (mask_size, dtype) in enumerate(options):
        post = PostProcess(score_threshold=0.0, iou_threshold=0.7, max_detections=max_det,
                           mask_size=mask_size, mask_dtype=dtype)
        written = export_tflite(network, post, size, work / str(i), f"m{mask_size}", ["float32"],
                                raw=(i == 0))
        files[f"e2e m={mask_size} {dtype}"] = written["float32"]
        if i == 0:
            files["raw"] = written["raw_float32"]
    return files


def fastest_ms(files: dict, size: int, rounds: int, runs: int, threads: int) -> dict:
    """Each file's fastest invocation in milliseconds: every round runs each file ``runs``
    times in turn (file A once, file B once, ...), so all files see the same neighbours."""
    import time

    from ai_edge_litert.interpreter import Interpreter

    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    runners = {name: Interpreter(model_path=str(path), num_threads=threads).get_signature_runner(
        "raw" if name == "raw" else "detect") for name, path in files.items()}
    for runner in runners.values():  # warm-up: first invocations allocate
        runner(images=image)
        runner(images=image)
    best = {name: float("inf") for name in files}
    for _ in range(rounds * runs):
        for name, runner in runners.items():
            start = time.perf_counter()
            runner(images=image)
            best[name] = min(best[name], 1000.0 * (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--mask-sizes", default="0,56,112")
    parser.add_argument("--uint8", action="store_true", help="also time uint8 masks")
    parser.add_argument("--max-det", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    sizes = [int(m) for m in args.mask_sizes.split(",")]
    options = [(m, "float32") for m in sizes] + ([(m, "uint8") for m in sizes] if args.uint8
                                                 else [])
    with tempfile.TemporaryDirectory(prefix="tfseg-tail-") as work:
        files = export_files(args.size, options, Path(work), args.max_det)
        best = fastest_ms(files, args.size, args.rounds, args.runs, args.threads)
    raw = best["raw"]
    print(f"{'file':<22}{'fastest ms':>11}{'tail ms':>9}{'e2e/raw':>9}")
    for name, ms in best.items():
        tail = "" if name == "raw" else f"{ms - raw:>9.2f}{ms / raw:>9.3f}"
        print(f"{name:<22}{ms:>11.2f}{tail}")
    if args.out:
        Path(args.out).write_text(json.dumps({"size": args.size, "fastest_ms": best}, indent=1))


if __name__ == "__main__":
    main()
