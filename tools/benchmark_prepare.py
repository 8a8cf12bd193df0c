"""Measure the TFDS preparation rate on a larger ``shapes`` set and project COCO 2017.

    python tools/benchmark_prepare.py --images 300 --workers 1 2
    python tools/benchmark_prepare.py --images 200 --workers 2 --beam 2   # needs apache-beam

Writes a shapes dataset with COCO-like image sizes (400-640 px, up to 8 shapes), prepares
it with each local worker count and (``--beam N``) on Apache Beam's DirectRunner with N
worker processes, and prints images/s, instances/s and the projected time for COCO 2017
train (118,287 images, 860,001 instances) as JSON, with the load average before and after
(on a shared machine the rates are only comparable within one run). The projection scales
by the slower of the two rates; COCO masks are larger and its 450 MB JSON takes extra
seconds to parse, so treat it as a lower bound.
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
    parser.add_argument("--beam", type=int, nargs="*", default=[], metavar="N",
                        help="also prepare on Beam's DirectRunner with N worker processes")
    parser.add_argument("--keep", help="folder to keep the data in (default: a temp folder)")
    args = parser.parse_args(argv)

    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes

    root = args.keep or tempfile.mkdtemp(prefix="tfseg_bench_")
    t0 = time.perf_counter()
    paths = write_shapes(os.path.join(root, "shapes"), num_train=args.images, num_val=0,
                         min_size=400, max_size=640, num_classes=5, max_instances=8)
    report = {"images": args.images, "write_shapes_s": round(time.perf_counter() - t0, 2),
              "cpus": os.cpu_count(), "load_avg_before": os.getloadavg(), "runs": []}
    runs = [(f"local, {w} workers", {"num_workers": w}) for w in args.workers]
    runs += [(f"beam DirectRunner, {n} workers", {"beam_options": (
        f"--runner=DirectRunner --direct_num_workers={n} "
        "--direct_running_mode=multi_processing")}) for n in args.beam]
    for k, (name, options) in enumerate(runs):
        out = os.path.join(root, f"records_{k}")
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        summary = prepare(paths["train_images"], paths["train_annotations"], out,
                          splits=["train"], verbose=False, **options)
        seconds = time.perf_counter() - t0
        report["runs"].append({"run": name, **_rates(summary["splits"]["train"], seconds)})
    report["load_avg_after"] = os.getloadavg()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(report, indent=2))
    return report


def _rates(split: dict, seconds: float) -> dict:
    img_rate, inst_rate = split["images"] / seconds, split["instances"] / seconds
    projected = max(COCO_TRAIN_IMAGES / img_rate, COCO_TRAIN_INSTANCES / inst_rate)
    return {"seconds": round(seconds, 2), "images": split["images"],
            "instances": split["instances"], "images_per_s": round(img_rate, 1),
            "instances_per_s": round(inst_rate, 1),
            "coco2017_train_projected_min": round(projected / 60, 1)}


if __name__ == "__main__":
    main()
