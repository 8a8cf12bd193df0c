"""What each augmentation costs the training pipeline: images/s of the tf.data dataset alone.

Every variant is the default recipe (mosaic 1.0, scale 0.5, fliplr 0.5, HSV) with one
augmentation turned on at full strength (probability 1, so the figure is its worst case), plus
the yolo11-seg-x recipe (mixup 0.2, copy_paste 0.6, scale 0.9) as a whole. Each dataset is
built (traced) once; the rounds are interleaved (every variant once, then again), so the
machine's load weighs on all alike. A timed run takes a fresh iterator, lets its shuffle buffer
fill and its prefetch warm up over a few batches, times the next pass, and drops the iterator,
so no other pipeline works in the background meanwhile. Two figures per run: images/s (wall
clock) and the process's CPU milliseconds per image (all threads). On a shared machine the
wall-clock rate follows the other users' load; the CPU time per image is the cost of the
augmentation itself, so quote its ratios to the baseline.

Run from a folder where ``datasets/cocolike`` may be written (the built-in COCO-shaped set)::

    nice -n 19 python tools/measure_augment_throughput.py --size 320 --rounds 2
"""

from __future__ import annotations

import argparse
import time

VARIANTS = {
    "baseline": [],
    "flipud=0.5": ["flipud=0.5"],
    "perspective=0.001": ["perspective=0.001"],
    "copy_paste=1 (flip)": ["copy_paste=1.0"],
    "copy_paste=1 (mixup)": ["copy_paste=1.0", "copy_paste_mode=mixup"],
    "mixup=1": ["mixup=1.0"],
    "cutmix=1": ["cutmix=1.0"],
    "recipe yolo11-seg-x": ["model=yolo11-seg-x"],
}


WARMUP = 4  # batches before the clock starts: the shuffle buffer fills on the first


def datasets(size: int, batch: int) -> tuple[dict, int]:
    """{variant: repeating batch dataset}, and the batches of one pass over the records."""
    from tfseg.commands.models import load_run_config, prepared_dataset
    from tfseg.config.factory import dataset_arguments
    from tfseg.data.prepare import load_split
    from tfseg.pipeline.dataset import build_dataset

    out = {}
    for name, overrides in VARIANTS.items():
        cfg = load_run_config(["data=cocolike", f"imgsz={size}", f"batch={batch}", *overrides],
                              "train")
        cfg, paths, _ = prepared_dataset(cfg, verbose=False)
        out[name] = build_dataset(str(paths.records), "train", repeat=True,
                                  **dataset_arguments(cfg, training=True))
    _, info = load_split(str(paths.records), "train", decode=False)
    return out, info["num_examples"] // batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=0, help="timed batches a run; 0: a pass")
    args = parser.parse_args()
    pipelines, steps = datasets(args.size, args.batch)
    steps = args.batches or steps
    rates, costs = {name: [] for name in pipelines}, {name: [] for name in pipelines}
    for round_ in range(args.rounds):
        for name, dataset in pipelines.items():
            iterator = iter(dataset)
            for _ in range(WARMUP):
                next(iterator)
            start, cpu = time.perf_counter(), time.process_time()
            for _ in range(steps):
                images, _ = next(iterator)
            images.numpy()
            count = steps * args.batch
            rates[name].append(count / (time.perf_counter() - start))
            costs[name].append(1000.0 * (time.process_time() - cpu) / count)
            del iterator
            print(f"round {round_ + 1} {name}: {rates[name][-1]:.1f} images/s, "
                  f"{costs[name][-1]:.0f} CPU ms/image", flush=True)
    print(f"\n{args.size} px, batch {args.batch}, {steps} timed batches a run; per round: "
          f"images/s | CPU ms per image; the mean CPU cost's ratio to the baseline's")
    base = sum(costs["baseline"]) / len(costs["baseline"])
    for name in pipelines:
        mean = sum(costs[name]) / len(costs[name])
        print(f"{name:22s} {' '.join(f'{v:5.1f}' for v in rates[name])} | "
              f"{' '.join(f'{v:5.0f}' for v in costs[name])}   x{mean / base:.2f}")


if __name__ == "__main__":
    main()
