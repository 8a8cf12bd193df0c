"""One tiny training run shared by the CLI journeys that only need *a* trained run.

Training is the costly step of a journey (TensorFlow start, model build, the train step's
trace, one evaluation); the weights, parity and console journeys copy this one run into
their own folders instead of each training its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from cli_runner import run_tfseg

# 8 train and 4 val images of 64-96 px; one epoch of two steps at 64 px, no XLA, no mosaic.
SHAPES = ["shapes_train=8", "shapes_val=4", "shapes_min_size=64", "shapes_max_size=96"]
TINY_TRAINING = ["imgsz=64", "epochs=1", "batch=4", "steps_per_epoch=2", "nominal_batch=0",
                 "jit_compile=false", "prepare_workers=0", "mosaic=0", "close_mosaic=0",
                 "eval.plots=false", "patience=0"]


class TinyRun(SimpleNamespace):
    """``root`` holding ``ds`` (a shapes dataset) and ``runs/train/train`` trained on it, and
    ``train_output``: the ``stdout`` and ``stderr`` of ``tfseg train`` as the user saw them
    (no logging variable)."""

    def copy_into(self, folder: Path) -> Path:
        """The dataset and the run copied into ``folder`` as if trained there: the run's
        files (config.yaml, model.json...) name the dataset by its absolute path, so they
        are made to name the copy; a test may then delete it, or add runs beside it."""
        shutil.copytree(self.root / "ds", folder / "ds")
        run = folder / "runs/train/train"
        shutil.copytree(self.run, run)
        for path in run.rglob("*"):
            if path.suffix in (".yaml", ".json", ".txt", ".csv"):
                path.write_text(path.read_text().replace(str(self.root), str(folder)))
        return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> TinyRun:
    """Trained once per test run (tests/made_once.py), whatever the number of workers; tests
    copy it (``copy_into``) before writing to it."""
    from made_once import made_once

    def make(root: Path) -> dict:
        run_tfseg(root, "data", "shapes", "--output", "ds", *SHAPES, user_console=True)
        trained = run_tfseg(root, "train", "data.root=ds", *TINY_TRAINING, user_console=True)
        return {"stdout": trained.stdout, "stderr": trained.stderr}

    root, output = made_once(tmp_path_factory, "tiny-run", make)
    return TinyRun(root=root, run=root / "runs/train/train",
                   train_output=SimpleNamespace(**output))
