"""Where the start of a training run goes: seconds from launch to the first step, by phase.

Runs the training of ``tfseg train`` in this process (the same config loading, dataset check
and ``tfseg.train.fit.train``) with timers around its phases and a callback that notes each
step and evaluation, then prints one line per phase:

    python tools/measure_start.py data=cocolike imgsz=320 epochs=2 steps_per_epoch=6

Phases: importing TensorFlow, the dataset check, building the model, the EMA and optimizer
slots, building the training pipeline (tracing its map functions), the callbacks (the
evaluation pipeline), the first step (tracing the train step and the optimizer update, and
waiting for the first batch), a steady step (median of the rest), the first evaluation (with
its tracing) and a later one. Any ``tfseg train`` key=value may be given.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time

START = time.perf_counter()
import tensorflow as tf  # noqa: E402  (the import is the first phase measured)

IMPORTED = time.perf_counter()


def _timed(module, name: str, spent: dict) -> None:
    """Replace ``module.name`` by a wrapper adding its wall time to ``spent[name]``."""
    original = getattr(module, name)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - began

    setattr(module, name, wrapper)


def main(overrides: list[str]) -> None:
    import keras

    import tfseg.train.fit as fit
    from tfseg.commands.models import load_run_config, prepared_dataset
    from tfseg.runs import new_run_dir, save_config

    spent: dict[str, float] = {}
    for name in ("_build", "ModelEMA", "distributed_dataset", "_callbacks"):
        _timed(fit, name, spent)
    marks: dict[str, list[float]] = {"step": [], "eval": []}

    class Marks(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks["fit"] = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            marks["step"].append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):  # runs after tfseg's evaluation callback
            marks["eval"].append(time.perf_counter())

    began = time.perf_counter()
    cfg = load_run_config(overrides, "train")
    cfg, _, _ = prepared_dataset(cfg, verbose=False)
    spent["dataset check"] = time.perf_counter() - began
    run_dir = new_run_dir(cfg.project, "train", cfg.name)
    save_config(run_dir, cfg)
    fit.train(cfg, run_dir, verbose=0, extra_callbacks=[Marks()])

    steps, evals = marks["step"], marks["eval"]
    per_epoch = len(steps) // max(len(evals), 1)
    first_step = steps[0] - marks["fit"][0]
    steady = statistics.median(b - a for a, b in zip(steps[1:per_epoch], steps[2:per_epoch]))
    evaluation = [evals[i] - steps[(i + 1) * per_epoch - 1] for i in range(len(evals))]
    rows = [("import TensorFlow", IMPORTED - START),
            ("dataset check", spent["dataset check"]),
            ("build the model", spent["_build"]),
            ("EMA copy", spent.get("ModelEMA", 0.0)),
            ("training pipeline", spent["distributed_dataset"]),
            ("callbacks (evaluation pipeline)", spent["_callbacks"]),
            ("first step (trace + first batch)", first_step),
            ("launch to first step done", steps[0] - START),
            ("steady step (median)", steady),
            ("first evaluation (with its trace)", evaluation[0])]
    if len(evaluation) > 1:
        rows.append(("later evaluation", evaluation[-1]))
    print(f"processor: {_processor()}; TensorFlow {tf.__version__}; {' '.join(overrides)}")
    for label, seconds in rows:
        print(f"{label:36s} {seconds:7.1f} s")


def _processor() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main(sys.argv[1:])
