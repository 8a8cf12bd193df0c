"""Training YOLO26-seg as a user types it: `tfseg train model=yolo26-seg-n` in a fresh folder
on the built-in shapes data (tiny: 64 px, two batches an epoch).

Slow (about 2 minutes on 2 cores): the first train step of YOLO26 takes 2-3 times as long to
build as YOLOv8's, mostly the larger network. A resumed run's head weights follow the epoch
number (tests/loss/test_end_to_end_loss.py, in a resumed fit); resuming from the command
line is the YOLOv8 journey's (test_journey_train.py).
"""

import csv
import math
import subprocess
from pathlib import Path

import pytest

from cli_runner import run_tfseg

SMALL = ["shapes_train=8", "shapes_val=4", "shapes_min_size=64", "shapes_max_size=64",
         "batch=4", "steps_per_epoch=2", "jit_compile=false", "mosaic=0", "close_mosaic=0",
         "nominal_batch=0", "eval.batch=4", "eval.plots=false"]
TERMS = ("box_loss", "seg_loss", "cls_loss", "l1_loss", "sem_loss", "o2m_loss", "o2o_loss")


def tfseg(*args, cwd: Path) -> subprocess.CompletedProcess:
    return run_tfseg(cwd, *args, expect=None, timeout=1500)


def rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_yolo26_trains_logs_its_terms_and_evaluates(tmp_path):
    done = tfseg("train", "model=yolo26-seg-n", "data=shapes", "imgsz=64", "epochs=2",
                 "name=y26", *SMALL, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = tmp_path / "runs" / "train" / "y26"
    table = rows(run)
    assert len(table) == 2 and "dfl_loss" not in table[0]
    for row in table:
        for key in (*TERMS, "loss", "val_mask_mAP50-95", "val_box_mAP50-95"):
            assert math.isfinite(float(row[key])), key
        assert float(row["l1_loss"]) > 0 and float(row["sem_loss"]) > 0
    # The one-to-many weight: 0.8 in the first epoch, 0.1 in the last.
    assert [float(r["o2m_weight"]) for r in table] == pytest.approx([0.8, 0.1])
    assert (run / "val" / "metrics.json").is_file()
    assert (run / "weights" / "last.weights.h5").is_file()
    assert "l1 " in done.stdout and "o2o " in done.stdout  # the epoch lines show the terms

