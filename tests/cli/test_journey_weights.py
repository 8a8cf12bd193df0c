"""Journeys with a model and no dataset: the installed ``tfseg`` run as a user types it.

A tiny training run (64 px, two steps) is made once; its dataset is then deleted, and each
test works in a fresh empty folder holding only what a user would copy there: the weights
with their ``model.json``, or the run folder, and a photo / folder / video.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest

from cli_runner import assert_clean_console
from cli_runner import run_tfseg as tfseg

ROOT = Path(__file__).resolve().parents[2]
CONF = ["conf=0.0001", "max_det=5", "save_json=true"]  # an untrained net: keep its few best




def _write_video(path: Path, images: list[Path]) -> Path:
    frames = [cv2.resize(cv2.imread(str(p)), (96, 80)) for p in images]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (96, 80))
    for frame in frames:
        writer.write(frame)
    writer.release()
    assert path.stat().st_size > 0
    return path


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    """A finished tiny run (the shared one, tests/cli/conftest.py, copied); its dataset
    deleted afterwards. Media kept in ``media/``."""
    root = tiny_run.copy_into(tmp_path_factory.mktemp("train"))
    annotations = json.loads((root / "ds/annotations/instances_train.json").read_text())
    categories = annotations["categories"]
    media = root / "media"
    (media / "folder").mkdir(parents=True)
    val_images = sorted((root / "ds/images/val").iterdir())
    shutil.copy(val_images[0], media / "photo.jpg")
    for image in val_images[:2]:
        shutil.copy(image, media / "folder" / image.name)
    _write_video(media / "clip.avi", val_images)
    shutil.rmtree(root / "ds")  # no dataset anywhere from here on
    return SimpleNamespace(run=root / "runs/train/train", media=media,
                           names=[c["name"] for c in sorted(categories, key=lambda c: c["id"])],
                           category_ids=sorted(c["id"] for c in categories))


@pytest.fixture
def user(trained, tmp_path):
    """A fresh folder holding best.weights.h5 + model.json copied from the run, and the media."""
    for name in ("best.weights.h5", "model.json"):
        shutil.copy(trained.run / "weights" / name, tmp_path / name)
    for item in trained.media.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    return tmp_path


def _predicted_names(run_dir: Path) -> list[str]:
    records = json.loads((run_dir / "predictions.json").read_text())
    return [d["class_name"] for record in records for d in record["detections"]]


@pytest.mark.slow  # the tiny training run
def test_training_writes_the_model_metadata_beside_the_weights(trained):
    info = json.loads((trained.run / "weights" / "model.json").read_text())
    assert info["model_name"] == "yolov8-seg-n" and info["image_size"] == 64
    assert info["class_names"] == trained.names and info["num_classes"] == len(trained.names)
    assert info["category_ids"] == trained.category_ids
    assert info["recipe"]["model"]["image_size"] == 64 and info["recipe"]["train"]["epochs"] == 1


@pytest.mark.slow
def test_predict_a_folder_and_a_video_with_the_weights_alone(user, trained):
    # (One photo as the source: predicted with the export in the test after this one.)
    tfseg(user, "predict", "weights=best.weights.h5", "source=folder", *CONF)
    tfseg(user, "predict", "weights=best.weights.h5", "source=clip.avi", *CONF)
    runs = user / "runs" / "predict"
    assert len(list((runs / "predict").glob("*.jpg"))) == 2
    assert (runs / "predict2" / "clip.mp4").stat().st_size > 0
    assert len(json.loads((runs / "predict2" / "predictions.json").read_text())) == 4  # frames
    for run in ("predict", "predict2"):
        names = _predicted_names(runs / run)
        assert names and set(names) <= set(trained.names), (run, names)
    assert not (user / "datasets").exists()


@pytest.mark.slow
def test_export_a_run_folder_without_its_dataset_then_predict_with_the_export(trained, tmp_path):
    from tfseg.export.metadata import read_tflite_metadata

    readme = (ROOT / "README.md").read_text()  # the README's command and where it says files go
    assert "tfseg export weights=runs/train/train" in readme
    assert "tfseg predict weights=runs/export/train/yolov8-seg-n_640_float32.tflite" in readme
    shutil.copytree(trained.run, tmp_path / "runs/train/train")
    shutil.copy(trained.media / "photo.jpg", tmp_path / "photo.jpg")
    # As a user who set no logging variable: the console holds nothing to clean up.
    out = tfseg(tmp_path, "export", "weights=runs/train/train", "formats=tflite", "raw=false",
                "tflite_modes=float32", user_console=True)
    assert_clean_console(out)
    export_dir = tmp_path / "runs/export/train"  # named after the run it came from
    assert f"exports: {Path('runs/export/train')}" in out.stdout
    # The run's dataset is gone: exported all the same, and it says parity was not measured.
    assert "parity: not measured (dataset 'shapes' not found:" in out.stdout
    metadata = json.loads((export_dir / "metadata.json").read_text())
    assert metadata["parity"]["measured"] is False and "is missing" in metadata["parity"]["reason"]
    assert metadata["class_names"] == trained.names
    assert metadata["category_ids"] == trained.category_ids
    assert metadata["model"]["recipe"]["model"]["image_size"] == 64  # the artifact, copied
    tflite = export_dir / "yolov8-seg-n_64_float32.tflite"
    inside = read_tflite_metadata(tflite)
    assert inside["class_names"] == trained.names and inside["parity"] == metadata["parity"]
    report = tfseg(tmp_path, "export", "--check-gpu", str(tflite)).stdout  # the README's check
    assert f"GPU delegate report for {tflite}" in report and "NON_MAX_SUPPRESSION" in report
    assert_clean_console(tfseg(tmp_path, "predict", f"weights={tflite}", "source=photo.jpg",
                               "save_json=true", user_console=True))
    tfseg(tmp_path, "predict", "weights=runs/export/train", "source=photo.jpg")
    assert (tmp_path / "runs/predict/predict2/photo.jpg").is_file()
    assert not (tmp_path / "datasets").exists()


def _one_error_line(stderr: str, verb: str) -> str:
    """The error line tfseg printed; no traceback (TensorFlow's start-up lines aside)."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith(f"tfseg {verb}: error:")]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.slow  # the tiny training run
def test_a_bad_mask_format_is_one_line_naming_the_key(user):
    out = tfseg(user, "predict", "weights=best.weights.h5", "source=photo.jpg",
                "predict.mask_format=png", expect=2)
    line = _one_error_line(out.stderr, "predict")
    assert "predict.mask_format" in line and "rle or polygon" in line
    assert len(out.stderr.strip().splitlines()) == 1  # raised before TensorFlow loads


@pytest.mark.slow  # the tiny training run
def test_weights_without_their_metadata_say_what_is_missing(user):
    (user / "model.json").unlink()
    out = tfseg(user, "predict", "weights=best.weights.h5", "source=photo.jpg", expect=2)
    assert "no model.json beside it" in _one_error_line(out.stderr, "predict")


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="torch is installed here: the message for a missing torch cannot show")
def test_an_ultralytics_pt_without_torch_says_what_to_install(tmp_path):
    (tmp_path / "yolov8n-seg.pt").write_bytes(b"PK\x03\x04 not read without torch")
    shutil.copy(ROOT / "tests/fixtures/model/scene.png", tmp_path / "photo.png")
    out = tfseg(tmp_path, "predict", "weights=yolov8n-seg.pt", "source=photo.png", expect=2)
    assert 'pip install -e ".[torch]"' in _one_error_line(out.stderr, "predict")


def _reference_state() -> dict:
    """The stored reference state dict of yolov8-seg-n, 3 classes (tests/fixtures/model)."""
    from reference_weights import reference_like_weights

    entries = json.loads((ROOT / "tests/fixtures/model/yolov8-seg-n.state.json").read_text())
    return reference_like_weights(entries)


def _reference_npz(path: Path) -> Path:
    import numpy as np

    np.savez(path, **_reference_state())
    return path


@pytest.mark.slow  # two tfseg processes that load TensorFlow
def test_import_weights_then_the_printed_next_command(tmp_path):
    _reference_npz(tmp_path / "v8n.npz")
    shutil.copy(ROOT / "tests/fixtures/model/scene.png", tmp_path / "photo.jpg")
    out = tfseg(tmp_path, "import-weights", "v8n.npz", "model=yolov8-seg-n", "imgsz=160")
    info = json.loads((tmp_path / "v8n.json").read_text())
    assert info["model_name"] == "yolov8-seg-n" and info["image_size"] == 160
    assert info["class_names"] == ["class0", "class1", "class2"]  # a bare state dict names none
    line = next(line for line in out.stdout.splitlines() if line.startswith("next: "))
    command = line.removeprefix("next: ").split("   (")[0].split()
    assert command[:2] == ["tfseg", "predict"]
    tfseg(tmp_path, *command[1:])  # as printed
    assert (tmp_path / "runs/predict/predict/photo.jpg").is_file()
    assert not (tmp_path / "datasets").exists()


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="torch is not installed (pip install -e \".[torch]\"): the .pt journey "
                           "needs it; its no-torch message is tested above")
def test_predict_and_export_an_ultralytics_pt_directly(tmp_path):
    import torch

    spec = importlib.util.spec_from_file_location(
        "checkpoint_tests", ROOT / "tests/model/test_checkpoint_files.py")
    helpers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(helpers)
    state = _reference_state()
    names = ["circle", "rectangle", "triangle"]
    helpers.fake_ultralytics_checkpoint(torch, state, tmp_path / "yolov8n-seg.pt", names)
    shutil.copy(ROOT / "tests/fixtures/model/scene.png", tmp_path / "photo.png")
    tfseg(tmp_path, "predict", "weights=yolov8n-seg.pt", "source=photo.png", "save_json=true",
          "conf=0.0001", "max_det=5")
    assert set(_predicted_names(tmp_path / "runs/predict/predict")) <= set(names)
    tfseg(tmp_path, "export", "weights=yolov8n-seg.pt", "formats=tflite", "raw=false")
    metadata = json.loads((tmp_path / "runs/export/yolov8n-seg/metadata.json").read_text())
    assert metadata["class_names"] == names and metadata["model_name"] == "yolov8-seg-n"
