"""What ``data.cache`` buys: the training pipeline alone, and a short whole ``tfseg train``.

1. The pipeline: images/s of the training dataset (the recipe's augmentation, mosaic on) with
   cache=false, ram and disk, epoch by epoch (one epoch = one pass over the training records;
   the first fills the cache), with the CPU time each image took. One pipeline at a time
   (false, ram, disk, and again for each further round), each dropped before the next is
   built: pipelines alive side by side keep working in the background and blur each other's
   CPU times. The disk cache is removed before each disk run, so its first epoch writes it.
   Beside them, the part a cache saves, alone: images/s of decoding, crowd removal and resizing
   one pass of the records, against reading that pass back from a filled memory cache.
2. ``tfseg train`` for a few epochs without a cache and with cache=ram, the two runs at the
   same time (on a shared machine, runs one after the other meet different loads; side by side
   they share the same cores and the same load, so their ratio is the ratio of the CPU each
   needs per image): images/s of the epochs that neither start (tracing) nor end (evaluation)
   the run, and the peak RSS from ``/usr/bin/time -v``.

Run from a folder where ``datasets/cocolike`` may be written (the built-in COCO-shaped set)::

    nice -n 19 python tools/measure_cache.py --size 320 --epochs 3
"""

from __future__ import annotations

import argparse
import gc
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = (None, "ram", "disk")


def _name(mode) -> str:
    return f"cache={mode or 'false'}"


def pipeline_rates(size: int, batch: int, epochs: int, rounds: int = 1) -> dict:
    """{mode name: [images/s of each epoch]} for the three pipelines, one after the other."""
    from tfseg.commands.models import load_run_config, prepared_dataset
    from tfseg.config.factory import dataset_arguments
    from tfseg.data.prepare import load_split
    from tfseg.pipeline.cache import check_cache, disk_cache_dir
    from tfseg.pipeline.dataset import build_dataset

    cfg = load_run_config(["data=cocolike", f"imgsz={size}", f"batch={batch}"], "train")
    cfg, paths, _ = prepared_dataset(cfg, verbose=False)
    records = str(paths.records)
    for mode in MODES[1:]:
        print(check_cache(mode, records, "train", size), flush=True)
    _, info = load_split(records, "train", decode=False)
    steps = info["num_examples"] // batch
    args = dataset_arguments(cfg, training=True)
    rates = {_name(mode): [] for mode in MODES}
    for _, mode in itertools.product(range(rounds), MODES):
        name = _name(mode)
        shutil.rmtree(disk_cache_dir(records, "train", size), ignore_errors=True)
        iterator = iter(build_dataset(records, "train", repeat=True, **dict(args, cache=mode)))
        for epoch in range(epochs):
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                images, _ = next(iterator)
            images.numpy()
            rates[name].append(steps * batch / (time.perf_counter() - start))
            cpu_ms = 1000 * (time.process_time() - cpu) / (steps * batch)
            print(f"pipeline epoch {epoch + 1} {name}: {rates[name][-1]:.1f} images/s, "
                  f"{cpu_ms:.0f} CPU ms per image", flush=True)
        del iterator
        gc.collect()
    return rates


def stage_rates(size: int, rounds: int = 2) -> dict:
    """{"decode+resize": [...], "read from ram": [...]} images/s over one pass each, in turns."""
    import tensorflow as tf

    from tfseg.commands.models import load_run_config, prepared_dataset
    from tfseg.data.prepare import load_split
    from tfseg.pipeline.dataset import _resized  # the stage the cache keeps

    cfg = load_run_config(["data=cocolike", f"imgsz={size}"], "train")
    _, paths, _ = prepared_dataset(cfg, verbose=False)
    records, info = load_split(str(paths.records), "train", decode=False)
    stages = {"decode+resize": _resized(records, size), "read from ram": _resized(records, size).cache()}
    for _ in stages["read from ram"]:  # fill it
        pass
    rates = {name: [] for name in stages}
    for _ in range(rounds):
        for name, dataset in stages.items():
            start, cpu = time.perf_counter(), time.process_time()
            for _ in dataset.prefetch(tf.data.AUTOTUNE):
                pass
            rates[name].append(info["num_examples"] / (time.perf_counter() - start))
            cpu_ms = 1000 * (time.process_time() - cpu) / info["num_examples"]
            print(f"stage {name}: {rates[name][-1]:.1f} images/s, {cpu_ms:.1f} CPU ms per image",
                  flush=True)
    return rates


def _train_command(mode, size: int, epochs: int, steps: int, workdir: Path) -> list[str]:
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "tfseg", "train", "data=cocolike",
               f"imgsz={size}", f"epochs={epochs}", f"steps_per_epoch={steps}",
               f"eval_period={epochs}", "close_mosaic=0", f"cache={mode or 'false'}",
               f"name={_name(mode).replace('=', '_')}", f"project={workdir / 'runs'}"]
    return command


def _train_result(command: list[str], stdout: str, stderr: str, code: int) -> dict:
    """Epoch times, CPU seconds (user + system, whatever the load) and peak RSS of one
    finished ``tfseg train``."""
    if code:
        raise SystemExit(f"{' '.join(command)} failed:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    epoch_seconds = [float(s) for s in re.findall(r"^epoch \d+/\d+ .*?\s([\d.]+) s\b",
                                                   stdout, re.M)]
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", stderr).group(1))
              for kind in ("User", "System"))
    cache_line = next((line for line in stdout.splitlines() if line.startswith("cache=")), "")
    return {"epoch_seconds": epoch_seconds, "cpu_seconds": cpu, "peak_rss_mb": rss / 1024,
            "cache_line": cache_line}


def train_runs(size: int, batch: int, epochs: int, steps: int) -> dict:
    """{mode name: _train_result(...)} without a cache and with cache=ram, run side by side."""
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        commands = {_name(mode): _train_command(mode, size, epochs, steps, Path(workdir))
                    for mode in (None, "ram")}
        running = {name: subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True) for name, command in commands.items()}
        for name, process in running.items():
            stdout, stderr = process.communicate()
            run = _train_result(commands[name], stdout, stderr, process.returncode)
            middle = run["epoch_seconds"][1:-1] or run["epoch_seconds"][-1:]
            run["images_per_second"] = steps * batch * len(middle) / sum(middle)
            results[name] = run
            print(f"train {name}: epochs {run['epoch_seconds']} s, "
                  f"{run['images_per_second']:.2f} images/s (epochs 2..{epochs - 1}), CPU "
                  f"{run['cpu_seconds']:.0f} s, peak RSS {run['peak_rss_mb']:.0f} MB "
                  f"{run['cache_line']}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=3, help="pipeline epochs")
    parser.add_argument("--rounds", type=int, default=1, help="pipeline runs of each cache mode")
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--stages-only", action="store_true", help="only the stage measure")
    args = parser.parse_args()
    stages = stage_rates(args.size)
    print("stage decode+resize: {:.1f} images/s, read from ram: {:.1f} images/s (best of "
          "{} passes each)".format(max(stages["decode+resize"]), max(stages["read from ram"]),
                                   len(stages["decode+resize"])))
    if args.stages_only:
        return
    rates = pipeline_rates(args.size, args.batch, args.epochs, args.rounds)
    base = rates[_name(None)]
    for name, values in rates.items():
        ratios = ", ".join(f"{v / b:.2f}" for v, b in zip(values, base))
        print(f"pipeline {name}: " + ", ".join(f"{v:.1f}" for v in values)
              + f" images/s by epoch; x cache=false: {ratios}")
    if args.skip_train:
        return
    runs = train_runs(args.size, args.batch, args.train_epochs, args.train_steps)
    plain, cached = runs[_name(None)], runs[_name("ram")]
    print(f"train cache=ram / cache=false: images/s x{cached['images_per_second'] / plain['images_per_second']:.2f}, "
          f"CPU seconds x{cached['cpu_seconds'] / plain['cpu_seconds']:.2f}, "
          f"peak RSS {cached['peak_rss_mb']:.0f} / {plain['peak_rss_mb']:.0f} MB "
          f"(x{cached['peak_rss_mb'] / plain['peak_rss_mb']:.2f})")


if __name__ == "__main__":
    main()
