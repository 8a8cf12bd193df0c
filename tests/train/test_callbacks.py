"""Training-loop callbacks on a real (tiny) Keras fit: early stopping judged at evaluations,
close-mosaic, the epoch line, results.csv and results.png, the resume backup."""

import csv
import io
import json

import cv2
import keras
import numpy as np
import tensorflow as tf

from tfseg.evaluate.plots import plot_results
from tfseg.train.callbacks import (EVALUATED, CloseMosaic, CommitBackup, EvaluateAndCheckpoint,
                                   EvaluatedEarlyStopping, GuardedBackupAndRestore,
                                   LearningRateLog, NaNGuard, ResumableCSVLogger)
from tfseg.train.progress import EpochLine


def _fit(tmp_path, epochs, period, patience, maps, stream=None):
    """A one-weight model fitted ``epochs`` epochs with tfseg's checkpoint and early-stopping
    callbacks; evaluation returns the next value of ``maps`` as mask mAP50-95."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    scores = iter(maps)

    def evaluate_fn(_):
        value = next(scores)
        return {"mask/mAP50-95": value, "mask/mAP50": value, "box/mAP50-95": value,
                "box/mAP50": value}

    checkpoints = EvaluateAndCheckpoint(evaluate_fn, tmp_path / "weights", epochs, period)
    callbacks = [checkpoints, ResumableCSVLogger(str(tmp_path / "results.csv"))]
    if patience:
        callbacks.append(EvaluatedEarlyStopping(checkpoints, patience))
    if stream is not None:
        callbacks += [LearningRateLog(), EpochLine(epochs, 2, stream)]
    x = np.ones((4, 1), np.float32)
    history = model.fit(x, x, batch_size=2, epochs=epochs, callbacks=callbacks, verbose=0)
    return history


def test_patience_counts_epochs_but_stops_only_at_evaluations(tmp_path):
    # Evaluated every 3 epochs, patience 1, no gain after the first evaluation: Keras'
    # EarlyStopping stopped after epoch 1, before any evaluation. Here the first evaluation
    # (epoch 3) sets the best, the second (epoch 6) finds it 3 >= 1 epochs old and stops.
    history = _fit(tmp_path, epochs=12, period=3, patience=1, maps=[0.2, 0.2, 0.2, 0.2])
    assert len(history.epoch) == 6
    assert history.history[EVALUATED] == [0, 0, 1, 0, 0, 1]


def test_a_gain_at_each_evaluation_keeps_training(tmp_path):
    history = _fit(tmp_path, epochs=6, period=2, patience=1, maps=[0.1, 0.2, 0.3])
    assert len(history.epoch) == 6


def test_unevaluated_epochs_carry_no_metric_placeholders_and_the_csv_keeps_its_columns(tmp_path):
    stream = io.StringIO()
    history = _fit(tmp_path, epochs=3, period=2, patience=0, maps=[0.25, 0.5], stream=stream)
    assert history.history["val_mask_mAP50-95"] == [0.25, 0.5]  # epochs 2 and 3 (the last)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3 and all("nan" not in line for line in lines)
    assert lines[0].startswith("epoch 1/3  loss ") and "  lr 0.01  " in lines[0]
    assert "val" not in lines[0]
    assert "val mask mAP50-95 0.250 mAP50 0.250  box mAP50-95 0.250" in lines[1]
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [r["val_mask_mAP50-95"] for r in rows] == ["", "0.25", "0.5"]


def test_results_png_draws_a_panel_per_loss_and_metric(tmp_path):
    rows = ["epoch,box_loss,seg_loss,cls_loss,dfl_loss,val_box_mAP50,val_box_mAP50-95,"
            "val_mask_mAP50,val_mask_mAP50-95"]
    rows += [f"{e},{3 - e},{4 - e},{2 - e / 2},{1.5 - e / 3},{'' if e % 2 == 0 else e / 10},"
             f"{'' if e % 2 == 0 else e / 20},{'' if e % 2 == 0 else e / 10},"
             f"{'' if e % 2 == 0 else e / 20}" for e in range(4)]
    (tmp_path / "results.csv").write_text("\n".join(rows) + "\n")
    image = cv2.imread(str(plot_results(tmp_path / "results.csv", tmp_path / "results.png")))
    assert image.shape == (440, 1200, 3)
    # Every panel has a drawn curve (the line colour), metrics from the evaluated rows only.
    for top in (0, 220):
        for left in range(0, 1200, 300):
            panel = image[top + 30:top + 200, left + 45:left + 295]
            assert (np.abs(panel.astype(int) - (200, 80, 0)).sum(axis=2) < 60).sum() > 20


def test_close_mosaic_turns_mosaic_off_for_the_last_epochs():
    switch = tf.Variable(True)
    callback = CloseMosaic(switch, epochs=5, close=2)
    seen = []
    for epoch in range(5):
        callback.on_epoch_begin(epoch)
        seen.append(bool(switch.numpy()))
    assert seen == [True, True, True, False, False]


def test_a_log_file_gets_batch_progress_at_most_every_every_s_seconds():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    quiet, chatty = io.StringIO(), io.StringIO()
    x = np.ones((4, 1), np.float32)
    model.fit(x, x, batch_size=2, epochs=1, verbose=0,
              callbacks=[EpochLine(1, 2, quiet), EpochLine(1, 2, chatty, every_s=0)])
    assert len(quiet.getvalue().splitlines()) == 1
    lines = chatty.getvalue().splitlines()
    assert [line.split("  loss")[0] for line in lines[:2]] == ["  epoch 1/1 batch 1/2",
                                                               "  epoch 1/1 batch 2/2"]
    assert lines[2].startswith("epoch 1/1  loss")


def test_the_epoch_line_reports_instances_left_out_over_max_instances():
    from tfseg.train.progress import format_epoch_line

    logs = {"loss": 3.0, "box_loss": 1.0, "lr": 0.01, "evaluated": 0.0}
    assert "left out" not in format_epoch_line(0, 5, dict(logs, dropped_instances=0.0), 2.0)
    line = format_epoch_line(0, 5, dict(logs, dropped_instances=37.0), 2.0)
    assert "37 instances over data.max_instances left out" in line


def _backed_up_fit(backup, epochs, model=None):
    """A one-weight model fitted with the resume backup; returns the model and its history."""
    if model is None:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    restore = GuardedBackupAndRestore(str(backup), NaNGuard(), double_checkpoint=True)
    x = np.ones((4, 1), np.float32)
    history = model.fit(x, x, batch_size=2, epochs=epochs, verbose=0,
                        callbacks=[restore, CommitBackup(restore)])
    return model, history


def test_a_kill_while_the_backup_is_written_leaves_the_previous_backup_whole(tmp_path,
                                                                          monkeypatch):
    backup = tmp_path / "backup"
    model, _ = _backed_up_fit(backup, epochs=2)
    metadata = backup / "training_metadata.json"
    assert json.loads(metadata.read_text())["epoch"] == 2  # epochs done
    assert json.loads((backup / "training_metadata.json.bkp").read_text())["epoch"] == 1

    # The third epoch's backup dies after the weights, before the metadata is written (as
    # SIGKILL would; Keras' own writer left an empty training_metadata.json there, which
    # resume could not parse): the pair resume reads is still the second epoch's, whole.
    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    with monkeypatch.context() as patch:
        patch.setattr(json, "dumps", killed)
        try:
            _backed_up_fit(backup, epochs=3, model=model)
        except KeyboardInterrupt:
            pass
    assert json.loads(metadata.read_text())["epoch"] == 2
    fresh = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    fresh.compile(optimizer="sgd", loss="mse")
    _, history = _backed_up_fit(backup, epochs=3, model=fresh)
    assert history.epoch == [2]  # resumed after the second epoch, trained only the third
    assert json.loads(metadata.read_text())["epoch"] == 3
    assert sorted(p.name for p in backup.iterdir()) == [  # nothing staged is left behind
        "latest.weights.h5", "latest.weights.h5.bkp", "training_metadata.json",
        "training_metadata.json.bkp"]
