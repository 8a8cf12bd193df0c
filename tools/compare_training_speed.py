"""Side by side: tfseg's and the reference's training speed and peak memory, in one run.

Both train yolov8n-seg from scratch on the same files, same image size, batch and epochs,
mosaic on throughout, on the same cores, one after the other for each size and cache setting:

- tfseg: ``tfseg benchmark train`` (whole ``tfseg train`` epochs: pipeline, step, callbacks
  and the per-epoch evaluation), default dataset the built-in ``cocolike`` set; ``--cache
  ram`` adds ``data.cache=ram`` (the decoded-image cache, docs/training.md);
- the reference: Ultralytics, through ``tools/reference_ultralytics_shapes.py train
  --data-yaml --close-mosaic 0`` in its own virtual environment, on the YOLO-seg copy that
  ``tfseg data convert --to yolo`` writes of the same dataset; ``--cache ram`` adds its
  ``cache="ram"``. Its per-epoch times come from that tool's ``epoch_times.csv``.

``--multi-scale 0 0.5`` measures each size and cache setting without and with multi-scale
training (``multi_scale`` on both sides: each batch resized within the size x (1 +/- f)).

Which side runs first alternates from one measurement to the next (sizes, then cache
settings, then multi-scale settings), so neither side always runs first on a machine that
warms up or is shared.

The table, per size and cache setting:

- img/s over the steady epochs (all but the first) as whole epochs (training pass plus
  validation), then of the training passes alone; ratio = tfseg / reference;
- per side, seconds: ``setup`` from the training call to the first epoch's start, ``1st``
  the first epoch (training pass plus validation), ``steady`` the median steady epoch, and
  ``1st/st`` their ratio. tfseg traces its step and, with the cache, fills it during its first
  epoch; Ultralytics fills its cache (training and validation images) during its setup, so
  its setup, not its first epoch, carries that cost;
- peak resident memory, MB: the reference's is the peak of its training process tree
  (``wait4``: the largest process, not a sum over data-loader workers); tfseg's is the
  training process's own peak as the benchmark reads it before timing the step alone.

Usage (from the repository root, tfseg's venv active; nothing is downloaded)::

    python tools/compare_training_speed.py --reference-python /work/refvenv/bin/python \\
        --sizes 320 640 --batch 16 --epochs 3 --cache false ram [--multi-scale 0 0.5] \\
        --workdir /tmp/speed [data=shapes ...]

``key=value`` arguments go to both sides' dataset (tfseg's config keys).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

REFERENCE_TOOL = Path(__file__).with_name("reference_ultralytics_shapes.py")
# No "disk": Ultralytics keeps its disk cache as .npy files beside the images and reads them
# in every later run, cached or not, so the cache=false measurements after it would be wrong.
CACHE_SETTINGS = ("false", "ram")


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


def ours(workdir: Path, tfseg: str, size: int, batch: int, epochs: int, cache: str,
         overrides: list[str], multi_scale: float = 0.0) -> dict:
    output = workdir / f"tfseg_{size}_{cache}_{multi_scale:g}.json"
    code, wall, peak = run_measured([tfseg, "benchmark", "train", "--sizes", str(size),
                                     "--batch", str(batch), "--epochs", str(epochs),
                                     "--runs", "6", "--output", str(output), *overrides,
                                     f"data.cache={cache}", f"augment.multi_scale={multi_scale}"],
                                    cwd=workdir / "coco")
    if code:
        raise SystemExit(f"tfseg benchmark train failed ({code})")
    result = json.loads(output.read_text())[0]
    if result["cache"] != cache:
        raise SystemExit(f"tfseg trained with data.cache={result['cache']}, not {cache}")
    # The training's own peak: the benchmark's process goes on to time the step alone with
    # further models, which the process tree's peak (``peak``) would count too.
    return {"images_per_second": result["images_per_second"],
            "train_pass_images_per_second": result["train_pass_images_per_second"],
            "setup_seconds": result["setup_seconds"],
            "first_epoch_seconds": result["first_epoch_seconds"],
            "steady_epoch_seconds": result["epoch_seconds"],
            "peak_rss_mb": result["peak_rss_mb"], "process_tree_peak_rss_mb": round(peak, 1),
            "wall_seconds": round(wall, 1), "detail": result}


def reference(workdir: Path, python: str, data_yaml: Path, size: int, batch: int,
              epochs: int, cache: str, multi_scale: float = 0.0) -> dict:
    name = f"speed-{size}-{cache}-{multi_scale:g}-{int(time.time())}"
    code, wall, peak = run_measured([python, str(REFERENCE_TOOL), "train", "--data-yaml",
                                     str(data_yaml), "--workdir", str(workdir / "reference"),
                                     "--name", name, "--epochs", str(epochs), "--imgsz",
                                     str(size), "--batch", str(batch), "--threads", "2",
                                     "--cache", cache, "--close-mosaic", "0",
                                     "--multi-scale", str(multi_scale)],
                                    cwd=workdir)
    if code:
        raise SystemExit(f"the reference failed ({code})")
    with open(workdir / "reference" / "runs" / name / "epoch_times.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    if rows[0]["cache"] != cache:
        raise SystemExit(f"the reference trained with cache={rows[0]['cache']}, not {cache} "
                         f"(Ultralytics' warning above says why)")
    first, steady = rows[0], rows[1:] or rows
    images = sum(int(r["images"]) for r in steady)
    train_s = sum(float(r["train_s"]) for r in steady)
    val_s = sum(float(r["val_save_s"]) for r in steady)
    return {"images_per_second": round(images / (train_s + val_s), 2),
            "train_pass_images_per_second": round(images / train_s, 2),
            "setup_seconds": round(float(first["start_s"]), 1),
            "first_epoch_seconds": round(_epoch_seconds(first), 1),
            "steady_epoch_seconds": round(statistics.median(map(_epoch_seconds, steady)), 1),
            "peak_rss_mb": round(peak, 1), "wall_seconds": round(wall, 1)}


def _epoch_seconds(row: dict) -> float:
    """A whole epoch of the reference: training pass, validation and checkpoint saving."""
    return float(row["train_s"]) + float(row["val_save_s"])


def _both(key: str, spec: str) -> tuple:
    """Columns: tfseg's and the reference's ``key`` and their ratio."""
    return (("tfseg", spec, lambda r: r["tfseg"][key]),
            ("ref", spec, lambda r: r["reference"][key]),
            ("ratio", ".2f", lambda r: r["tfseg"][key] / r["reference"][key]))


def _epochs(side: str) -> tuple:
    """Columns: one side's setup, first and steady epoch seconds, and first / steady."""
    return (("setup", ".1f", lambda r: r[side]["setup_seconds"]),
            ("1st", ".1f", lambda r: r[side]["first_epoch_seconds"]),
            ("steady", ".1f", lambda r: r[side]["steady_epoch_seconds"]),
            ("1st/st", ".2f",
             lambda r: r[side]["first_epoch_seconds"] / r[side]["steady_epoch_seconds"]))


# (group heading, its columns: (heading, format spec, value of one result))
GROUPS = (
    ("", (("size", "d", lambda r: r["size"]), ("cache", "s", lambda r: r["cache"]),
          ("ms", "g", lambda r: r.get("multi_scale", 0.0)))),
    ("img/s, epochs", _both("images_per_second", ".2f")),
    ("img/s, pass", _both("train_pass_images_per_second", ".2f")),
    ("tfseg s", _epochs("tfseg")),
    ("reference s", _epochs("reference")),
    ("peak RSS MB", (("tfseg", ".0f", lambda r: r["tfseg"]["peak_rss_mb"]),
                     ("ref", ".0f", lambda r: r["reference"]["peak_rss_mb"]))),
)


def table(results: list[dict]) -> str:
    """One row per measurement; a group heading above each block of columns."""
    headings, header, rows = [], [], [[] for _ in results]
    for group, columns in GROUPS:
        cells = [[format(value(r), spec) for r in results] for _, spec, value in columns]
        widths = [max(len(name), *map(len, column)) for (name, _, _), column in zip(columns, cells)]
        headings.append(group.center(sum(widths) + len(widths) - 1))
        header.append(" ".join(name.rjust(w) for (name, _, _), w in zip(columns, widths)))
        for row, values in zip(rows, zip(*cells)):
            row.append(" ".join(v.rjust(w) for v, w in zip(values, widths)))
    return "\n".join(["   ".join(headings).rstrip(), " | ".join(header),
                      *(" | ".join(row) for row in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference-python", required=True,
                        help="python of the separate venv that has ultralytics and torch")
    parser.add_argument("--tfseg", default="tfseg", help="tfseg executable (its own venv)")
    parser.add_argument("--workdir", type=Path, default=Path("speed"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--cache", nargs="+", choices=CACHE_SETTINGS, default=["false"],
                        help="cache settings to measure each size with (default: false)")
    parser.add_argument("--multi-scale", type=float, nargs="+", default=[0.0],
                        help="multi-scale settings to measure each with (default: 0, off)")
    args, overrides = parser.parse_known_args(argv)
    overrides = overrides or ["data=cocolike"]
    workdir = args.workdir.resolve()
    (workdir / "coco").mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_OFFLINE", "1")
    data_yaml = yolo_copy(workdir, args.tfseg, overrides)
    results = []
    settings = [(size, cache, scale) for size in args.sizes for cache in args.cache
                for scale in args.multi_scale]
    for k, (size, cache, scale) in enumerate(settings):
        sides = {}
        order = ("tfseg", "reference") if k % 2 == 0 else ("reference", "tfseg")
        for side in order:
            sides[side] = (ours(workdir, args.tfseg, size, args.batch, args.epochs, cache,
                                overrides, scale)
                           if side == "tfseg" else
                           reference(workdir, args.reference_python, data_yaml, size,
                                     args.batch, args.epochs, cache, scale))
        results.append({"size": size, "cache": cache, "multi_scale": scale, "batch": args.batch,
                        "epochs": args.epochs, "first": order[0], **sides})
        (workdir / "compare.json").write_text(json.dumps(results, indent=2))
        print(table(results), flush=True)
    print(f"\nsame run, {args.epochs} epochs per side, size and cache setting; img/s over the "
          f"epochs after the first, whole (training pass + validation), then the pass alone "
          f"(ratio: tfseg / reference); seconds: setup to the first epoch, first epoch, median "
          f"steady epoch, first / steady")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
