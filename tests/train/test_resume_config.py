"""What ``resume=`` does with the overrides given alongside it, and with finished runs."""

import dataclasses
import json

import pytest
import yaml

from tfseg.config import load_config
from tfseg.errors import ConfigError
from tfseg.runs import save_config
from tfseg.train.resume import finished_message, resumed_config


@pytest.fixture
def run(tmp_path):
    """A run directory whose config trained 3 epochs with SGD, backed up after all 3."""
    run_dir = tmp_path / "run"
    save_config(run_dir, load_config(["epochs=3", "optimizer=sgd", "lr0=0.02", "imgsz=64"]))
    (run_dir / "backup").mkdir()
    (run_dir / "backup" / "training_metadata.json").write_text(json.dumps({"epoch": 3, "batch": 0}))
    return run_dir


def _asked(run_dir, *overrides):
    """The config the command builds for ``tfseg train resume=<run> <overrides>``."""
    return load_config([f"cfg={run_dir / 'config.yaml'}", f"resume={run_dir}", *overrides],
                       section="train")


def test_allowed_overrides_are_applied_printed_and_saved(run, capsys):
    cfg = resumed_config(_asked(run, "epochs=5", "patience=7", "export.formats=tflite"), run)
    assert (cfg.train.epochs, cfg.train.patience, cfg.export.formats) == (5, 7, "tflite")
    assert cfg.train.lr0 == 0.02 and cfg.train.resume == str(run)
    out = capsys.readouterr().out
    assert "resume: train.epochs 3 -> 5" in out and "resume: train.patience 50 -> 7" in out
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["train"]["epochs"] == 5 and saved["train"]["resume"] == ""


def test_recipe_changes_are_refused_by_name(run):
    with pytest.raises(ConfigError) as err:
        resumed_config(_asked(run, "lr0=0.5", "mosaic=0", "epochs=9"), run)
    assert "train.lr0=0.5 (run: 0.02)" in str(err.value)
    assert "augment.mosaic=0.0 (run: 1.0)" in str(err.value)
    assert "train.epochs" not in str(err.value).split("Allowed")[0]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3


def test_the_config_alone_changes_nothing(run, capsys):
    cfg = resumed_config(_asked(run), run)
    assert dataclasses.replace(cfg.train, resume="") == load_config(
        [f"cfg={run / 'config.yaml'}"]).train
    assert capsys.readouterr().out == ""


def test_a_finished_run_says_how_to_train_more(run):
    assert finished_message(run, 3).startswith(f"{run} has finished its 3 epochs")
    assert f"tfseg train resume={run} epochs=4" in finished_message(run, 3)
    assert finished_message(run, 4) == ""


def test_a_run_finished_without_a_backup_is_not_restarted_from_epoch_0(run):
    (run / "backup" / "training_metadata.json").unlink()
    assert finished_message(run, 3) == ""  # killed before its first epoch: start at 0
    (run / "weights").mkdir()
    (run / "weights" / "last.weights.h5").write_bytes(b"")
    with pytest.raises(ConfigError, match="no backup/ to resume from.*weights=.*last.weights.h5"):
        finished_message(run, 3)
