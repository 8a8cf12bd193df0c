"""Forward latency of the Keras models (batch 1, compiled tf.function) at each size."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfseg.benchmarks.timing import median_ms

MODELS = ("yolov8-seg-n", "yolo11-seg-n")


def forward_ms(name: str, size: int, runs: int, num_classes: int = 80) -> dict:
    from tfseg.model import build_model

    model = build_model(name, num_classes, size)
    images = tf.constant(np.random.default_rng(0).uniform(0, 1, (1, size, size, 3)), tf.float32)
    forward = tf.function(lambda x: model(x, training=False), jit_compile=False)
    return {"target": "model", "model": name, "image_size": size,
            "forward_ms": round(median_ms(lambda: forward(images)["prototypes"].numpy(), runs, 2), 1)}


def run(sizes: list[int], batch: int, runs: int) -> list[dict]:
    return [forward_ms(name, size, runs) for name in MODELS for size in sizes]
