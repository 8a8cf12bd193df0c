"""Convergence: the smallest model overfits 8 shapes images to a high mask mAP50.

Measured on a 2-core AMD EPYC (20 steps of 8 images at 64 px an epoch, AdamW 0.01, no
augmentation, no XLA): mask mAP50 0.80 after 6 epochs and 0.99 after 8 (61 s for the test
alone). The test trains the 8 epochs (the seeded run is the same on every CPU run); an
untrained model scores 0. The bar (0.7) leaves room for run-to-run noise.
"""

import csv
import math

import pytest

from tfseg.train.fit import train


@pytest.mark.slow
def test_yolov8_seg_n_overfits_a_tiny_shapes_set(shapes_root, tmp_path, make_config, run_config):
    cfg = run_config(make_config(shapes_root, **{
        "train.epochs": 8, "train.steps_per_epoch": 20, "train.eval_period": 8}))
    summary = train(cfg, tmp_path / "run", verbose=0)

    assert summary["stopped"] == "completed" and summary["updates"] == 160
    metrics = summary["metrics"]
    assert metrics["val_mask_mAP50"] >= 0.7, metrics
    assert metrics["val_box_mAP50"] >= 0.7, metrics
    rows = list(csv.DictReader(open(tmp_path / "run" / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == list(range(8))
    # Only the last epoch was evaluated: earlier rows leave the validation columns blank.
    assert [r["evaluated"] for r in rows] == ["0.0"] * 7 + ["1.0"]
    assert all(r["val_mask_mAP50"] == "" for r in rows[:-1])
    assert float(rows[-1]["val_mask_mAP50"]) == pytest.approx(metrics["val_mask_mAP50"])
    first, last = float(rows[0]["loss"]), float(rows[-1]["loss"])
    assert math.isfinite(last) and last < 0.5 * first  # the loss at least halves
    for term in ("box_loss", "seg_loss", "cls_loss", "dfl_loss", "lr"):
        assert term in rows[-1]
    assert (tmp_path / "run" / "weights" / "best.weights.h5").is_file()
