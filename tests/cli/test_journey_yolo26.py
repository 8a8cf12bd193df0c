"""YOLO26-seg as a user meets it: the installed ``tfseg`` in fresh folders.

``tfseg info`` prints the reference's parameter count; a YOLO26 state dict is imported with
``import-weights`` and predicts with the one-to-one head's top-k (and, with
``end2end=false``, with the one-to-many head + NMS). Training: test_journey_yolo26_train.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from cli_runner import run_tfseg as tfseg

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "model"




@pytest.mark.slow  # a tfseg process that loads TensorFlow and builds the network
def test_info_prints_the_reference_parameter_count(tmp_path):
    out = tfseg(tmp_path, "info", "model=yolo26-seg-n", "imgsz=64")
    assert "3,126,280 (reference convention)" in out.stdout


def _state_dict_file(folder: Path) -> Path:
    """The parity fixture's YOLO26-seg-n state dict (3 classes) as a user's .npz file."""
    from reference_weights import reference_like_weights

    entries = json.loads((FIXTURES / "yolo26-seg-n.state.json").read_text())
    state = reference_like_weights(entries)
    for name in state:  # positive distances (about 3 strides), as a trained box branch gives
        if name.split(".")[2] in ("cv2", "one2one_cv2") and name.endswith(".2.bias"):
            state[name] = state[name] + 3.0
    path = folder / "y26n.npz"
    np.savez(path, **state)
    return path


@pytest.mark.slow  # three processes that each load TensorFlow and build the network
def test_import_weights_then_predict_with_and_without_nms(tmp_path):
    checkpoint = _state_dict_file(tmp_path)
    tfseg(tmp_path, "import-weights", checkpoint.name, "model=yolo26-seg-n", "imgsz=96")
    weights = tmp_path / "y26n.weights.h5"
    assert weights.is_file() and (tmp_path / "y26n.json").is_file()
    photo = tmp_path / "scene.png"
    cv2.imwrite(str(photo), cv2.imread(str(FIXTURES / "scene.png")))
    counts = {}
    for flag in ("true", "false"):
        tfseg(tmp_path, "predict", f"weights={weights.name}", f"source={photo.name}",
              "conf=0.5", "max_det=10", "save_json=true", f"end2end={flag}",
              f"name=e2e_{flag}")
        frames = json.loads((tmp_path / f"runs/predict/e2e_{flag}/predictions.json").read_text())
        detections = [d for frame in frames for d in frame["detections"]]
        counts[flag] = len(detections)
        assert all(d["score"] >= 0.5 for d in detections) and len(detections) <= 10
    assert counts["true"] >= 1 and counts["false"] >= 1
