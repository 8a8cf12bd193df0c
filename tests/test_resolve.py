"""The one model loader (tfseg.resolve): each kind of path, and each failure as one
WeightsError naming the path. Exports through it: tests/test_api.py and the CLI journeys."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    """A yolov8-seg-n at 64 px saved as weights + model.json, and as a .keras file."""
    from tfseg.model import build_model
    from tfseg.model.artifact import ModelInfo, write_model_info

    folder = tmp_path_factory.mktemp("artifact")
    model = build_model("yolov8-seg-n", 2, 64)
    model.save_weights(str(folder / "last.weights.h5"))
    model.save(str(folder / "net.keras"))
    info = ModelInfo("yolov8-seg-n", 64, ["cat", "dog"], [17, 18], source="test")
    write_model_info(folder, info)
    write_model_info(folder / "net.json", ModelInfo("yolov8-seg-n", 64, ["a", "b"], [1, 2]))
    return folder


def test_resolver_loads_weights_keras_and_run_folders(small_artifact, tmp_path):
    from tfseg.resolve import resolve_model

    loaded = resolve_model(small_artifact / "last.weights.h5", image_size=96)
    assert loaded.kind == "keras" and loaded.info.class_names == ["cat", "dog"]
    assert loaded.info.category_ids == [17, 18]
    assert loaded.model.inputs[0].shape[1] == 96  # rebuilt at the size asked for
    keras_file = resolve_model(small_artifact / "net.keras")
    assert keras_file.info.class_names == ["a", "b"]  # <stem>.json wins over model.json
    run = tmp_path / "runs" / "train" / "exp"
    shutil.copytree(small_artifact, run / "weights")
    from_run = resolve_model(run)  # no best: the last weights
    assert from_run.path.name == "last.weights.h5" and from_run.run_name == "exp"


def test_resolver_failures_are_weights_errors_naming_the_path(small_artifact, tmp_path):
    from tfseg.resolve import resolve_model
    from tfseg.errors import WeightsError

    with pytest.raises(WeightsError, match="weights not found: .*absent"):
        resolve_model(tmp_path / "absent.weights.h5")
    with pytest.raises(WeightsError, match="not a run folder"):
        resolve_model(tmp_path)
    (tmp_path / "run" / "weights").mkdir(parents=True)
    with pytest.raises(WeightsError, match="holds no weights"):
        resolve_model(tmp_path / "run")
    with pytest.raises(WeightsError, match="are yolov8-seg-n .*not yolo11-seg-n"):
        resolve_model(small_artifact / "last.weights.h5", model_name="yolo11-seg-n")
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(small_artifact / "last.weights.h5", other / "last.weights.h5")
    (other / "model.json").write_text(json.dumps(
        {"model_name": "yolov8-seg-n", "image_size": 64, "class_names": ["a", "b", "c"]}))
    with pytest.raises(WeightsError, match="do not fit yolov8-seg-n with 3 classes"):
        resolve_model(other / "last.weights.h5")
    (other / "model.json").write_text("{")
    with pytest.raises(WeightsError, match="model.json: not readable JSON"):
        resolve_model(other / "last.weights.h5")
