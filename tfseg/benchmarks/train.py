"""Training speed and memory as ``tfseg train`` runs them, then the train step alone.

Usage:
    tfseg benchmark train --sizes 320 640 --batch 16 --epochs 3            (cocolike, M = 100)
    tfseg benchmark train --sizes 320 --batch 16 data=shapes                (any dataset)
    tfseg benchmark train --sizes 320 --batch 16 data.cache=ram             (decoded-image cache)
    tfseg benchmark train --sizes 320 --batch 16 --padding                  (M = 100 against 16)
    python -m tfseg.benchmarks.train --modes graph,xla,bf16 --size 320      (step modes)

Whole epochs: each size runs ``tfseg.train.fit.train`` (what ``tfseg train`` calls) on the
dataset, in a fresh child process so its peak resident memory is its own: the input pipeline,
the train step, the callbacks and the per-epoch COCO evaluation share the same cores, as in a
user's run. The default dataset is the built-in ``cocolike`` set (COCO's image sizes, instance
counts, small objects and crowds; M = 100), written on first use; ``data=`` takes any dataset
and every other ``key=value`` of ``tfseg train`` applies. Mosaic stays on (``close_mosaic=0``),
as in all but the last epochs of a real run. The first epoch (tracing, and with ``cache=ram``
or ``disk`` the filling of the cache) is reported apart, as are the seconds from the training
call to the first epoch's start (model, optimizer, pipeline and callbacks built); the others
give images/s over whole epochs (evaluation included), images/s of the training passes alone,
the process CPU seconds per step (all threads: pipeline and step) and the evaluation's
seconds. ``cache`` in the result is the ``data.cache`` mode the training ran with.

Step alone, second figure: the same model and loss, under the precision the training ran
under (``precision`` in the result: ``mixed_bfloat16`` on bfloat16 CPUs by default), fitted on
batches of the same pipeline held in memory, so no input work competes. With ``--padding``,
also on synthetic batches of 4 instances per image padded to M = 100 and to M = 16 (the
padding must cost nothing; two more traces of the step, so only on request).
``train.mixed_precision=false`` measures float32.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import time

# The dtype policy of each step mode; the others run float32.
STEP_POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}

# What every whole-epoch measurement runs with unless the command line says otherwise.
DEFAULTS = ("data=cocolike", "close_mosaic=0")


def _batch(size: int, batch: int, max_instances: int = 8):
    import numpy as np

    rng = np.random.default_rng(0)
    proto = size // 4
    images = rng.random((batch, size, size, 3), dtype=np.float32)
    boxes = np.zeros((batch, max_instances, 4), np.float32)
    classes = -np.ones((batch, max_instances), np.int32)
    masks = np.zeros((batch, max_instances, proto, proto), np.uint8)
    longest = min(96, size - 32)  # sides 24-96 px, smaller below 128 px
    for b in range(batch):
        for i in range(4):
            x, y = rng.integers(0, size - longest, 2)
            w, h = rng.integers(min(24, longest // 4), longest, 2)
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


def _epoch_timer():
    """A Keras callback recording, per epoch: its start (``time.perf_counter``), wall and CPU
    seconds of the whole epoch (the epoch-end evaluation included: it runs after tfseg's
    callbacks) and of the training pass."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epochs: list[dict] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.cpu = time.perf_counter(), time.process_time()
            self.steps = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps = batch + 1
            self.pass_end, self.pass_cpu = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            now, cpu = time.perf_counter(), time.process_time()
            self.epochs.append({"started": self.start, "seconds": now - self.start,
                                "cpu": cpu - self.cpu,
                                "train_seconds": self.pass_end - self.start,
                                "train_cpu": self.pass_cpu - self.cpu, "steps": self.steps,
                                "dropped": float((logs or {}).get("dropped_instances", 0.0))})

    return EpochTimer()


def step_model(mode: str, model_name: str, size: int, batch: int, num_classes: int = 3):
    """The model ``measure`` times: built under ``mode``'s policy, compiled as ``tfseg train``
    compiles it (SGD, the optimizer built before the first trace)."""
    import keras

    from tfseg.model.yolo_seg import build_model
    from tfseg.train.optim import make_optimizer

    keras.mixed_precision.set_global_policy(STEP_POLICIES.get(mode, "float32"))
    model = build_model(model_name, num_classes, size)
    keras.mixed_precision.set_global_policy("float32")
    model.configure_loss(model.make_loss(static_shapes=(mode == "xla")))  # as tfseg train does
    optimizer, _ = make_optimizer("sgd", lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=5e-4,
                                  warmup_epochs=3, warmup_bias_lr=0.1, cosine=False, epochs=100,
                                  steps_per_epoch=100, batch=batch, num_classes=num_classes,
                                  nominal_batch=0)
    model.compile(optimizer=optimizer, jit_compile=(mode == "xla"))
    model.optimizer.build(model.trainable_variables)  # before the trace, as tfseg train does
    return model


def measure(mode: str, model_name: str, size: int, batch: int, steps: int, warmup: int,
            data=None, num_classes: int = 3, max_instances: int = 8, model=None) -> dict:
    """Images/s of the train step alone (``model.fit`` on batches held in memory).

    Args:
        mode: "graph" (Keras' tf.function step), "xla" (jit_compile), "bf16"
            (mixed_bfloat16 policy) or "fp16" (mixed_float16; Keras adds its loss scaling).
        data: a dataset of (images, targets) batches to repeat; None: one synthetic batch of 4
            instances per image padded to ``max_instances``.
        num_classes: C of the model (the dataset's).
        model: ``step_model``'s model of the same arguments, timed again (another
            ``max_instances`` retraces its step, within the ``warmup`` steps); None: one is
            built.
    """
    import tensorflow as tf

    if model is None:
        model = step_model(mode, model_name, size, batch, num_classes)
    if data is None:
        data = tf.data.Dataset.from_tensors(_batch(size, batch, max_instances))
    timer = _Timer()
    start = time.perf_counter()
    model.fit(data.repeat(), epochs=1, steps_per_epoch=warmup + steps, shuffle=False,
              callbacks=[timer.callback], verbose=0)
    total = time.perf_counter() - start
    per_step = statistics.median(timer.times[warmup:])
    return {"mode": mode, "model": model_name, "size": size, "batch": batch,
            "images_per_second": round(batch / per_step, 2),
            "median_step_seconds": round(per_step, 3),
            "median_step_cpu_seconds": round(statistics.median(timer.cpu_times[warmup:]), 3),
            "first_steps_seconds": round(sum(timer.times[:warmup]), 1),
            "total_seconds": round(total, 1), "timed_steps": steps}


def _whole_epochs(size: int, batch: int, epochs: int, overrides: list[str], threads: int,
                  step_runs: int, padding: bool = False) -> dict:
    """One size, in this (child) process: `tfseg train`'s epochs, then the step alone."""
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    from tfseg.benchmarks.timing import peak_rss_mb
    from tfseg.commands.models import load_run_config, prepared_dataset
    from tfseg.config.factory import cache_mode
    from tfseg.pipeline.dataset import build_dataset
    from tfseg.runs import new_run_dir
    from tfseg.train.fit import train

    with tempfile.TemporaryDirectory() as project:
        cfg = load_run_config([*DEFAULTS, *overrides, f"imgsz={size}", f"batch={batch}",
                               f"epochs={epochs}", f"project={project}"], "train")
        cfg, paths, classes = prepared_dataset(cfg, verbose=False)
        timer = _epoch_timer()
        called = time.perf_counter()
        summary = train(cfg, new_run_dir(project, "train"), verbose=0, extra_callbacks=[timer])
        peak = peak_rss_mb()
    # The step alone runs under the precision the training ran under.
    policy = summary["precision"]
    step_mode = {v: k for k, v in STEP_POLICIES.items()}.get(policy, "graph")
    first, steady = timer.epochs[0], timer.epochs[1:] or timer.epochs
    steps = sum(e["steps"] for e in steady)
    result = {
        "target": "train", "data": cfg.data.name, "data_root": cfg.data.root,
        "model": cfg.model.name, "size": size,
        "batch": batch, "precision": policy, "max_instances": cfg.data.max_instances,
        "cache": cache_mode(cfg.data) or "false",
        "epochs_timed": len(steady),
        "images_per_second": round(steps * batch / sum(e["seconds"] for e in steady), 2),
        "train_pass_images_per_second": round(
            steps * batch / sum(e["train_seconds"] for e in steady), 2),
        "cpu_seconds_per_step": round(sum(e["train_cpu"] for e in steady) / steps, 3),
        "epoch_seconds": round(statistics.median(e["seconds"] for e in steady), 1),
        "eval_seconds": round(statistics.median(e["seconds"] - e["train_seconds"]
                                                for e in steady), 1),
        "setup_seconds": round(first["started"] - called, 1),
        "first_epoch_seconds": round(first["seconds"], 1),
        "dropped_instances_per_epoch": statistics.mean(e["dropped"] for e in timer.epochs),
        "peak_rss_mb": peak,
    }
    real = build_dataset(str(paths.records), "train", size, batch, cfg.data.max_instances,
                         training=True, seed=0, mosaic_p=1.0).take(4).cache()
    num_classes = len(classes["class_names"])
    # One model for the three timings: built and its step traced once per batch shape.
    model = step_model(step_mode, cfg.model.name, size, batch, num_classes)
    step = measure(step_mode, cfg.model.name, size, batch, step_runs, 2, data=real,
                   num_classes=num_classes, model=model)
    result["step_images_per_second"] = step["images_per_second"]
    result["step_cpu_seconds"] = step["median_step_cpu_seconds"]
    for m in (100, 16) if padding else ():
        synthetic = measure(step_mode, cfg.model.name, size, batch, step_runs, 2,
                            num_classes=num_classes, max_instances=m, model=model)
        result[f"step_synthetic_m{m}_images_per_second"] = synthetic["images_per_second"]
    return result


def _child(queue, *args) -> None:
    queue.put(_whole_epochs(*args))


def run(sizes: list[int], batch: int, runs: int, overrides: list[str] | None = None,
        epochs: int = 3, threads: int = 2, padding: bool = False):
    """Yield one result per size (see the module docstring), each from a fresh process."""
    context = multiprocessing.get_context("spawn")
    for size in sizes:
        queue = context.Queue()
        process = context.Process(target=_child, args=(queue, size, batch, epochs,
                                                       list(overrides or []), threads, runs,
                                                       padding))
        process.start()
        yield _result_of(process, queue, size)


def _result_of(process, queue, size: int) -> dict:
    """The child's result; a clear error, not a hang, when it dies without one."""
    import queue as queues

    from tfseg.errors import TfsegError

    while True:
        alive = process.is_alive()  # read before the wait: a result sent just before exit
        try:                        # is then still collected by this last get
            result = queue.get(timeout=1.0)
        except queues.Empty:
            if not alive:
                raise TfsegError(f"benchmark train: the measurement at {size} px failed "
                                 f"(exit code {process.exitcode}; its traceback is above)")
            continue
        process.join()
        return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="train-step modes on synthetic batches")
    parser.add_argument("--model", default="yolov8-seg-n")
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-instances", type=int, default=100)
    parser.add_argument("--modes", default="graph,xla")
    args = parser.parse_args(argv)

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    for mode in args.modes.split(","):
        print(json.dumps(measure(mode, args.model, args.size, args.batch, args.steps,
                                 args.warmup, max_instances=args.max_instances)), flush=True)


if __name__ == "__main__":
    main()
