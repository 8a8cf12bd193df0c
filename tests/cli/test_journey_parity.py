"""The parity certificate as a user meets it: ``tfseg export`` typed in a fresh folder.

A tiny run is trained once (64 px, two steps); its exports are then certified against it on
the run's own validation images: the end-to-end file of every mode and the SavedModel (raw
files get theirs the same way: tests/export/test_certificate.py, which also shows a real
accuracy loss failing the check); a threshold no file can meet fails the export; weights
without their run still export and say parity was not measured.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from cli_runner import run_tfseg

MODES = ("float32", "float16", "dynamic_int8", "int8")


def tfseg(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_tfseg(cwd, *args, expect=None)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory) -> Path:
    """A fresh folder with a shapes dataset (4 val images) and a run trained on it for two
    steps: the shared tiny run (tests/cli/conftest.py), copied."""
    return tiny_run.copy_into(tmp_path_factory.mktemp("parity"))


@pytest.mark.slow  # a full export: four TFLite conversions and a SavedModel (~2 min on 2 cores)
def test_every_mode_of_an_export_carries_its_parity_certificate(workdir):
    from tfseg.export.metadata import read_tflite_metadata

    result = ok(tfseg(workdir, "export", "weights=runs/train/train", "name=all",
                      f"tflite_modes={','.join(MODES)}", "raw=false", "calibration_images=2",
                      "parity_images=3", "conf=0.001"))  # a 1-step model scores low: keep some
    folder = workdir / "runs/export/all"
    parity = json.loads((folder / "metadata.json").read_text())["parity"]
    assert parity["measured"] and parity["passed"]
    assert (parity["split"], parity["images"]) == ("val", 3)  # the cap, not the 4 val images
    assert parity["tolerance"] == {"mask_mAP50-95_drop_points": 1.0}
    assert parity["thresholds"]["score_threshold"] == 0.001  # the export's own post-processing
    assert set(parity["artifacts"]) == {"savedmodel"} | {f"tflite_{m}" for m in MODES}
    keras_map = parity["keras"]["mask_mAP50-95"]
    for key, entry in parity["artifacts"].items():
        assert entry["images"] == 3 and entry["passed"], (key, entry)
        assert entry["mask_drop_points"] == pytest.approx(
            100 * (keras_map - entry["mask_mAP50-95"]), abs=1e-3)
        assert f"{entry['file'][:39]}" in result.stdout  # a row of the printed table
        assert entry["mode"] == key.removeprefix("tflite_").replace("savedmodel", "float32")
        assert {"matched", "max_box_diff_px", "max_score_diff"} <= set(entry)
        if key.startswith("tflite"):
            inside = read_tflite_metadata(folder / entry["file"])["parity"]
            assert inside["artifacts"] == {key: entry} and inside["keras"] == parity["keras"]
    # float32 files are the network itself: their detections match Keras's, scores agree.
    for key in ("tflite_float32", "savedmodel"):
        entry = parity["artifacts"][key]
        assert entry["matched"] > 0 and entry["max_score_diff"] < 1e-4, entry
    served = json.loads((folder / "tfseg/1/assets.extra/metadata.json").read_text())["parity"]
    assert set(served["artifacts"]) == {"savedmodel"}
    assert "Keras model (reference)" in result.stdout and "FAILED" not in result.stdout


@pytest.mark.slow  # an export
def test_an_export_past_the_allowed_drop_fails_and_says_why(workdir):
    # A negative allowance: the file would have to beat the Keras model by half a point,
    # which a copy of it cannot; the real check measures and refuses it.
    result = tfseg(workdir, "export", "weights=runs/train/train", "name=strict",
                   "formats=tflite", "tflite_modes=float32", "raw=false",
                   "parity_images=2", "parity_max_drop=-0.5")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    message = result.stderr
    assert "parity check failed on 2 val images: yolov8-seg-n_64_float32.tflite has mask " \
           "mAP50-95" in message
    assert "against the Keras model's" in message
    assert "at most -0.5 point(s) allowed (export.parity_max_drop)" in message
    parity = json.loads((workdir / "runs/export/strict/metadata.json").read_text())["parity"]
    assert not parity["passed"] and not parity["artifacts"]["tflite_float32"]["passed"]
    assert "FAILED" in result.stdout


def test_weights_without_their_run_export_without_a_certificate_and_say_why(tmp_path):
    """Weights alone (no run folder, no data= typed) have no dataset to measure parity on:
    the export goes on and its certificate says why (the run-folder case, dataset deleted,
    is exported as a user types it in test_journey_weights.py)."""
    from tfseg.commands.export import _parity_dataset
    from tfseg.config import load_config

    (tmp_path / "best.weights.h5").write_bytes(b"")
    cfg = load_config([f"weights={tmp_path / 'best.weights.h5'}"], section="export")
    unchanged, reason = _parity_dataset(cfg, [f"weights={tmp_path / 'best.weights.h5'}"])
    assert unchanged is cfg
    assert reason.startswith("no dataset: these weights come without their run")
    assert "data=<dataset>" in reason
    typed = [f"weights={tmp_path / 'best.weights.h5'}", f"data.root={tmp_path / 'none'}"]
    _, reason = _parity_dataset(load_config(typed, section="export"), typed)
    assert "not found" in reason and "is missing" in reason  # typed, then looked for
