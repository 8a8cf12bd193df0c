"""Side by side: tfseg's and the reference's training speed and peak memory, in one run.

Both train yolov8n-seg from scratch on the same files, same image size, batch and epochs, on
the same cores, one after the other for each size (the order alternates between sizes so
neither always runs first on a machine that warms up or is shared):

- tfseg: ``tfseg benchmark train`` (whole ``tfseg train`` epochs: pipeline, step, callbacks
  and the per-epoch evaluation), default dataset the built-in ``cocolike`` set;
- the reference: Ultralytics, through ``tools/reference_ultralytics_shapes.py train
  --data-yaml`` in its own virtual environment, on the YOLO-seg copy that
  ``tfseg data convert --to yolo`` writes of the same dataset; its per-epoch training and
  validation times come from that tool's ``epoch_times.csv``.

Images/s count whole epochs (training pass plus validation) after the first (tracing and
warm-up); the training pass alone is the second figure. Peak memory: the reference's is the
peak resident set of its training process tree (``wait4``: the largest process, not a sum
over its data-loader workers); tfseg's is the training process's own peak as the benchmark
reads it before timing the step alone.

Usage (from the repository root, tfseg's venv active; nothing is downloaded)::

    python tools/compare_training_speed.py --reference-python /work/refvenv/bin/python \\
        --sizes 320 640 --batch 16 --epochs 3 --workdir /tmp/speed [data=shapes ...]

``key=value`` arguments go to both sides' dataset (tfseg's config keys).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

REFERENCE_TOOL = Path(__file__).with_name("reference_ultralytics_shapes.py")


def run_measured(command: list[str], cwd: Path, env: dict | None = None) -> tuple[int, float, float]:
    """Run ``command``; returns (exit code, wall seconds, peak RSS in MB of its process tree)."""
    print("$ " + " ".join(command), flush=True)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, time.perf_counter() - start, usage.ru_maxrss / 1024


def yolo_copy(workdir: Path, tfseg: str, overrides: list[str]) -> Path:
    """The dataset's YOLO-seg copy and a data.yaml with only the keys Ultralytics reads."""
    coco = workdir / "coco"
    yolo = workdir / "yolo"
    subprocess.run([tfseg, "data", "prepare", *overrides], cwd=coco, check=True)
    if not (yolo / "data.yaml").is_file():
        subprocess.run([tfseg, "data", "convert", "--to", "yolo", *overrides,
                        "--output", str(yolo)], cwd=coco, check=True)
    written = yaml.safe_load((yolo / "data.yaml").read_text())
    target = yolo / "ultra_data.yaml"
    target.write_text(yaml.safe_dump({"path": str(yolo.resolve()), "train": written["train"],
                                      "val": written["val"], "names": written["names"]},
                                     sort_keys=False))
    return target


def ours(workdir: Path, tfseg: str, size: int, batch: int, epochs: int,
         overrides: list[str]) -> dict:
    output = workdir / f"tfseg_{size}.json"
    code, wall, peak = run_measured([tfseg, "benchmark", "train", "--sizes", str(size),
                                     "--batch", str(batch), "--epochs", str(epochs),
                                     "--runs", "6", "--output", str(output), *overrides],
                                    cwd=workdir / "coco")
    if code:
        raise SystemExit(f"tfseg benchmark train failed ({code})")
    result = json.loads(output.read_text())[0]
    # The training's own peak: the benchmark's process goes on to time the step alone with
    # further models, which the process tree's peak (``peak``) would count too.
    return {"images_per_second": result["images_per_second"],
            "train_pass_images_per_second": result["train_pass_images_per_second"],
            "peak_rss_mb": result["peak_rss_mb"], "process_tree_peak_rss_mb": round(peak, 1),
            "wall_seconds": round(wall, 1), "detail": result}


def reference(workdir: Path, python: str, data_yaml: Path, size: int, batch: int,
              epochs: int) -> dict:
    name = f"speed-{size}-{int(time.time())}"
    code, wall, peak = run_measured([python, str(REFERENCE_TOOL), "train", "--data-yaml",
                                     str(data_yaml), "--workdir", str(workdir / "reference"),
                                     "--name", name, "--epochs", str(epochs), "--imgsz",
                                     str(size), "--batch", str(batch), "--threads", "2"],
                                    cwd=workdir)
    if code:
        raise SystemExit(f"the reference failed ({code})")
    with open(workdir / "reference" / "runs" / name / "epoch_times.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    steady = rows[1:] or rows
    images = sum(int(r["images"]) for r in steady)
    train_s = sum(float(r["train_s"]) for r in steady)
    val_s = sum(float(r["val_save_s"]) for r in steady)
    return {"images_per_second": round(images / (train_s + val_s), 2),
            "train_pass_images_per_second": round(images / train_s, 2),
            "peak_rss_mb": round(peak, 1), "wall_seconds": round(wall, 1)}


def table(results: list[dict]) -> str:
    lines = [f"{'size':>5} {'tfseg img/s':>12} {'ref img/s':>10} {'ratio':>6} "
             f"{'tfseg pass':>11} {'ref pass':>9} {'ratio':>6} {'tfseg MB':>9} {'ref MB':>8}"]
    for r in results:
        a, b = r["tfseg"], r["reference"]
        lines.append(
            f"{r['size']:>5} {a['images_per_second']:>12.2f} {b['images_per_second']:>10.2f} "
            f"{a['images_per_second'] / b['images_per_second']:>6.2f} "
            f"{a['train_pass_images_per_second']:>11.2f} {b['train_pass_images_per_second']:>9.2f} "
            f"{a['train_pass_images_per_second'] / b['train_pass_images_per_second']:>6.2f} "
            f"{a['peak_rss_mb']:>9.0f} {b['peak_rss_mb']:>8.0f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True,
                        help="python of the separate venv that has ultralytics and torch")
    parser.add_argument("--tfseg", default="tfseg", help="tfseg executable (its own venv)")
    parser.add_argument("--workdir", type=Path, default=Path("speed"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    args, overrides = parser.parse_known_args(argv)
    overrides = overrides or ["data=cocolike"]
    workdir = args.workdir.resolve()
    (workdir / "coco").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    data_yaml = yolo_copy(workdir, args.tfseg, overrides)
    results = []
    for i, size in enumerate(args.sizes):
        sides = {}
        order = ("tfseg", "reference") if i % 2 == 0 else ("reference", "tfseg")
        for side in order:
            sides[side] = (ours(workdir, args.tfseg, size, args.batch, args.epochs, overrides)
                           if side == "tfseg" else
                           reference(workdir, args.reference_python, data_yaml, size,
                                     args.batch, args.epochs))
        results.append({"size": size, "batch": args.batch, "epochs": args.epochs, **sides})
        (workdir / "compare.json").write_text(json.dumps(results, indent=2))
        print(table(results), flush=True)
    print(f"\nsame run, {args.epochs} epochs per side and size, the first excluded; "
          f"images/s over whole epochs (training pass + validation), then the pass alone")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
