"""Tiled inference yardstick: COCO mAP and speed with and without tiles, and the peak memory
of one 10,000 x 10,000 image.

    nice -n 19 python tools/tile_yardstick.py --weights /work/models/runs/train/shapes256

1. writes (once) a set of large shapes images (tfseg.data.large: 10 images of 3000-4000 px,
   about 60 shapes of 20-80 px each) under ``--data``;
2. evaluates the run on it with pycocotools (tfseg.evaluate.images): the whole image
   letterboxed to S (what predict does without tiles), then each ``--tiles`` size with
   ``--overlap``; box and mask mAP50-95, mAP50 and mAP small / medium / large, and images
   per second of the detection alone (reading and scoring excluded);
3. in a fresh process of its own, generates one ``--huge`` px square image, runs tiled
   detection on it at the predict threshold (0.25) and prints the process's peak resident
   memory before and after.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

METRICS = ["mAP50-95", "mAP50", "mAP_small", "mAP_medium", "mAP_large"]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_set(root: Path, images: int, sizes: tuple[int, int], objects: int, seed: int) -> Path:
    from tfseg.data.shapes import write_shapes

    if not (root / "annotations" / "instances_val.json").is_file():
        write_shapes(str(root), num_train=0, num_val=images, seed=seed, min_size=sizes[0],
                     max_size=sizes[1], objects=objects)
    return root


def write_huge(folder: Path, size: int, objects: int) -> tuple[Path, int]:
    """One size x size image as a JPEG file (written once) and its number of shapes."""
    from tfseg.data.large import make_large_image
    from tfseg.data.shapes import write_image

    path, count = folder / f"huge_{size}.jpg", folder / f"huge_{size}.json"
    if not count.is_file():
        sample = make_large_image(0, "huge", seed=0, min_size=size, max_size=size, objects=objects)
        folder.mkdir(parents=True, exist_ok=True)
        write_image(str(path), sample.image)
        count.write_text(json.dumps(len(sample.instances)))
    return path, json.loads(count.read_text())


def evaluate_modes(weights: str, root: Path, tiles: list[int], overlap: float) -> list[dict]:
    import numpy as np

    from tfseg.evaluate.images import evaluate_images
    from tfseg.predict.backends import KerasBackend
    from tfseg.predict.loop import detect_image
    from tfseg.predict.tiles import TILE_BATCH, detect_tiled
    from tfseg.resolve import resolve_model

    loaded = resolve_model(weights)
    conf, iou, max_det = 0.001, 0.7, 300  # tfseg val's defaults
    backend = loaded.model if hasattr(loaded.model, "detect") else KerasBackend(
        loaded.model, conf, iou, max_det)
    for batch in (1, TILE_BATCH):  # trace both shapes before anything is timed
        backend.detect(np.zeros((batch, backend.image_size, backend.image_size, 3), np.uint8))
    modes = [("whole image", 0)] + [(f"tiles {t} px", t) for t in tiles]
    rows = []
    for label, tile in modes:
        spent = [0.0]

        def detect(image, tile=tile):
            start = time.perf_counter()
            if tile:
                found = detect_tiled(backend, image, conf, iou, max_det, tile, overlap)
            else:
                found = detect_image(backend, image, conf)
            spent[0] += time.perf_counter() - start
            return found

        metrics = evaluate_images(detect, root / "annotations" / "instances_val.json",
                                  root / "images" / "val", loaded.info.category_ids,
                                  loaded.info.class_names, verbose=False)
        rows.append({"mode": label, "images_per_s": metrics["images"] / spent[0],
                     **{f"{p}/{m}": metrics[f"{p}/{m}"] for p in ("box", "mask") for m in METRICS}})
        print(f"  {label}: done in {spent[0]:.0f} s", flush=True)
    return rows


def huge_image(weights: str, path: str, tile: int, overlap: float, max_det: int) -> dict:
    """Tiled detection of one image file at the predict threshold (0.25), as predict reads
    it; peak RSS with the model traced and the image read, and after detection."""
    import numpy as np

    from tfseg.predict.backends import KerasBackend
    from tfseg.predict.sources import read_image
    from tfseg.predict.tiles import TILE_BATCH, detect_tiled, tile_windows
    from tfseg.resolve import resolve_model

    loaded = resolve_model(weights)
    backend = KerasBackend(loaded.model, 0.25, 0.7, max_det)
    size = backend.image_size
    backend.detect(np.zeros((TILE_BATCH, size, size, 3), np.uint8))  # the trace, not measured
    image = read_image(path)
    before = peak_rss_mb()
    start = time.perf_counter()
    found = detect_tiled(backend, image, 0.25, 0.7, max_det, tile, overlap)
    seconds = time.perf_counter() - start
    height, width = image.shape[:2]
    return {"height": height, "width": width, "detections": len(found), "seconds": seconds,
            "passes": len(tile_windows(height, width, tile, overlap)) + 1,
            "peak_rss_mb_before": before, "peak_rss_mb_after": peak_rss_mb(),
            "image_mb": image.nbytes / 2**20}


def print_table(rows: list[dict]) -> None:
    head = f"{'mode':<14}{'img/s':>8}" + "".join(f"{'box ' + m:>16}" for m in METRICS)
    print(head + "".join(f"{'mask ' + m:>17}" for m in METRICS))
    for row in rows:
        line = f"{row['mode']:<14}{row['images_per_s']:>8.3f}"
        line += "".join(f"{row[f'box/{m}']:>16.4f}" for m in METRICS)
        print(line + "".join(f"{row[f'mask/{m}']:>17.4f}" for m in METRICS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="/work/models/runs/train/shapes256")
    parser.add_argument("--data", default="/tmp/tile_yardstick/large")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--sizes", default="3000,4000", help="min,max side of the set's images")
    parser.add_argument("--objects", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tiles", default="128,256", help="comma-separated tile sizes")
    parser.add_argument("--overlap", type=float, default=0.2)
    parser.add_argument("--huge", type=int, default=10000, help="side of the one huge image; 0: skip")
    parser.add_argument("--huge-tile", type=int, default=256)
    parser.add_argument("--huge-objects", type=int, default=500)
    parser.add_argument("--huge-file", help=argparse.SUPPRESS)  # the child process's input
    args = parser.parse_args()
    if args.huge_file:
        print(json.dumps(huge_image(args.weights, args.huge_file, args.huge_tile, args.overlap,
                                    max(300, 2 * args.huge_objects))))
        return
    sizes = tuple(int(v) for v in args.sizes.split(","))
    root = write_set(Path(args.data), args.images, sizes, args.objects, args.seed)
    tiles = [int(t) for t in args.tiles.split(",") if t]
    print(f"{args.images} images of {sizes[0]}-{sizes[1]} px, about {args.objects} shapes each: "
          f"{root}")
    print_table(evaluate_modes(args.weights, root, tiles, args.overlap))
    if args.huge:
        path, objects = write_huge(Path(args.data).parent, args.huge, args.huge_objects)
        # A process of its own: its peak memory is the huge image's alone.
        out = subprocess.run([sys.executable, __file__, "--huge-file", str(path), "--weights",
                              args.weights, "--huge-tile", str(args.huge_tile), "--overlap",
                              str(args.overlap), "--huge-objects", str(args.huge_objects)],
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"\n{result['width']} x {result['height']} image ({result['image_mb']:.0f} MB of "
              f"pixels, {objects} shapes): {result['passes']} passes (tiles of {args.huge_tile} "
              f"px and the whole image), {result['detections']} detections at 0.25 in "
              f"{result['seconds']:.1f} s; peak RSS {result['peak_rss_mb_before']:.0f} MB with "
              f"the model traced and the image read, {result['peak_rss_mb_after']:.0f} MB after "
              f"tiled detection")


if __name__ == "__main__":
    main()
