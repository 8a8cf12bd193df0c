"""Training throughput of yolov8-seg-n: images/second of Keras fit steps, eager vs XLA.

Usage:
    tfseg benchmark train --sizes 320 640 --batch 16 --runs 10     (graph mode + the pipeline)
    python -m tfseg.benchmarks.train --modes graph,xla,bf16 --size 320   (the three step modes)

Synthetic fixed-shape batches (4 instances per image, masks at 1/4) feed ``model.fit`` with the
real loss and the recipe's optimizer, so the number measures the train step (forward, loss with
assignment, backward, update), not the input pipeline. The first ``--warmup`` steps (tracing,
XLA compilation) are excluded and reported separately. "graph" is Keras' default
``tf.function`` step (what the task calls eager), "xla" adds ``jit_compile=True``, "bf16" is
the graph step under the ``mixed_bfloat16`` policy (outputs and loss stay float32).
Prints one JSON line per mode. Besides wall time it reports the process CPU time per step
(all threads): on a shared machine wall time follows the other jobs' load, CPU time much less,
so compare variants by CPU time and ``--threads`` cores' worth of it.
"""

from __future__ import annotations

import argparse
import json
import time


def _batch(size: int, batch: int, max_instances: int = 8):
    import numpy as np

    rng = np.random.default_rng(0)
    proto = size // 4
    images = rng.random((batch, size, size, 3), dtype=np.float32)
    boxes = np.zeros((batch, max_instances, 4), np.float32)
    classes = -np.ones((batch, max_instances), np.int32)
    masks = np.zeros((batch, max_instances, proto, proto), np.uint8)
    for b in range(batch):
        for i in range(4):
            x, y = rng.integers(0, size - 96, 2)
            w, h = rng.integers(24, 96, 2)
            boxes[b, i] = [x, y, x + w, y + h]
            classes[b, i] = i % 3
            masks[b, i, y // 4:(y + h) // 4, x // 4:(x + w) // 4] = 1
    return images, {"boxes": boxes, "classes": classes, "masks": masks}


class _Timer:
    """Wall time and process CPU time (all threads) of each training batch."""

    def __init__(self):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(inner, batch, logs=None):
                inner.start, inner.cpu = time.perf_counter(), time.process_time()

            def on_train_batch_end(inner, batch, logs=None):
                self.times.append(time.perf_counter() - inner.start)
                self.cpu_times.append(time.process_time() - inner.cpu)

        self.times: list[float] = []
        self.cpu_times: list[float] = []
        self.callback = Callback()


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def measure(mode: str, model_name: str, size: int, batch: int, steps: int, warmup: int) -> dict:
    import keras
    import tensorflow as tf

    from tfseg.model.yolo_seg import build_model
    from tfseg.train.optim import make_optimizer

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if mode == "bf16" else "float32")
    model = build_model(model_name, 3, size)
    keras.mixed_precision.set_global_policy("float32")
    model.configure_loss()
    optimizer, _ = make_optimizer("sgd", lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=5e-4,
                                  warmup_epochs=3, warmup_bias_lr=0.1, cosine=False, epochs=100,
                                  steps_per_epoch=100, batch=batch, num_classes=3,
                                  nominal_batch=0)
    model.compile(optimizer=optimizer, jit_compile=(mode == "xla"))
    data = tf.data.Dataset.from_tensors(_batch(size, batch)).repeat()
    timer = _Timer()
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=warmup + steps, callbacks=[timer.callback], verbose=0)
    total = time.perf_counter() - start
    timed = timer.times[warmup:]
    per_step = _median(timed)
    cpu_per_step = _median(timer.cpu_times[warmup:])
    return {"mode": mode, "model": model_name, "size": size, "batch": batch,
            "images_per_second": round(batch / per_step, 2),
            "median_step_seconds": round(per_step, 3),
            "median_step_cpu_seconds": round(cpu_per_step, 3),
            "first_steps_seconds": round(sum(timer.times[:warmup]), 1),
            "total_seconds": round(total, 1), "timed_steps": len(timed)}


def run(sizes: list[int], batch: int, runs: int) -> list[dict]:
    """Train-step images/s of yolov8-seg-n and, in the same process, the input pipeline's
    images/s at the same size and batch: the pipeline must outrun the step."""
    import tempfile

    from tfseg.benchmarks.data import pipeline_throughput, prepare_shapes

    results = []
    for size in sizes:
        step = measure("graph", "yolov8-seg-n", size, batch, steps=runs, warmup=2)
        with tempfile.TemporaryDirectory() as root:
            pipeline = pipeline_throughput(prepare_shapes(root, size, num_images=64), size,
                                           batch, num_batches=runs)
        step.update(target="train", pipeline_images_per_second=pipeline["images_per_second"],
                    pipeline_over_train=round(pipeline["images_per_second"]
                                              / step["images_per_second"], 2))
        results.append(step)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolov8-seg-n")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="graph,xla")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    for mode in args.modes.split(","):
        print(json.dumps(measure(mode, args.model, args.size, args.batch, args.steps,
                                 args.warmup)), flush=True)


if __name__ == "__main__":
    main()
