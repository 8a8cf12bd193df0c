"""Throughput of the full training pipeline (decode, mosaic, affine, flip, HSV, targets).

Times ``build_dataset`` batches of a prepared dataset after a warm-up: images/second and the
peak RSS. ``tfseg benchmark data`` measures the built-in ``cocolike`` set (COCO's image sizes
and instance counts) unless ``data=`` names another.
"""

from __future__ import annotations

import time

from tfseg.benchmarks.timing import peak_rss_mb


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


def run(sizes: list[int], batch: int, runs: int, overrides: list[str] | None = None) -> list[dict]:
    """Pipeline images/s and peak RSS per size on a dataset of ``tfseg train``'s config:
    the built-in ``cocolike`` set (COCO-shaped, M = 100) unless ``data=`` says otherwise."""
    from tfseg.commands.models import load_run_config, prepared_dataset

    cfg = load_run_config(["data=cocolike", *(overrides or [])], "train")
    cfg, paths, _ = prepared_dataset(cfg, verbose=False)
    results = []
    for size in sizes:
        result = pipeline_throughput(str(paths.records), size, batch, num_batches=runs,
                                     max_instances=cfg.data.max_instances)
        results.append(dict(result, data=cfg.data.name))
    return results
