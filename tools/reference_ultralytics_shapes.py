"""Yardstick: train the Ultralytics reference YOLOv8n-seg on tfseg's synthetic ``shapes`` set.

A measurement tool only, never a dependency of tfseg: it gives the numbers tfseg's own
training on the same data is compared with (box and mask mAP50-95 / mAP50 per epoch,
training images/second). Run it with the interpreter of a SEPARATE virtual environment that
has ``ultralytics`` and ``torch`` (never install them into tfseg's environment); tfseg itself
is only called as a command (``--tfseg``) to write and convert the dataset.

Subcommands:
    prepare   write ``shapes`` with ``tfseg data shapes`` and convert it with
              ``tfseg data convert --to yolo``; write ``ultra_data.yaml`` (path, train, val,
              names only) beside the converted set.
    train     prepare (unless already there), then train ``YOLO("<--model>")`` (default
              ``yolov8n-seg.yaml``; ``yolo26n-seg.yaml`` for the YOLO26 comparison) from
              random init, validating every epoch, and print the table. ``--save-period 5``
              keeps ``weights/epoch0.pt``, ``epoch5.pt``, ... (after
              epochs 1, 6, ...: Ultralytics numbers them from 0) to score with ``tfseg val``.
    report    print the table of an existing (possibly still running) run directory.
    score     score the run's checkpoints (``weights/epochN.pt`` from ``--save-period``, then
              ``last.pt``) with tfseg's evaluator: each is converted to tensors here
              (``compare_ultralytics.convert``: its EMA weights), imported with ``tfseg
              import-weights`` at ``--imgsz``, scored with ``tfseg val data.root=<--data-root>``
              (pycocotools on the original images); prints one row per checkpoint. Give
              ``--tfseg`` and ``--tfseg-model`` (e.g. yolo26-seg-n).

``--data-yaml`` trains on an already converted YOLO-seg data.yaml instead (no tfseg call:
for a machine without tfseg); ``--device 0`` trains on a GPU (the recorded yardstick is CPU).

Example (the measurement recorded in the report)::

    /work/ultra-venv/bin/python tools/reference_ultralytics_shapes.py train \\
        --workdir /work/refrun --tfseg /work/venv/bin/tfseg \\
        --epochs 30 --imgsz 320 --batch 16 --train-images 500 --val-images 100 \\
        --min-size 240 --max-size 400

Nothing is downloaded: YOLO_OFFLINE=1, a private YOLO_CONFIG_DIR with every integration and
the usage sync off, amp=False (its check downloads weights), plots=False, and the font check
of the dataset check (only used for plots) replaced by a no-op.

Timing: a callback records the wall time of each epoch's training pass (data loading and
augmentation included) apart from its validation and checkpoint saving, in
``<run>/epoch_times.csv``; images/second = training images / training-pass seconds.
Ultralytics forces ``workers=0`` on CPU and resets torch to ``cpu_count - 1`` threads; the
callback sets ``--threads`` again at the start of training and of each validation. Each row
also holds ``start_s``, the seconds from the training call (before the model is built) to the
epoch's start, so the first row's is the setup: model, dataset scan and, with ``--cache ram``
or ``disk``, the filling of Ultralytics' image cache (it happens before the first epoch); and
``cache``, the cache the training set ran with (Ultralytics falls back to none, with a warning,
when the images do not fit).

``--cache`` (default false) and ``--close-mosaic`` (default 10, Ultralytics' own) go to
Ultralytics as they are; a run of no more epochs than ``--close-mosaic`` trains without mosaic
from its start, so ``tools/compare_training_speed.py`` passes ``--close-mosaic 0``.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

# (column in results.csv, header in our table)
METRIC_COLUMNS = (
    ("metrics/mAP50-95(B)", "box50-95"),
    ("metrics/mAP50(B)", "box50"),
    ("metrics/mAP50-95(M)", "mask50-95"),
    ("metrics/mAP50(M)", "mask50"),
)
TIMES_FILE = "epoch_times.csv"
FINAL_FILE = "final_eval.csv"


# ---------------------------------------------------------------------------------------
# Dataset: tfseg writes and converts it.
# ---------------------------------------------------------------------------------------

def prepare_dataset(workdir: Path, tfseg: str, train_images: int, val_images: int,
                    min_size: int, max_size: int, seed: int) -> Path:
    """Write shapes (COCO) and its YOLO-seg copy with tfseg's CLI; returns ultra_data.yaml.

    Args:
        workdir: folder for ``shapes/`` (COCO) and ``shapes_yolo/`` (YOLO-seg).
        tfseg: the ``tfseg`` executable of tfseg's own environment.
        train_images, val_images, min_size, max_size, seed: the shapes data-config keys.

    Returns:
        path of a data.yaml holding only the keys Ultralytics reads (path, train, val, names).
    """
    import yaml

    coco_root, yolo_root = workdir / "shapes", workdir / "shapes_yolo"
    workdir.mkdir(parents=True, exist_ok=True)
    keys = [f"shapes_train={train_images}", f"shapes_val={val_images}",
            f"shapes_min_size={min_size}", f"shapes_max_size={max_size}", f"shapes_seed={seed}"]
    _run([tfseg, "data", "shapes", "--output", str(coco_root), *keys], cwd=workdir)
    if not (yolo_root / "data.yaml").is_file():
        _run([tfseg, "data", "convert", "--to", "yolo", f"data.root={coco_root}", *keys,
              "--output", str(yolo_root)], cwd=workdir)
    with open(yolo_root / "data.yaml") as f:
        written = yaml.safe_load(f)
    # tfseg's data.yaml adds category_ids (for round trips); Ultralytics needs only these.
    ours = {"path": str(yolo_root.resolve()), "train": written["train"], "val": written["val"],
            "names": written["names"]}
    target = yolo_root / "ultra_data.yaml"
    with open(target, "w") as f:
        yaml.safe_dump(ours, f, sort_keys=False)
    print(f"Ultralytics data.yaml: {target}: {ours}", flush=True)
    return target


def _run(command: list[str], cwd: Path) -> None:
    print("$ " + " ".join(command), flush=True)
    subprocess.run(command, cwd=cwd, check=True)


# ---------------------------------------------------------------------------------------
# Training.
# ---------------------------------------------------------------------------------------

def offline_environment(workdir: Path) -> None:
    """Environment that keeps Ultralytics from reaching the network or global settings."""
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultra_config"))
    os.environ.setdefault("MPLCONFIGDIR", str(workdir / "ultra_config" / "matplotlib"))
    os.environ.setdefault("YOLO_VERBOSE", "True")


def _settings_off() -> None:
    from ultralytics import settings

    settings.update({"sync": False, "clearml": False, "comet": False, "dvc": False,
                     "mlflow": False, "raytune": False, "tensorboard": False, "wandb": False,
                     "vscode_msg": False, "openvino_msg": False})


def _no_font_download() -> None:
    """The dataset check fetches Arial.ttf for plots; plots are off, so skip it."""
    import ultralytics.data.utils as data_utils

    data_utils.check_font = lambda *args, **kwargs: None


def _timing_callbacks(model, threads: int, called: float) -> None:
    """Per-epoch training-pass and validation times into <save_dir>/epoch_times.csv, and each
    epoch's start in seconds after ``called`` (``time.time()`` of the training call)."""
    import torch

    marks: dict[str, float | str] = {}

    def keep_threads(_owner) -> None:
        torch.set_num_threads(threads)  # select_device() reset it to cpu_count - 1

    def epoch_start(trainer) -> None:
        keep_threads(trainer)
        marks["start"] = time.time()
        # None when Ultralytics declined the cache (not enough memory or disk).
        marks["cache"] = getattr(trainer.train_loader.dataset, "cache", None) or "false"

    def epoch_end(trainer) -> None:  # training pass done, validation not yet begun
        marks["train_end"] = time.time()

    def fit_epoch_end(trainer) -> None:  # after validation and checkpoint saving
        now = time.time()
        if "train_end" not in marks:  # final_eval() of best.pt fires this event once more
            _write_final(trainer)
            return
        path = Path(trainer.save_dir) / TIMES_FILE
        new = not path.exists()
        with open(path, "a", newline="") as f:
            writer = csv.writer(f)
            if new:
                writer.writerow(["epoch", "train_s", "val_save_s", "images", "start_s", "cache"])
            writer.writerow([trainer.epoch + 1, f"{marks['train_end'] - marks['start']:.3f}",
                             f"{now - marks.pop('train_end'):.3f}",
                             len(trainer.train_loader.dataset),
                             f"{marks['start'] - called:.3f}", marks["cache"]])

    model.add_callback("on_train_start", keep_threads)
    model.add_callback("on_val_start", keep_threads)
    model.add_callback("on_train_epoch_start", epoch_start)
    model.add_callback("on_train_epoch_end", epoch_end)
    model.add_callback("on_fit_epoch_end", fit_epoch_end)


def _write_final(trainer) -> None:
    """best.pt's validation metrics (Ultralytics' final_eval) into <save_dir>/final_eval.csv."""
    metrics = {k: v for k, v in trainer.metrics.items() if k.startswith("metrics/")}
    with open(Path(trainer.save_dir) / FINAL_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["weights", *metrics])
        writer.writerow([str(trainer.best), *(f"{v:.5f}" for v in metrics.values())])


def train(data_yaml: Path, workdir: Path, name: str, epochs: int, imgsz: int, batch: int,
          workers: int, threads: int, seed: int, device: str = "cpu",
          model_yaml: str = "yolov8n-seg.yaml", save_period: int = -1, cache: str = "false",
          close_mosaic: int = 10, multi_scale: float = 0.0,
          hyp: dict | None = None) -> Path:
    """Train the reference model from its YAML (random init); returns the run directory.

    ``cache``: "false", "ram" or "disk" (Ultralytics' ``cache``); ``close_mosaic``: the final
    epochs trained without mosaic (0: mosaic throughout); ``multi_scale``: Ultralytics' own
    (each batch resized within imgsz x (1 +/- it)); ``hyp``: further Ultralytics training
    arguments (e.g. the recipe's ``mixup``, ``copy_paste``, ``scale``).
    """
    import torch

    torch.set_num_threads(threads)
    _settings_off()
    _no_font_download()
    from ultralytics import YOLO

    called = time.time()
    model = YOLO(model_yaml)  # built from the architecture YAML: no weights loaded
    _timing_callbacks(model, threads, called)
    model.train(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, workers=workers,
                device=device, plots=False, amp=False, seed=seed, deterministic=True, val=True,
                project=str(workdir / "runs"), name=name, exist_ok=True, pretrained=False,
                save_period=save_period, cache=False if cache == "false" else cache,
                close_mosaic=close_mosaic, multi_scale=multi_scale, **(hyp or {}))
    return workdir / "runs" / name


# ---------------------------------------------------------------------------------------
# Report.
# ---------------------------------------------------------------------------------------

def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def report(run_dir: Path) -> str:
    """Per-epoch table (mAPs from results.csv, times from epoch_times.csv) and images/s."""
    results = _read_csv(run_dir / "results.csv")
    times = {int(r["epoch"]): r for r in _read_csv(run_dir / TIMES_FILE)}
    header = f"{'epoch':>5} " + " ".join(f"{h:>9}" for _, h in METRIC_COLUMNS)
    lines = [header + f" {'train_s':>8} {'val_s':>6} {'img/s':>6} {'cum_s':>7}"]
    train_s = images = 0.0
    for row in results:
        epoch = int(float(row["epoch"]))
        t = times.get(epoch)
        cells = " ".join(f"{float(row[c]):9.4f}" for c, _ in METRIC_COLUMNS)
        if t:
            secs, n = float(t["train_s"]), int(t["images"])
            train_s, images = train_s + secs, images + n
            timing = f" {secs:8.1f} {float(t['val_save_s']):6.1f} {n / secs:6.2f}"
        else:
            timing = f" {'-':>8} {'-':>6} {'-':>6}"
        lines.append(f"{epoch:5d} {cells}{timing} {float(row['time']):7.0f}")
    if images:
        lines.append(f"training images/s over {len(times)} epochs: {images / train_s:.2f} "
                     f"({images:.0f} images in {train_s:.0f} s of training passes)")
    final = _read_csv(run_dir / FINAL_FILE)
    if final:
        cells = ", ".join(f"{h} {float(final[0][c]):.4f}" for c, h in METRIC_COLUMNS)
        lines.append(f"final validation of best.pt: {cells}")
    if not results:
        lines.append(f"(no results.csv rows yet in {run_dir})")
    return "\n".join(lines)


def _checkpoint_epoch(path: Path) -> int:
    digits = path.stem.removeprefix("epoch")
    return int(digits) if digits.isdigit() else 10**6  # last.pt after every epochN.pt


def score(run_dir: Path, tfseg: str, tfseg_model: str, data_root: Path, imgsz: int,
          val_args: list[str] = ()) -> str:
    """tfseg val's box and mask mAPs of each checkpoint of ``run_dir`` at the input size it
    was trained at (``imgsz``), with ``val_args`` (e.g. ``end2end=false``) added to each
    ``tfseg val``; returns the table."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import json

    from compare_ultralytics import convert

    out = run_dir / "tfseg_scores"
    out.mkdir(exist_ok=True)
    checkpoints = sorted([*(run_dir / "weights").glob("epoch*.pt"), run_dir / "weights" / "last.pt"],
                         key=_checkpoint_epoch)
    lines = [f"{'checkpoint':<12}{'epochs':>7}{'box50-95':>9}{'box50':>8}{'mask50-95':>10}{'mask50':>8}"]
    for checkpoint in (c for c in checkpoints if c.is_file()):
        # Kept: a re-run scores only what changed.
        scored = out / f"{checkpoint.stem}{''.join('_' + a for a in val_args)}.metrics.json"
        if scored.is_file() and scored.stat().st_mtime > checkpoint.stat().st_mtime:
            lines.append(_score_line(checkpoint, json.loads(scored.read_text())))
            continue
        tensors, weights = out / f"{checkpoint.stem}.npz", out / f"{checkpoint.stem}.weights.h5"
        convert(checkpoint, tensors)
        _run([tfseg, "import-weights", str(tensors), f"model={tfseg_model}", f"imgsz={imgsz}",
              "--output", str(weights)], cwd=out)
        command = [tfseg, "val", f"weights={weights}", f"data.root={data_root}",
                   f"project={out}", f"name={checkpoint.stem}", *val_args]
        print("$ " + " ".join(command), flush=True)
        done = subprocess.run(command, cwd=out, check=True, capture_output=True, text=True)
        # "results: <run dir> (box ...)": a new run folder each time (name, name2, ...).
        val_dir = next(line.split()[1] for line in done.stdout.splitlines()
                       if line.startswith("results: "))
        metrics = json.loads((Path(val_dir) / "metrics.json").read_text())["metrics"]
        scored.write_text(json.dumps(metrics))
        lines.append(_score_line(checkpoint, metrics))
    return "\n".join(lines)


def _score_line(checkpoint: Path, metrics: dict) -> str:
    # Ultralytics numbers epochs from 0 in these names: epochN.pt holds N + 1 epochs.
    trained = _checkpoint_epoch(checkpoint) + 1 if checkpoint.stem != "last" else "last"
    return f"{checkpoint.name:<12}{trained:>7}" + "".join(
        f"{metrics[key]:>{width}.4f}" for key, width in (
            ("box/mAP50-95", 9), ("box/mAP50", 8), ("mask/mAP50-95", 10), ("mask/mAP50", 8)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["prepare", "train", "report", "score"])
    parser.add_argument("--workdir", default="/work/refrun", type=Path)
    parser.add_argument("--tfseg", default="tfseg", help="tfseg executable (its own venv)")
    parser.add_argument("--name", default="yolov8n-seg-shapes", help="run name under runs/")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-images", type=int, default=500)
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--min-size", type=int, default=240)
    parser.add_argument("--max-size", type=int, default=400)
    parser.add_argument("--data-yaml", type=Path, help="train on this YOLO-seg data.yaml as is")
    parser.add_argument("--device", default="cpu", help="cpu (the yardstick) or a GPU index")
    parser.add_argument("--model", default="yolov8n-seg.yaml",
                        help="reference architecture YAML, e.g. yolo26n-seg.yaml")
    parser.add_argument("--save-period", type=int, default=-1,
                        help="also keep weights/epochN.pt every N epochs (-1: off)")
    parser.add_argument("--cache", choices=["false", "ram", "disk"], default="false",
                        help="train: Ultralytics' image cache (default false)")
    parser.add_argument("--close-mosaic", type=int, default=10,
                        help="train: final epochs without mosaic (default 10, Ultralytics'; "
                             "0: mosaic throughout)")
    parser.add_argument("--multi-scale", type=float, default=0.0,
                        help="train: Ultralytics' multi_scale (default 0: off)")
    parser.add_argument("--hyp", action="append", default=[], metavar="KEY=VALUE",
                        help="train: another Ultralytics training argument, a number "
                             "(e.g. mixup=0.05 copy_paste=0.15 scale=0.9 for a recipe)")
    parser.add_argument("--tfseg-model", default="yolov8-seg-n",
                        help="score: tfseg's name of the trained architecture")
    parser.add_argument("--data-root", type=Path,
                        help="score: the COCO-format dataset tfseg validates on "
                             "(default: <workdir>/shapes)")
    parser.add_argument("--val-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="score: added to each tfseg val (e.g. end2end=false)")
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    run_dir = workdir / "runs" / args.name
    if args.action == "report":
        print(report(run_dir))
        return 0
    if args.action == "score":
        print(score(run_dir, args.tfseg, args.tfseg_model, args.data_root or workdir / "shapes",
                    args.imgsz, args.val_arg))
        return 0
    data_yaml = args.data_yaml or prepare_dataset(
        workdir, args.tfseg, args.train_images, args.val_images, args.min_size, args.max_size,
        args.seed)
    if args.action == "prepare":
        return 0
    offline_environment(workdir)
    start = time.time()
    run_dir = train(data_yaml, workdir, args.name, args.epochs, args.imgsz, args.batch,
                    args.workers, args.threads, args.seed, args.device, args.model,
                    args.save_period, args.cache, args.close_mosaic, args.multi_scale,
                    {key: float(value) for key, value in (h.split("=", 1) for h in args.hyp)})
    print(f"\nwall time (train + per-epoch val + final val): {time.time() - start:.0f} s")
    print(report(run_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
