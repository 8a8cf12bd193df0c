"""The callbacks of a training run that Keras does not provide as they are needed.

Keras' own callbacks do most of the work in tfseg/train/fit.py (BackupAndRestore, CSVLogger,
TensorBoard, EarlyStopping, progress bars). Here:

* ``NaNGuard``: Keras' TerminateOnNaN, plus a message naming the last good checkpoint and a
  flag the saving callbacks read so a diverged state never overwrites a good one.
* ``GuardedBackupAndRestore`` and ``CommitBackup``: Keras' BackupAndRestore restoring first
  and saving last at each epoch end (after the checkpoints and the CSV row), kept when the
  run ends so a finished run can be extended.
* ``EMAUpdate``: the EMA state (updated inside the train step) saved next to the resume
  backup at each epoch end and restored with it.
* ``EvaluateAndCheckpoint``: periodic COCO evaluation with the EMA weights swapped in; metrics
  added to the epoch logs (so CSV, TensorBoard and EarlyStopping see them); ``last`` and
  ``best`` (by mask mAP50-95) weights written atomically into ``<run>/weights/``.
* ``CloseMosaic``: turns the pipeline's mosaic off for the last epochs.
* ``EvaluatedEarlyStopping``: stop when the best mask mAP is ``patience`` epochs old, judged
  at evaluations only (an epoch that was not evaluated never stops a run).
* ``LearningRateLog``: the current rates in the epoch logs.
* ``ResumableCSVLogger``: Keras' CSVLogger that, on resume, drops rows of epochs that will
  be trained again, so the history has neither gaps nor duplicates.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from tfseg.errors import ConfigError
from tfseg.runs import write_atomic

EMA_STATE = "ema.npz"
MASK_MAP = "val_mask_mAP50-95"
EVALUATED = "evaluated"  # 1.0 in the logs of an epoch that was evaluated, else 0.0
# The evaluation metrics put into the logs of evaluated epochs (results.csv always has their
# columns, blank in the other rows: CSVLogger fixes its columns at the first row).
METRIC_KEYS = tuple(f"val_{kind}_{name}" for kind in ("box", "mask") for name in
                    ("mAP50-95", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large", "AR100"))


class NaNGuard(keras.callbacks.TerminateOnNaN):
    """Stop at the first non-finite loss, or at an epoch's end whose weights are not all
    finite (the last update of an epoch can blow them up after its loss was computed), and
    say where the last good state is. It runs first at each epoch end, so nothing is backed
    up or checkpointed from a bad state.

    Args:
        last_good: a callable returning a description of the last good checkpoint
            (evaluated when the loss goes bad, so it names the latest one).
    """

    def __init__(self, last_good=lambda: "none written yet"):
        super().__init__()
        self.last_good = last_good
        self.failed = False
        self.message = ""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.failed or math.isfinite(float(loss)):
            return
        self._stop(f"the loss became {float(loss)} at batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        if self.failed:
            return
        bad = [w.path for w in self.model.weights if not np.isfinite(np.asarray(w)).all()]
        if bad:
            self._stop(f"the weights became non-finite in epoch {epoch + 1} ({len(bad)} "
                       f"variables, first {bad[0]})")

    def _stop(self, what: str) -> None:
        self.failed = True
        self.message = (f"training stopped: {what}. Last good checkpoint: {self.last_good()}. "
                        "Lower train.lr0 (or raise train.warmup_epochs) and resume from that "
                        "checkpoint or start again.")
        print(self.message, flush=True)
        self.model.stop_training = True


class GuardedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that restores at train begin, backs up only when ``CommitBackup``
    (last in the callback list) says so, never a state whose loss went non-finite, and keeps
    the backup when training ends (resuming a finished run with more epochs needs it)."""

    def __init__(self, backup_dir: str, guard: NaNGuard, **kwargs):
        super().__init__(backup_dir, delete_checkpoint=False, **kwargs)
        self.guard = guard

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        epoch = int(getattr(self.model, "_initial_epoch", 0) or 0)
        if epoch > 0 and int(inner_optimizer(self.model.optimizer)._iterations.numpy()) == 0:
            # Keras only warns when the saved optimizer does not fit; a silent restart of the
            # schedule and moments would not be a resume.
            raise ConfigError(f"train.resume: the optimizer state in {self.backup_dir} does not "
                              "match this run's optimizer (was the optimizer, batch or gradient "
                              "accumulation changed, or the backup written by an earlier tfseg "
                              "whose optimizer kept its state per variable?)")

    def on_epoch_end(self, epoch, logs=None):
        """Nothing here: ``commit`` saves, once the epoch's other outputs are written."""

    def _save_model(self):
        """Keras' backup, with every file replaced by a rename: Keras writes the weights and
        ``training_metadata.json`` in place, so a kill during the write left a torn or empty
        file that resume could not read. The new weights and metadata are both written
        aside first and renamed in one go, after the previous pair is copied to ``*.bkp``."""
        weights, metadata = Path(self._weights_path), Path(self._training_metadata_path)
        weights.parent.mkdir(parents=True, exist_ok=True)
        if self.double_checkpoint:
            for current, previous in ((weights, self._prev_weights_path),
                                      (metadata, self._prev_training_metadata_path)):
                if current.is_file():
                    copy_atomic(current, Path(previous))
        staged = weights.with_name(f".{weights.stem}.tmp.weights.h5")
        self.model.save_weights(str(staged))
        staged_metadata = write_atomic(metadata.with_name(f".{metadata.name}.staged"), json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen}))
        os.replace(staged, weights)
        os.replace(staged_metadata, metadata)

    def commit(self, epoch: int, logs=None) -> None:
        """Back up the state at the end of ``epoch`` (not after a non-finite loss)."""
        if not self.guard.failed:
            super().on_epoch_end(epoch, logs)


class CommitBackup(keras.callbacks.Callback):
    """Last callback of an epoch end: the backup that resume starts from is written after
    the checkpoints and the results.csv row of that epoch.

    Args:
        backup: the run's GuardedBackupAndRestore.
    """

    def __init__(self, backup: GuardedBackupAndRestore):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        self.backup.commit(epoch, logs)


class EMAUpdate(keras.callbacks.Callback):
    """Save a ``ModelEMA`` with the resume backup and restore it on resume.

    The average itself is updated inside the train step (``ModelEMA(model, optimizer)``), so
    this callback has no per-batch work: a step runs without a host round trip.

    Args:
        ema: the tfseg.train.ema.ModelEMA.
        backup_dir: where the resume backup lives (EMA state as ``ema.npz``, previous as
            ``ema.npz.bkp``); None: no saving.
        guard: the NaNGuard: nothing is saved once the loss went bad.
    """

    def __init__(self, ema, backup_dir: str | None = None, guard: NaNGuard | None = None):
        super().__init__()
        self.ema, self.guard = ema, guard
        self.path = Path(backup_dir) / EMA_STATE if backup_dir else None

    def on_train_begin(self, logs=None):
        """Restore the EMA saved at the epoch BackupAndRestore resumes from."""
        epoch = int(getattr(self.model, "_initial_epoch", 0) or 0)
        if self.path is None or epoch == 0:
            return
        for candidate in (self.path, self.path.with_name(EMA_STATE + ".bkp")):
            if candidate.is_file() and self._saved_epoch(candidate) == epoch:
                self.ema.load(candidate)
                return
        print(f"warning: no EMA state for epoch {epoch} in {self.path.parent}; "
              "the average restarts from the current weights", flush=True)
        self.ema.load_state({**{f"shadow_{i}": np.asarray(w) for i, w in
                                enumerate(self.model.weights)}, "updates": np.asarray(0)})

    @staticmethod
    def _saved_epoch(path: Path) -> int:
        with np.load(path) as saved:
            return int(saved["extra_epoch"]) if "extra_epoch" in saved.files else -1

    def on_epoch_end(self, epoch, logs=None):
        if self.path is None or (self.guard is not None and self.guard.failed):
            return
        if self.path.is_file():
            copy_atomic(self.path, self.path.with_name(EMA_STATE + ".bkp"))
        self.ema.save(self.path, epoch=epoch + 1)


class EvaluateAndCheckpoint(keras.callbacks.Callback):
    """Evaluate the EMA weights every ``period`` epochs; keep last and best weights.

    Args:
        evaluate_fn: ``model -> dict`` of COCO metrics (``box/mAP50-95``, ``mask/mAP50``...);
            called with the EMA weights swapped in.
        weights_dir: ``<run>/weights``; ``last.weights.h5`` every epoch, ``best.weights.h5``
            when mask mAP50-95 improves (both EMA weights when an EMA is given).
        epochs: total epochs (the last one is always evaluated).
        period: evaluate every this many epochs; 0 only at the end.
        ema: ModelEMA or None.
        guard: the NaNGuard: nothing is written once the loss went bad.
        write: False on non-chief workers (they evaluate nothing and write nothing).
        on_evaluated: optional ``(epoch, metrics) -> None`` hook (TensorBoard images...).
    """

    def __init__(self, evaluate_fn, weights_dir: str | Path, epochs: int, period: int = 1,
                 ema=None, guard: NaNGuard | None = None, write: bool = True,
                 on_evaluated=None):
        super().__init__()
        self.evaluate_fn, self.weights_dir = evaluate_fn, Path(weights_dir)
        self.epochs, self.period, self.ema, self.guard = epochs, period, ema, guard
        self.write, self.on_evaluated = write, on_evaluated
        self.last_metrics: dict[str, float] = {}
        self.best_map = -1.0
        self.best_epoch = -1
        self.last_epoch = -1
        self.evaluated_epoch = -1  # the last epoch this callback evaluated

    def on_train_begin(self, logs=None):
        record = self.weights_dir / "best.txt"
        if record.is_file():  # resuming: the best so far must be beaten
            epoch, value = record.read_text().split()
            self.best_epoch, self.best_map = int(epoch), float(value)

    def _due(self, epoch: int) -> bool:
        last = epoch + 1 == self.epochs
        return last or (self.period > 0 and (epoch + 1) % self.period == 0)

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.failed:
            return
        logs = logs if logs is not None else {}
        due = self._due(epoch) or self.model.stop_training
        with self._averaged():
            if due and self.write:
                found = {f"val_{k.replace('/', '_')}": float(v)
                         for k, v in self.evaluate_fn(self.model).items()}
                metrics = {k: found.get(k, float("nan")) for k in METRIC_KEYS}
                self.last_metrics, self.evaluated_epoch = metrics, epoch
                if self.on_evaluated is not None:
                    self.on_evaluated(epoch, metrics)
            if self.write:
                self._save(epoch, due)
        # Only evaluated epochs carry metrics (no NaN placeholders in the logs, progress or
        # TensorBoard); ``evaluated`` says which ones did (the CSV leaves the others blank).
        evaluated = due and self.write
        if evaluated:
            logs.update(self.last_metrics)
        logs[EVALUATED] = 1.0 if evaluated else 0.0

    def _averaged(self):
        import contextlib
        return self.ema.swapped_in(self.model) if self.ema is not None else contextlib.nullcontext()

    def _save(self, epoch: int, evaluated: bool) -> None:
        self.weights_dir.mkdir(parents=True, exist_ok=True)
        save_weights_atomic(self.model, self.weights_dir / "last.weights.h5")
        self.last_epoch = epoch
        current = self.last_metrics.get(MASK_MAP, float("nan"))
        if evaluated and math.isfinite(current) and current > self.best_map:
            self.best_map, self.best_epoch = current, epoch
            save_weights_atomic(self.model, self.weights_dir / "best.weights.h5")
            write_atomic(self.weights_dir / "best.txt", f"{epoch} {current}\n")

    def describe_last(self) -> str:
        """The last good checkpoint, for the NaN message."""
        path = self.weights_dir / "last.weights.h5"
        if self.last_epoch < 0 and not path.is_file():
            return "none written yet"
        epoch = f" (end of epoch {self.last_epoch + 1})" if self.last_epoch >= 0 else ""
        return f"{path}{epoch}"


class CloseMosaic(keras.callbacks.Callback):
    """Mosaic on for the first ``epochs - close`` epochs, off for the last ``close``.

    Args:
        switch: the pipeline's ``mosaic_enabled`` tf.Variable (bool).
        epochs: total epochs.
        close: the last epochs without mosaic (``augment.close_mosaic``).
    """

    def __init__(self, switch, epochs: int, close: int):
        super().__init__()
        self.switch, self.epochs, self.close = switch, int(epochs), int(close)

    def on_epoch_begin(self, epoch, logs=None):
        enabled = epoch < self.epochs - self.close
        if bool(self.switch.numpy()) != enabled:
            if not enabled:
                print(f"close-mosaic: mosaic off from epoch {epoch + 1}", flush=True)
            self.switch.assign(enabled)


class OneToManyWeight(keras.callbacks.Callback):
    """YOLO26's head weights for each epoch, set at its start from the epoch number (so a
    resumed run, which Keras starts at the right epoch, gets the right weight); the epoch's
    one-to-many weight goes into the logs as ``o2m_weight`` (a results.csv column).

    Args:
        loss: an EndToEndSegLoss (tfseg/loss/end_to_end_loss.py).
        epochs: total epochs of the run.
    """

    def __init__(self, loss, epochs: int):
        super().__init__()
        self.loss, self.epochs = loss, int(epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self.loss.set_epoch(epoch, self.epochs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["o2m_weight"] = float(self.loss.o2m_weight.numpy())


class EvaluatedEarlyStopping(keras.callbacks.Callback):
    """Stop when the best mask mAP50-95 is ``patience`` or more epochs old, judged only at
    the end of an evaluated epoch: patience is counted in epochs, but an epoch that was not
    evaluated can neither stop the run nor count as "no gain" (with ``eval_period`` larger
    than ``patience``, Keras' EarlyStopping stopped runs before their first evaluation).
    The best epoch is the checkpointer's, restored from best.txt on resume.

    Args:
        checkpoints: the run's EvaluateAndCheckpoint (runs before this callback).
        patience: epochs; > 0.
    """

    def __init__(self, checkpoints: EvaluateAndCheckpoint, patience: int):
        super().__init__()
        self.checkpoints, self.patience = checkpoints, int(patience)

    def on_epoch_end(self, epoch, logs=None):
        if (logs or {}).get(EVALUATED) != 1.0 or self.checkpoints.best_epoch < 0:
            return
        if epoch - self.checkpoints.best_epoch >= self.patience:
            self.model.stop_training = True


class LearningRateLog(keras.callbacks.Callback):
    """Adds ``lr`` (weights) and ``lr_bias`` at the current iteration to the epoch logs."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        optimizer = inner_optimizer(self.model.optimizer)
        step = optimizer._iterations  # batches seen: what the schedules are functions of
        logs["lr"] = float(np.asarray(optimizer.learning_rate))
        bias = getattr(optimizer, "bias_learning_rate", None)
        logs["lr_bias"] = float(np.asarray(bias(step))) if callable(bias) else logs["lr"]


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """CSVLogger (append mode) that trims rows of epochs about to be trained again, and leaves
    the validation columns blank in epochs that were not evaluated.

    BackupAndRestore restores the epoch after the last backed-up one; a row written for an
    epoch whose backup did not complete (a kill in between) would otherwise repeat.
    """

    def __init__(self, filename: str, write: bool = True):
        super().__init__(filename if write else os.devnull, append=write)

    def on_train_begin(self, logs=None):
        start = int(getattr(self.model, "_initial_epoch", 0) or 0)
        path = Path(self.filename)
        if self.filename != os.devnull and path.is_file():
            with open(path, newline="") as handle:
                rows = list(csv.reader(handle))
            if rows:
                kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < start]
                write_atomic(path, "".join(",".join(r) + "\n" for r in kept))
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})  # other callbacks read the same logs: change a copy
        if logs.get(EVALUATED) != 1.0:
            logs.update(dict.fromkeys(METRIC_KEYS, ""))
        super().on_epoch_end(epoch, logs)


def inner_optimizer(optimizer):
    """The recipe's optimizer: under mixed_float16 Keras wraps it in a LossScaleOptimizer,
    whose own batch counter stays 0."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def save_weights_atomic(model, path: Path) -> Path:
    """``model.save_weights`` to a temporary file renamed over ``path`` (never a torn file)."""
    tmp = path.with_name(f".{path.stem}.tmp.weights.h5")
    model.save_weights(str(tmp))
    os.replace(tmp, path)
    return path


def copy_atomic(source: Path, target: Path) -> Path:
    """Copy ``source`` to ``target`` through a temporary file and a rename."""
    tmp = target.with_name(f".{target.name}.tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)
    return target
