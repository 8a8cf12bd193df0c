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
trained again.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import tensorflow as tf

from tfseg.config.load import load_config
from tfseg.config.paths import dataset_paths
from tfseg.config.schema import RunConfig
from tfseg.data.prepare import load_split, prepare
from tfseg.errors import ConfigError, WeightsError
from tfseg.evaluate.loop import evaluate
from tfseg.loss.yolo_seg_loss import YoloSegLoss
from tfseg.model.artifact import write_training_info
from tfseg.model.yolo_seg import build_model
from tfseg.pipeline.dataset import build_dataset
from tfseg.runs import CONFIG_FILE, WEIGHTS_DIR, write_json
from tfseg.train.callbacks import (CloseMosaic, EMAUpdate, EvaluateAndCheckpoint,
                                   GuardedBackupAndRestore, LearningRateLog, NaNGuard,
                                   ResumableCSVLogger, inner_optimizer)
from tfseg.train.ema import ModelEMA
from tfseg.train.optim import make_optimizer, precision_policy
from tfseg.train.strategy import (distributed_dataset, is_chief, make_strategy,
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
        {"epochs_trained", "batches", "updates" (optimizer updates), "stopped" ("completed" | "early_stopping" | "nan"),
        "message", "best_epoch", "best_mask_map", "last_weights", "best_weights",
        "optimizer", "seconds", "metrics" (last epoch logs)}.

    Raises:
        ConfigError: bad settings (batch vs replicas, unknown optimizer/strategy, no data).
        WeightsError: ``model.weights`` does not exist.
    """
    start = time.perf_counter()
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.resume:
        cfg = _resumed_config(cfg, run_dir)
    keras.utils.set_random_seed(cfg.train.seed)
    strategy = strategy or make_strategy(cfg.train.strategy)
    chief = is_chief(strategy)
    per_replica_batch(cfg.train.batch, strategy)  # validates the split
    data_dir, val_json = _dataset_files(cfg)
    info = _train_info(cfg, data_dir)
    num_classes = cfg.model.num_classes or len(info["class_names"])
    if chief:  # weights/model.json: what predict and export need beside the weights
        write_training_info(run_dir / WEIGHTS_DIR, cfg, info["class_names"], info["category_ids"])
    steps = cfg.train.steps_per_epoch or info["num_examples"] // cfg.train.batch
    if steps < 1:
        raise ConfigError(f"train.batch: {cfg.train.batch} is larger than the "
                          f"{info['num_examples']} training images (or set train.steps_per_epoch)")

    policy = precision_policy(cfg.train.mixed_precision)
    with strategy.scope():
        model = _build(cfg, num_classes, policy)
        optimizer, choice = make_optimizer(
            cfg.train.optimizer, lr0=cfg.train.lr0, lrf=cfg.train.lrf,
            momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay,
            warmup_epochs=cfg.train.warmup_epochs, warmup_bias_lr=cfg.train.warmup_bias_lr,
            cosine=cfg.train.cosine, epochs=cfg.train.epochs, steps_per_epoch=steps,
            batch=cfg.train.batch, num_classes=num_classes, clip_norm=cfg.train.clip_norm,
            # 1, not the replica count: Keras all-reduces gradients by SUM, and each replica's
            # loss sums over its own images (tfseg/train/strategy.py), so the summed gradient
            # already is the global batch's; make_optimizer's x replicas would make updates
            # R times too large.
            replicas=1,
            nominal_batch=cfg.train.nominal_batch)
        model.compile(optimizer=optimizer, jit_compile=_use_xla(cfg.train.jit_compile))
    if chief:
        print(f"optimizer: {choice}", flush=True)

    mosaic_switch = tf.Variable(True, trainable=False, name="mosaic_enabled")
    train_data = distributed_dataset(strategy, lambda context: _train_dataset(
        cfg, data_dir, mosaic_switch, context))
    ema = ModelEMA(model) if cfg.train.ema else None
    callbacks, guard, checkpoints = _callbacks(cfg, run_dir, model, ema,
                                               mosaic_switch, data_dir, val_json, info,
                                               strategy, chief)
    prepare_fit(model, strategy)  # Keras 3.15 multi-worker workarounds
    with strategy.scope():
        history = model.fit(train_data, epochs=cfg.train.epochs, steps_per_epoch=steps,
                            callbacks=callbacks + list(extra_callbacks or []),
                            verbose=verbose if chief else 0)
    summary = _summary(history, model, guard, checkpoints, choice, start)
    if chief:
        write_json(run_dir / "train_summary.json", summary)
    return summary


def _use_xla(requested: bool) -> bool:
    """XLA for the train step only on accelerators: measured on the 2-core CPU
    (tfseg/benchmarks/train.py, yolov8-seg-n, 320 px, batch 16) XLA gave 4.5 images/s against
    4.9 without, after 70 s of compilation (185 s at 64 px)."""
    return bool(requested) and bool(tf.config.list_physical_devices("GPU")
                                    or tf.config.list_logical_devices("TPU"))


def _resumed_config(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """The resumed run's own config (its recipe must not change midway), resume kept."""
    saved = run_dir / CONFIG_FILE
    if not saved.is_file():
        raise ConfigError(f"train.resume: {run_dir} has no {CONFIG_FILE}; is it a run directory?")
    resumed = load_config([f"cfg={saved}"], section="train")
    resumed.train.resume = str(run_dir)
    return resumed


def _dataset_files(cfg: RunConfig) -> tuple[Path, Path]:
    """(prepared records dir, val annotation JSON), the records prepared on first use."""
    paths = dataset_paths(cfg.data)
    if not paths.records.exists():
        prepare([str(paths.train_images), str(paths.val_images)],
                [str(paths.train_annotations), str(paths.val_annotations)], str(paths.records),
                splits=["train", "val"])
    return paths.records, paths.val_annotations


def _train_info(cfg: RunConfig, data_dir: Path) -> dict:
    _, info = load_split(str(data_dir), "train")
    if info["num_examples"] < 1:
        raise ConfigError(f"data: the training split at {data_dir} is empty")
    return info


def _build(cfg: RunConfig, num_classes: int, policy: str) -> keras.Model:
    """The model (inside the strategy scope), with start weights, frozen layers and loss."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        model = build_model(cfg.model.name, num_classes, cfg.model.image_size)
    finally:
        keras.config.set_dtype_policy(previous)
    if cfg.model.weights and not cfg.train.resume:
        load_start_weights(model, cfg.model.weights)
    freeze_layers(model, cfg.train.freeze)
    model.configure_loss(YoloSegLoss(cfg.model.image_size, num_classes, box_gain=cfg.train.box,
                                     cls_gain=cfg.train.cls, dfl_gain=cfg.train.dfl))
    return model


def load_start_weights(model: keras.Model, source: str | Path) -> list[str]:
    """Start from earlier weights; layers whose shapes differ (the class outputs of another
    class count) keep their fresh initialisation.

    Args:
        model: the built model.
        source: a ``.weights.h5`` file, or a run directory (its best, else last, weights).

    Returns:
        The paths of the variables that were *not* loaded (re-initialised).

    Raises:
        WeightsError: nothing usable at ``source``.
    """
    path = Path(source)
    if path.is_dir():
        candidates = [path / WEIGHTS_DIR / n for n in ("best.weights.h5", "last.weights.h5")]
        path = next((c for c in candidates if c.is_file()), candidates[0])
    if not path.is_file():
        raise WeightsError(f"model.weights: no weights file at {path}")
    before = {v.path: v.numpy().copy() for v in model.weights}
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
    aug = cfg.augment
    # Repeat the records, not the batches: the mosaic groups samples in sliding windows, so a
    # single pass yields fewer samples than records, and a small set may yield no batch.
    records, _ = load_split(str(data_dir), "train")
    return build_dataset(records.repeat(), "train", cfg.model.image_size, cfg.train.batch,
                         cfg.data.max_instances, training=True, seed=cfg.train.seed,
                         input_context=context, mosaic_p=aug.mosaic, mosaic_enabled=mosaic_switch,
                         degrees=aug.degrees, translate=aug.translate, scale=aug.scale,
                         shear=aug.shear, fliplr=aug.fliplr, hsv_h=aug.hsv_h, hsv_s=aug.hsv_s,
                         hsv_v=aug.hsv_v, min_area=aug.min_area)


def _callbacks(cfg, run_dir, model, ema, mosaic_switch, data_dir, val_json, info,
               strategy, chief):
    """Callbacks in the order they must run at each epoch end: back up, EMA, evaluate and
    checkpoint (adds val metrics to the logs), lr, then the loggers and early stopping."""
    # Every worker evaluates and saves, the others into their own scratch folder: Keras'
    # save_weights creates variables, which under a multi-worker strategy is a collective
    # every worker must join (a chief-only save waits for the others forever).
    own_dir = run_dir if chief else run_dir / "workers" / f"worker{worker_index(strategy)}"
    backup = own_dir / "backup"
    checkpoints = None
    tensorboard = chief and _tensorboard_available()
    guard = NaNGuard(last_good=lambda: checkpoints.describe_last())

    def evaluate_fn(weights_model):
        val = build_dataset(str(data_dir), "val", cfg.model.image_size, cfg.eval.batch,
                            cfg.data.max_instances, training=False)
        return evaluate(weights_model, val, val_json, info["category_ids"],
                        info["class_names"], output_dir=own_dir / "val", conf=cfg.eval.conf,
                        iou=cfg.eval.iou, max_det=cfg.eval.max_det, agnostic=cfg.eval.agnostic,
                        multi_label=cfg.eval.multi_label,
                        plots=True, verbose=False)

    checkpoints = EvaluateAndCheckpoint(evaluate_fn, own_dir / WEIGHTS_DIR, cfg.train.epochs,
                                        cfg.train.eval_period, ema, guard, write=True,
                                        on_evaluated=_prediction_images(run_dir) if tensorboard else None)
    callbacks = [guard, GuardedBackupAndRestore(str(backup), guard, double_checkpoint=True)]
    if ema is not None:
        callbacks.append(EMAUpdate(ema, str(backup), guard))
    callbacks += [checkpoints,
                  CloseMosaic(mosaic_switch, cfg.train.epochs, cfg.augment.close_mosaic),
                  LearningRateLog(),
                  ResumableCSVLogger(str(run_dir / "results.csv"), write=chief)]
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "tensorboard"),
                                                     write_graph=False, update_freq="epoch"))
    if cfg.train.patience > 0:
        callbacks.append(keras.callbacks.EarlyStopping("val_mask_mAP50-95", mode="max",
                                                       patience=cfg.train.patience))
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
        stopped, message = "early_stopping", "stopped early: no mask mAP gain within patience"
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
