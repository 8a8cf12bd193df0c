"""The Python API (``import tfseg``): light to import, and the README's snippet run as printed."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Runs the snippet as a script (runpy), then writes what it left behind for the test to check.
DRIVER = """
import json, runpy
ns = runpy.run_path("snippet.py", run_name="__main__")
found, exported = ns["found"], ns["exported"]
json.dump({
    "loss": [float(v) for v in ns["history"].history["loss"]],
    "class_names": list(ns["train"].class_names),
    "image_shape": list(ns["image"].shape),
    "boxes": found.boxes.tolist(), "scores": found.scores.tolist(),
    "classes": found.classes.tolist(),
    "mask_shapes": [list(found.full_mask(i).shape) for i in range(len(found))],
    "tflite": str(ns["files"]["tflite_float32"]),
    "exported": {"kind": exported.kind, "class_names": exported.info.class_names,
                 "image_size": exported.info.image_size},
}, open("facts.json", "w"))
"""


def readme_snippet() -> str:
    """The Python block after ``<!-- python-api -->`` in README.md, exactly as printed."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- python-api -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README.md has no ```python block after <!-- python-api -->"
    return found.group(1)


def test_import_tfseg_leaves_tensorflow_unloaded_and_lists_the_api():
    code = ("import sys, tfseg; print('tensorflow' in sys.modules); "
            "print(sorted(set(tfseg.__all__) - set(dir(tfseg))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT / "tests")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "[]"]


def test_every_api_name_resolves_and_unknown_names_fail():
    import tfseg

    for name in tfseg.__all__:
        assert getattr(tfseg, name) is not None
    assert tfseg.load.__module__ == "tfseg.api"
    with pytest.raises(AttributeError, match="no attribute 'fit'"):
        tfseg.fit  # noqa: B018


@pytest.mark.slow  # traces a train step
def test_a_loaded_keras_model_is_ready_for_fit_and_traces_its_step_once(tmp_path, monkeypatch):
    """tfseg.load gives weights their loss, so compile + fit need nothing else; the user's
    own Keras optimizer is built before the first trace, so the step is traced once (a
    trace that creates the optimizer's variables is followed by a second one)."""
    import keras
    from tiny_batch import tiny_batch

    import tfseg
    from tfseg.model.artifact import ModelInfo, write_model_info
    from tfseg.model.yolo_seg import YoloSeg

    traced, real_loss = [], YoloSeg.compute_loss

    def counting_loss(self, *args, **kwargs):  # runs once per trace of the step
        traced.append(1)
        return real_loss(self, *args, **kwargs)

    monkeypatch.setattr(YoloSeg, "compute_loss", counting_loss)

    network = tfseg.build_model("yolov8-seg-n", 2, 64)
    network.save_weights(str(tmp_path / "last.weights.h5"))
    write_model_info(tmp_path, ModelInfo("yolov8-seg-n", 64, ["a", "b"], [1, 2]))
    loaded = tfseg.load(tmp_path / "last.weights.h5")
    model = loaded.model
    model.compile(optimizer=keras.optimizers.Adam(0.0))  # slots: variables to create
    images, targets = tiny_batch()
    model.train_on_batch(images, targets)
    logs = model.train_on_batch(images, targets, return_dict=True)
    assert math.isfinite(logs["loss"]) and logs["loss"] > 0
    assert {"box_loss", "cls_loss", "seg_loss"} <= set(logs)
    assert len(traced) == 1


@pytest.mark.slow
def test_the_readme_python_snippet_trains_detects_and_exports(tmp_path):
    (tmp_path / "snippet.py").write_text(readme_snippet())
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", DRIVER], cwd=tmp_path, capture_output=True,
                         text=True, env=env, timeout=900)
    assert out.returncode == 0, f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    facts = json.loads((tmp_path / "facts.json").read_text())

    assert facts["loss"] and all(math.isfinite(v) and v > 0 for v in facts["loss"])
    assert facts["class_names"] == ["circle", "rectangle", "triangle"]
    height, width = facts["image_shape"][:2]
    assert 1 <= len(facts["scores"]) <= 5  # max_det=5 at conf 0.001 on an untrained net
    assert facts["scores"] == sorted(facts["scores"], reverse=True)
    assert all(0.001 <= s <= 1 for s in facts["scores"])
    assert all(0 <= c < 3 for c in facts["classes"])
    for x0, y0, x1, y1 in facts["boxes"]:  # original pixels of the 160 x 120 image
        assert 0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height
    assert facts["mask_shapes"] == [[height, width]] * len(facts["scores"])

    tflite = tmp_path / facts["tflite"]  # the path export_model returned, relative to the run
    assert tflite.is_file() and tflite.resolve().parent == (tmp_path / "export").resolve()
    assert facts["exported"] == {"kind": "tflite", "class_names": facts["class_names"],
                                 "image_size": 64}
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(tflite)).get_signature_runner("detect")
    inputs = runner.get_input_details()
    image_input = next(d for d in inputs.values() if len(d["shape"]) == 4)
    assert list(image_input["shape"]) == [1, 64, 64, 3]
    assert {"boxes", "scores", "classes", "masks", "num_detections"} <= set(
        runner.get_output_details())
