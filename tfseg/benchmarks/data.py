"""Throughput of the full training pipeline (decode, mosaic, affine, flip, HSV, targets).

Writes a ``shapes`` dataset with images near the target size, prepares its records, then
times ``build_dataset`` batches after a warm-up: images/second and the peak RSS.
"""

from __future__ import annotations

import tempfile
import time

from tfseg.benchmarks.timing import peak_rss_mb


def prepare_shapes(root: str, image_size: int, num_images: int, seed: int = 0) -> str:
    """Write and prepare a shapes dataset of images about ``image_size`` pixels; the records dir."""
    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes

    paths = write_shapes(root, num_train=num_images, num_val=1, seed=seed,
                         min_size=image_size * 3 // 4, max_size=image_size, max_instances=6)
    out = f"{root}/records"
    prepare([paths["train_images"]], [paths["train_annotations"]], out, splits=["train"],
            num_workers=1, verbose=False)
    return out


def pipeline_throughput(data_dir: str, image_size: int, batch_size: int = 8,
                        num_batches: int = 20, warmup: int = 3, max_instances: int = 100,
                        seed: int = 0) -> dict:
    """Images/second of the training pipeline with mosaic always on."""
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
    return {"target": "data", "image_size": image_size, "batch": batch_size,
            "batches": num_batches, "images_per_second": round(num_batches * batch_size / seconds, 1),
            "peak_rss_mb": peak_rss_mb()}


def run(sizes: list[int], batch: int, runs: int) -> list[dict]:
    results = []
    for size in sizes:
        with tempfile.TemporaryDirectory() as root:
            data_dir = prepare_shapes(root, size, num_images=64)
            results.append(pipeline_throughput(data_dir, size, batch, num_batches=runs))
    return results
