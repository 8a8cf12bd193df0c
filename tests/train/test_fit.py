"""Bad input during training: batches with no instances, crowd-only images, a diverging rate."""

import json
import math

import numpy as np
import pytest

from tfseg.data.prepare import prepare
from tfseg.model.yolo_seg import build_model
from tfseg.train.fit import freeze_layers, load_start_weights, train


@pytest.fixture(scope="module")
def crowd_only_root(shapes_root, tmp_path_factory):
    """The shapes images with every annotation marked as a crowd region."""
    root = tmp_path_factory.mktemp("crowd")
    content = json.loads((shapes_root / "annotations/instances_train.json").read_text())
    for annotation in content["annotations"]:
        annotation["iscrowd"] = 1
    (root / "annotations").mkdir()
    (root / "annotations/instances_train.json").write_text(json.dumps(content))
    prepare([str(shapes_root / "images/train")] * 2,
            [str(root / "annotations/instances_train.json")] * 2, str(root / "records"),
            splits=["train", "val"], num_workers=0, verbose=False)
    return root


@pytest.mark.slow
def test_a_diverging_rate_stops_with_a_message_naming_the_last_good_checkpoint(
        shapes_root, tmp_path, make_config, run_config):
    # SGD at 1e-3 in epoch 1; lrf = 1e12 makes epoch 2 run at ~3e8: the weights blow up.
    cfg = run_config(make_config(shapes_root, **{
        "train.optimizer": "sgd", "train.lr0": 1e-3, "train.lrf": 1e12, "train.epochs": 3,
        "train.steps_per_epoch": 3, "train.eval_period": 5}))
    run_dir = tmp_path / "run"
    summary = train(cfg, run_dir, verbose=0)

    assert summary["stopped"] == "nan"
    last = run_dir / "weights" / "last.weights.h5"
    # Epoch 2's last update blows the weights up after its loss was computed: the guard
    # checks the weights at the epoch's end, so epoch 1's checkpoint stays the last good one.
    assert "training stopped: " in summary["message"]
    assert f"Last good checkpoint: {last} (end of epoch 1)" in summary["message"]
    model = build_model("yolov8-seg-n", 2, 64)
    model.load_weights(str(last))
    assert all(np.isfinite(np.asarray(w)).all() for w in model.weights)
    # The resume backup still holds the good epoch, not the diverged state.
    assert json.loads((run_dir / "backup" / "training_metadata.json").read_text())["epoch"] == 1


def test_fine_tuning_keeps_matching_layers_and_reinitialises_the_class_outputs(tmp_path):
    source = build_model("yolov8-seg-n", 3, 64)
    for w in source.weights:
        w.assign(np.full(w.shape, 0.5, w.dtype))
    source.save_weights(str(tmp_path / "source.weights.h5"))
    target = build_model("yolov8-seg-n", 2, 64)
    fresh = load_start_weights(target, tmp_path / "source.weights.h5")
    assert fresh and all("head" in path for path in fresh)
    loaded = [w for w in target.weights if w.path not in fresh]
    assert all((np.asarray(w) == 0.5).all() for w in loaded)
    assert target.get_layer("stem").weights[0].numpy().flat[0] == 0.5


def test_freeze_marks_the_first_layers_untrainable():
    model = build_model("yolov8-seg-n", 2, 64)
    total = len(model.trainable_weights)
    assert freeze_layers(model, 3) == ["stem", "down2", "stage2"]
    assert not model.get_layer("stage2").trainable and model.get_layer("down3").trainable
    assert len(model.trainable_weights) < total


@pytest.mark.slow  # a training
def test_crowd_only_images_train_with_finite_losses_and_one_trace_of_step_and_evaluation(
        crowd_only_root, tmp_path, make_config, run_config, monkeypatch):
    """Two epochs of two steps on images whose every annotation is a crowd region, each
    epoch evaluated.

    Crowd-only images give batches without instances: nothing to regress, classes pushed
    to background, all finite. The train step: the optimizer is built before fit; built
    inside the first trace, its variables made TensorFlow trace the whole step a second
    time and keep both graphs (~300 MB at 320 px). Each trace runs the step's Python body,
    so the loss is called once per trace. The evaluation: one detector for the run, traced
    once (a new tf.function per evaluation retraced the network and post-processing every
    epoch).
    """
    import tfseg.train.fit as fit
    from tfseg.model.yolo_seg import YoloSeg

    traced, made = [], []
    real_loss, real_detector = YoloSeg.compute_loss, fit.make_detector

    def counting_loss(self, *args, **kwargs):
        traced.append(1)
        return real_loss(self, *args, **kwargs)

    def counting_detector(*args, **kwargs):
        made.append(real_detector(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(YoloSeg, "compute_loss", counting_loss)
    monkeypatch.setattr(fit, "make_detector", counting_detector)
    cfg = run_config(make_config(crowd_only_root, **{"train.epochs": 2, "train.steps_per_epoch": 2,
                                                      "model.num_classes": 2}))
    summary = train(cfg, tmp_path / "run", verbose=0)
    assert summary["stopped"] == "completed" and summary["epochs_trained"] == 2
    assert summary["batches"] == 4 and summary["updates"] == 4
    metrics = summary["metrics"]
    assert metrics["box_loss"] == 0.0 and metrics["seg_loss"] == 0.0 and metrics["dfl_loss"] == 0.0
    assert math.isfinite(metrics["cls_loss"]) and metrics["cls_loss"] > 0
    assert len(traced) == 1
    assert len(made) == 1 and made[0].experimental_get_tracing_count() == 1
