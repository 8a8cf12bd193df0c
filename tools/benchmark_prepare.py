"""Measure the TFDS preparation rate on a larger ``shapes`` set and project COCO 2017.

    python tools/benchmark_prepare.py --images 300 --workers 1 2

Writes a shapes dataset with COCO-like image sizes (400-640 px, up to 8 shapes), prepares
it with each worker count, and prints images/s, instances/s and the projected time for
COCO 2017 train (118,287 images, 860,001 instances) as JSON. The projection scales by the
slower of the two rates; COCO masks are larger and its 450 MB JSON takes extra seconds to
parse, so treat it as a lower bound.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

COCO_TRAIN_IMAGES, COCO_TRAIN_INSTANCES = 118_287, 860_001


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--keep", help="folder to keep the data in (default: a temp folder)")
    args = parser.parse_args(argv)

    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes

    root = args.keep or tempfile.mkdtemp(prefix="tfseg_bench_")
    t0 = time.perf_counter()
    paths = write_shapes(os.path.join(root, "shapes"), num_train=args.images, num_val=0,
                         min_size=400, max_size=640, num_classes=5, max_instances=8)
    report = {"images": args.images, "write_shapes_s": round(time.perf_counter() - t0, 2),
              "cpus": os.cpu_count(), "runs": []}
    for workers in args.workers:
        out = os.path.join(root, f"records_{workers}")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        summary = prepare(paths["train_images"], paths["train_annotations"], out,
                          splits=["train"], num_workers=workers, verbose=False)
        seconds = time.perf_counter() - t0
        split = summary["splits"]["train"]
        img_rate, inst_rate = split["images"] / seconds, split["instances"] / seconds
        projected = max(COCO_TRAIN_IMAGES / img_rate, COCO_TRAIN_INSTANCES / inst_rate)
        report["runs"].append({
            "workers": workers, "seconds": round(seconds, 2), "instances": split["instances"],
            "images_per_s": round(img_rate, 1), "instances_per_s": round(inst_rate, 1),
            "coco2017_train_projected_min": round(projected / 60, 1)})
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
