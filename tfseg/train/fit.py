"""``train(cfg, run_dir)``: strategy scope -> dataset, model, compile, callbacks -> ``model.fit``.

The one function of tfseg that takes the whole RunConfig; everything below it takes plain
arguments. A run directory ends up holding::

    config.yaml              the config used (written by the CLI / runs.save_config)
    weights/last.weights.h5  EMA weights at the end of the last epoch (atomic)
    weights/best.weights.h5  EMA weights of the best mask mAP50-95 (atomic), best.txt
    backup/                  BackupAndRestore state (weights + optimizer + epoch) and ema.npz
    results.csv              one row per epoch: every loss term, lr, val metrics
    tensorboard/             scalars (same as the CSV) and prediction grids
    val/                     the last evaluation's metrics.json, plots
    workers/worker<i>/       multi-worker runs: worker i's backup/, weights/ and val/ (every
                             worker evaluates and saves; only the chief's go to the above)

Resume (``train.resume=<run dir>``): the run's own config.yaml is reloaded, BackupAndRestore
restores weights, optimizer state (hence the schedule's iteration) and the epoch, the EMA
callback restores the average saved with that backup; the epoch in progress at the kill is
trained again. The backup is kept when a run ends, so a finished run resumed with a larger
``epochs`` trains the extra epochs (the schedule and close-mosaic stretched to the new length)
and appends to results.csv; without a larger ``epochs`` it says it is finished. Only some
keys may change on resume (tfseg/train/resume.py); others are refused by name.

Under ``optimizer: auto`` the optimizer, lr0 and momentum it chose are written back into
config.yaml, so a resumed or extended run keeps them (a longer run would otherwise flip auto
from AdamW to SGD and the saved optimizer state would not fit).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfseg.config.factory import (dataset_arguments, evaluate_arguments, loss_arguments,
                                  model_arguments, optimizer_arguments, steps_per_epoch)
from tfseg.config.paths import dataset_paths
from tfseg.config.schema import RunConfig
from tfseg.data.prepare import load_split, prepare
from tfseg.errors import ConfigError, WeightsError
from tfseg.evaluate.loop import evaluate, make_detector
from tfseg.evaluate.plots import plot_results
from tfseg.loss.end_to_end_loss import EndToEndSegLoss
from tfseg.model.artifact import write_training_info
from tfseg.model.train_function import has_accelerator
from tfseg.model.yolo_seg import build_model
from tfseg.pipeline.cache import check_cache
from tfseg.pipeline.dataset import build_dataset
from tfseg.runs import WEIGHTS_DIR, run_weights, save_config, write_json
from tfseg.train.callbacks import (CloseMosaic, CommitBackup, EMAUpdate, EvaluateAndCheckpoint,
                                   EvaluatedEarlyStopping, GuardedBackupAndRestore,
                                   LearningRateLog, NaNGuard, OneToManyWeight,
                                   ResumableCSVLogger, inner_optimizer)
from tfseg.train.ema import ModelEMA
from tfseg.train.optim import make_optimizer
from tfseg.train.precision import precision_policy
from tfseg.train.progress import EpochLine
from tfseg.train.resume import finished_message, resumed_config
from tfseg.train.strategy import (cluster_workers, distributed_dataset, is_chief, make_strategy,
                                  per_replica_batch, prepare_fit, worker_index)


def train(cfg: RunConfig, run_dir: str | Path, strategy: tf.distribute.Strategy | None = None,
          verbose: int | str = "auto", extra_callbacks: list | None = None) -> dict:
    """Train a YoloSeg per ``cfg`` into ``run_dir``.

    Args:
        cfg: the run's configuration; ``cfg.train.resume`` set: continue that run.
        run_dir: the run directory (the resumed one when resuming).
        strategy: a tf.distribute strategy to use instead of ``cfg.train.strategy``
            (e.g. a TPUStrategy, see tfseg/train/strategy.py).
        verbose: Keras progress display (``"auto"``, 0, 1, 2).
        extra_callbacks: Keras callbacks run after tfseg's own (user hooks).

    Returns:
        {"epochs_trained", "batches", "updates" (optimizer updates), "stopped" ("completed" |
        "early_stopping" | "nan" | "finished": a resumed run that had trained all its epochs),
        "message", "best_epoch", "best_mask_map", "last_weights", "best_weights",
        "optimizer", "precision" (the Keras dtype policy it trained under), "seconds",
        "metrics" (last epoch logs)}.

    Raises:
        ConfigError: bad settings (batch vs replicas, unknown optimizer/strategy, no data, a
            recipe key changed on resume, a finished run without a backup).
        WeightsError: ``model.weights`` does not exist.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.resume:
        cfg = resumed_config(cfg, run_dir)
        message = finished_message(run_dir, cfg.train.epochs)
        if message:
            print(message, flush=True)
            return {"epochs_trained": 0, "stopped": "finished", "message": message}
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = strategy or make_strategy(cfg.train.strategy)
    chief = is_chief(strategy)
    per_replica_batch(cfg.train.batch, strategy)  # validates the split
    data_dir, val_json = _dataset_files(cfg)
    info = _train_info(cfg, data_dir)
    num_classes = cfg.model.num_classes or len(info["class_names"])
    if chief:  # weights/model.json: what predict and export need beside the weights
        write_training_info(run_dir / WEIGHTS_DIR, cfg, info["class_names"], info["category_ids"])
    steps = steps_per_epoch(cfg, info["num_examples"])
    cache = dataset_arguments(cfg, training=True)["cache"]
    if cache:  # what it needs, or a refusal before anything is built
        print(check_cache(cache, data_dir, "train", cfg.model.image_size,
                          max(cluster_workers(), 1)), flush=True)

    policy = precision_policy(cfg.train.mixed_precision)
    if chief and policy != "float32":
        print(f"train.mixed_precision: {policy} (variables, loss and outputs float32)", flush=True)
    with strategy.scope():
        model = _build(cfg, num_classes, policy)
        optimizer, choice = make_optimizer(
            **optimizer_arguments(cfg, steps, num_classes),
            # 1, not the replica count: Keras all-reduces gradients by SUM, and each replica's
            # loss sums over its own images (tfseg/train/strategy.py), so the summed gradient
            # already is the global batch's; make_optimizer's x replicas would make updates
            # R times too large.
            replicas=1)
        model.compile(optimizer=optimizer, jit_compile=_use_xla(cfg.train.jit_compile))
        # The average is updated inside the train step, after each optimizer update.
        ema = ModelEMA(model, inner_optimizer(model.optimizer)) if cfg.train.ema else None
        # Built now, after the EMA (the variables' order is the checkpoints'), not in fit's
        # first trace: a trace that creates variables makes TensorFlow trace the train step
        # a second time and keep both graphs (about 300 MB at 320 px).
        model.optimizer.build(model.trainable_variables)
    if chief:
        print(f"optimizer: {choice.name} lr0={choice.lr0:g} momentum={choice.momentum:g} "
              f"(batches per update {choice.accumulate})", flush=True)
        if cfg.train.optimizer == "auto":
            _record_auto_choice(cfg, run_dir, choice)

    mosaic_switch = tf.Variable(True, trainable=False, name="mosaic_enabled")
    train_data = distributed_dataset(strategy, lambda context: _train_dataset(
        cfg, data_dir, mosaic_switch, context))
    callbacks, guard, checkpoints = _callbacks(cfg, run_dir, model, ema,
                                               mosaic_switch, data_dir, val_json, info,
                                               strategy, chief)
    prepare_fit(model, strategy)  # Keras 3.15 multi-worker workarounds
    if chief and verbose != 0:
        callbacks.append(EpochLine(cfg.train.epochs, steps))
    with strategy.scope():
        # shuffle=False: the pipeline shuffles; Keras' default True only warns on a dataset.
        history = model.fit(train_data, epochs=cfg.train.epochs, steps_per_epoch=steps,
                            shuffle=False, verbose=0,
                            callbacks=callbacks + list(extra_callbacks or []))
    summary = dict(_summary(history, model, guard, checkpoints, choice, start), precision=policy)
    if chief:
        write_json(run_dir / "train_summary.json", summary)
        _report(run_dir, summary, checkpoints, verbose != 0)
    return summary


def _record_auto_choice(cfg: RunConfig, run_dir: Path, choice) -> None:
    """Write what ``optimizer: auto`` chose into the run's config.yaml (see the module doc)."""
    train = dataclasses.replace(cfg.train, optimizer=choice.name, lr0=choice.lr0,
                                momentum=choice.momentum, warmup_bias_lr=choice.warmup_bias_lr,
                                resume="")
    save_config(run_dir, dataclasses.replace(cfg, train=train))


def _report(run_dir: Path, summary: dict, checkpoints, verbose: bool) -> None:
    """results.png from results.csv; the last evaluation's table and the best epoch."""
    results = run_dir / "results.csv"
    if results.is_file():
        plot_results(results, run_dir / "results.png")
    table = run_dir / "val" / "metrics.txt"
    if not verbose:
        return
    if summary["message"]:
        print(summary["message"], flush=True)
    if table.is_file() and checkpoints.evaluated_epoch >= 0:
        print(f"\nlast evaluation (epoch {checkpoints.evaluated_epoch + 1}, "
              f"{'EMA ' if checkpoints.ema is not None else ''}weights):\n{table.read_text()}")
    if checkpoints.best_epoch >= 0:
        print(f"best: epoch {summary['best_epoch']}, mask mAP50-95 {summary['best_mask_map']:.4f}"
              f" -> {summary['best_weights']}")
    print(f"{summary['epochs_trained']} epochs in {summary['seconds']:.0f} s; curves: "
          f"{run_dir / 'results.png'}", flush=True)


def _use_xla(requested: bool) -> bool:
    """XLA for the train step only on accelerators: measured on the 2-core CPU
    (tfseg/benchmarks/train.py, yolov8-seg-n, 320 px, batch 16) XLA gave 4.5 images/s against
    4.9 without, after 70 s of compilation (185 s at 64 px)."""
    return bool(requested) and has_accelerator()


def _static_shapes(cfg: RunConfig) -> bool:
    """Whether the loss must size its work from static shapes: under XLA and on TPUs. Elsewhere
    it sizes the work by the run-time counts and traces one copy (tfseg/loss/buckets.py)."""
    return _use_xla(cfg.train.jit_compile) or bool(tf.config.list_logical_devices("TPU"))


def _dataset_files(cfg: RunConfig) -> tuple[Path, Path]:
    """(prepared records dir, val annotation JSON), the records prepared on first use."""
    paths = dataset_paths(cfg.data)
    if not paths.records.exists():
        prepare([str(paths.train_images), str(paths.val_images)],
                [str(paths.train_annotations), str(paths.val_annotations)], str(paths.records),
                splits=["train", "val"])
    return paths.records, paths.val_annotations


def _train_info(cfg: RunConfig, data_dir: Path) -> dict:
    _, info = load_split(str(data_dir), "train", decode=False)  # the info alone
    if info["num_examples"] < 1:
        raise ConfigError(f"data: the training split at {data_dir} is empty")
    return info


def _build(cfg: RunConfig, num_classes: int, policy: str) -> keras.Model:
    """The model (inside the strategy scope), with start weights, frozen layers and loss."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build_model(**model_arguments(cfg, num_classes))
    finally:
        keras.config.set_dtype_policy(previous)
    if cfg.model.weights and not cfg.train.resume:
        load_start_weights(model, cfg.model.weights)
    freeze_layers(model, cfg.train.freeze)
    model.configure_loss(model.make_loss(**loss_arguments(cfg, num_classes),
                                         static_shapes=_static_shapes(cfg)))
    return model


CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".npz")  # Ultralytics checkpoints


def load_start_weights(model: keras.Model, source: str | Path) -> list[str]:
    """Start from earlier weights; layers whose shapes differ (the class outputs of another
    class count) keep their fresh initialisation.

    Args:
        model: the built model.
        source: a ``.weights.h5`` file, a run directory (its best, else last, weights), or
            an Ultralytics checkpoint (``.pt``, ``.safetensors``, ...: converted in memory
            through tfseg.model.import_ultralytics, with the checkpoint's own class count).

    Returns:
        The paths of the variables that were *not* loaded (re-initialised).

    Raises:
        WeightsError: nothing usable at ``source``.
    """
    path = Path(source)
    if path.is_dir():
        path = run_weights(path) or path / WEIGHTS_DIR / "best.weights.h5"
    if not path.is_file():
        raise WeightsError(f"model.weights: no weights file at {path}")
    before = {v.path: v.numpy().copy() for v in model.weights}
    if path.suffix in CHECKPOINT_SUFFIXES:
        from tfseg.model.import_ultralytics import load_ultralytics

        imported, _ = load_ultralytics(path, model.model_name, model.image_size)
        with tempfile.TemporaryDirectory() as folder:
            converted = Path(folder) / "start.weights.h5"
            imported.save_weights(str(converted))
            model.load_weights(str(converted), skip_mismatch=True)
    else:
        model.load_weights(str(path), skip_mismatch=True)
    fresh = [v.path for v in model.weights if (before[v.path] == v.numpy()).all()
             and v.numpy().size > 1]
    if fresh:
        print(f"fine-tuning from {path}: {len(fresh)} tensors re-initialised "
              f"(shapes differ), e.g. {fresh[:3]}", flush=True)
    return fresh


def freeze_layers(model: keras.Model, count: int) -> list[str]:
    """Freeze the first ``count`` layers after the input (stem, down2, stage2, ... in
    the reference's module order); their batch-norm layers run in inference mode."""
    frozen = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    for layer in frozen[:count]:
        layer.trainable = False
    return [layer.name for layer in frozen[:count]]


def _train_dataset(cfg: RunConfig, data_dir: Path, mosaic_switch, context):
    # Repeat the records (or the cached samples), not the batches: the mosaic groups samples
    # in sliding windows, so a single pass yields fewer samples than records, and a small set
    # may yield no batch.
    return build_dataset(str(data_dir), "train", input_context=context, repeat=True,
                         mosaic_enabled=mosaic_switch, **dataset_arguments(cfg, training=True))


def _callbacks(cfg, run_dir, model, ema, mosaic_switch, data_dir, val_json, info,
               strategy, chief):
    """Callbacks in the order they must run at each epoch end: EMA, evaluate and checkpoint
    (adds val metrics to the logs), lr, the loggers, early stopping, and last the backup
    commit, so a backup that says "epoch e done" always has e's results.csv row and
    checkpoints (a kill before it trains e again; the CSV logger trims its row). The
    BackupAndRestore stays first in the list: its on_train_begin sets the initial epoch the
    others read."""
    # Every worker evaluates and saves, the others into their own scratch folder: Keras'
    # save_weights creates variables, which under a multi-worker strategy is a collective
    # every worker must join (a chief-only save waits for the others forever).
    own_dir = run_dir if chief else run_dir / "workers" / f"worker{worker_index(strategy)}"
    backup = own_dir / "backup"
    checkpoints = None
    tensorboard = chief and _tensorboard_available()
    guard = NaNGuard(last_good=lambda: checkpoints.describe_last())

    val = build_dataset(str(data_dir), "val", **dataset_arguments(cfg, training=False))
    settings = evaluate_arguments(cfg)
    detector = make_detector(model, settings["conf"], settings["iou"], settings["max_det"],
                             settings["agnostic"], settings["multi_label"],
                             settings["end2end"])  # traced once per run

    def evaluate_fn(weights_model):
        return evaluate(weights_model, val, val_json, info["category_ids"],
                        info["class_names"], output_dir=own_dir / "val", **settings,
                        verbose=False, detector=detector)

    checkpoints = EvaluateAndCheckpoint(evaluate_fn, own_dir / WEIGHTS_DIR, cfg.train.epochs,
                                        cfg.train.eval_period, ema, guard, write=True,
                                        on_evaluated=_prediction_images(run_dir) if tensorboard else None)
    restore = GuardedBackupAndRestore(str(backup), guard, double_checkpoint=True)
    callbacks = [guard, restore]
    if ema is not None:
        callbacks.append(EMAUpdate(ema, str(backup), guard))
    if isinstance(model.yolo_loss, EndToEndSegLoss):
        callbacks.append(OneToManyWeight(model.yolo_loss, cfg.train.epochs))
    callbacks += [checkpoints,
                  CloseMosaic(mosaic_switch, cfg.train.epochs, cfg.augment.close_mosaic),
                  LearningRateLog(),
                  ResumableCSVLogger(str(run_dir / "results.csv"), write=chief)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                     write_graph=False, update_freq="epoch"))
    if cfg.train.patience > 0:
        callbacks.append(EvaluatedEarlyStopping(checkpoints, cfg.train.patience))
    callbacks.append(CommitBackup(restore))
    return callbacks, guard, checkpoints


def _tensorboard_available() -> bool:
    """TensorBoard logs need the ``tensorboard`` package (tf.summary has no writer without it)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        print("note: the tensorboard package is not installed; no TensorBoard logs "
              "(results.csv has the same scalars)", flush=True)
        return False
    return True


def _prediction_images(run_dir: Path):
    """After each evaluation: the evaluation's prediction grid as a TensorBoard image."""
    writer = tf.summary.create_file_writer(str(run_dir / "tensorboard" / "images"))

    def log(epoch: int, metrics: dict) -> None:
        grid = run_dir / "val" / "predictions_grid.png"
        if not grid.is_file():
            return
        image = tf.image.decode_png(tf.io.read_file(str(grid)), channels=3)
        with writer.as_default():
            tf.summary.image("val_predictions", image[None], step=epoch)
        writer.flush()

    return log


def _summary(history, model, guard, checkpoints, choice, start) -> dict:
    logs = {k: v[-1] for k, v in history.history.items() if v}
    if guard.failed:
        stopped, message = "nan", guard.message
    elif len(history.epoch) and model.stop_training:
        stopped, message = "early_stopping", (f"stopped early: no mask mAP gain since epoch "
                                               f"{checkpoints.best_epoch + 1} (train.patience)")
    else:
        stopped, message = "completed", ""
    weights = checkpoints.weights_dir
    optimizer = inner_optimizer(model.optimizer)
    return {"epochs_trained": len(history.epoch), "batches": int(optimizer._iterations.numpy()),
            "updates": int(model.optimizer.iterations.numpy()),
            "stopped": stopped, "message": message, "best_epoch": checkpoints.best_epoch + 1,
            "best_mask_map": checkpoints.best_map, "last_weights": str(weights / "last.weights.h5"),
            "best_weights": str(weights / "best.weights.h5"),
            "optimizer": dataclasses.asdict(choice), "seconds": time.perf_counter() - start,
            "metrics": {k: float(v) for k, v in logs.items()}}
