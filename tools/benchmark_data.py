"""Throughput of the full training pipeline (decode, mosaic, affine, flip, HSV, targets).

Writes a `shapes` dataset with images near the target size, prepares its records, then times
``build_dataset`` batches (after a warm-up) and reports images/second and the peak RSS.

    python tools/benchmark_data.py --sizes 320 640 --batches 20 --batch 8
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time


def prepare_shapes(root: str, image_size: int, num_images: int, seed: int = 0) -> str:
    """Write and prepare a shapes dataset of images about ``image_size`` pixels; returns records dir."""
    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes

    paths = write_shapes(root, num_train=num_images, num_val=1, seed=seed,
                         min_size=image_size * 3 // 4, max_size=image_size, max_instances=6)
    out = f"{root}/records"
    prepare([paths["train_images"]], [paths["train_annotations"]], out, splits=["train"],
            num_workers=1, verbose=False)
    return out


def benchmark_data(data_dir: str, image_size: int, batch_size: int = 8, num_batches: int = 20,
                   warmup: int = 3, max_instances: int = 100, seed: int = 0) -> dict:
    """Images/second of the training pipeline with mosaic on (probability 1).

    Returns:
        {"image_size", "batch_size", "batches", "seconds", "images_per_second", "peak_rss_mb"}.
    """
    from tfseg.pipeline.dataset import build_dataset

    dataset = build_dataset(data_dir, "train", image_size, batch_size, max_instances,
                            training=True, seed=seed, mosaic_p=1.0, degrees=5.0, shear=2.0).repeat()
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(num_batches):
        images, _ = next(iterator)
    images.numpy()
    seconds = time.perf_counter() - start
    return {"image_size": image_size, "batch_size": batch_size, "batches": num_batches,
            "seconds": round(seconds, 3),
            "images_per_second": round(num_batches * batch_size / seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--images", type=int, default=64, help="images in the benchmark dataset")
    args = parser.parse_args(argv)
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as root:
            data_dir = prepare_shapes(root, size, args.images)
            print(json.dumps(benchmark_data(data_dir, size, args.batch, args.batches)), flush=True)


if __name__ == "__main__":
    main()
