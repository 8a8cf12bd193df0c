"""Every key of the schema reaches something: changing it changes what is built or run, or
the value is refused. None is accepted and then ignored.

The table below has one row per key (the test fails when a schema key has no row, or a row
names no key). A row says how the key is shown to matter:

* a probe name: the probe (a function of the loaded RunConfig: a factory output, the
  dataset paths, the built model, the strategy...) returns something different for the
  default config and the config with the key changed;
* ``REJECTED``: the changed value is refused with a ConfigError naming the key;
* ``test:<file>::<function>``: a behavioural test of the training loop shows it (those keys
  are read by tfseg.train.fit itself: epochs of training, patience, resume...);
* ``read:<module>``: read by a command owned elsewhere, not through the factory yet; the test
  checks the module reads it (the weakest form: these are listed in the report to wire up).
"""

import ast
import re
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.config import factory
from tfseg.config.load import LEAF_KEYS, load_config
from tfseg.config.paths import dataset_paths
from tfseg.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
REJECTED = "REJECTED"
CALLBACKS = "test:tests/train/test_callbacks.py::"
JOURNEY = "test:tests/cli/test_journey_train.py::"
FINETUNE = JOURNEY + "test_finetune_on_fewer_classes_and_eval_period_above_patience"
BASE = ["imgsz=64", "model.num_classes=2"]  # small, so the built-model probe is quick

# key -> (changed value, how it is shown to matter)
KEYS = {
    "task": ("detect", REJECTED),
    "project": ("elsewhere", "run_dir"),
    "name": ("exp7", "run_dir"),
    "model.name": ("yolo11-seg-n", "model"),
    "model.num_classes": ("5", "model"),
    "model.weights": ("{weights}", "built"),
    "model.image_size": ("96", "model"),
    "data.name": ("coco", "paths"),
    "data.format": ("yolo", "read:tfseg/commands/datasets.py"),
    "data.root": ("/tmp/elsewhere", "paths"),
    "data.train_images": ("pics/train", "paths"),
    "data.train_annotations": ("a/train.json", "paths"),
    "data.val_images": ("pics/val", "paths"),
    "data.val_annotations": ("a/val.json", "paths"),
    "data.records": ("recs", "paths"),
    "data.data_yaml": ("data.yaml", "read:tfseg/config/paths.py"),
    "data.prepare_workers": ("2", "prepare"),
    "data.strict": ("true", "prepare"),
    "data.beam_options": ("--runner=DirectRunner", "prepare"),
    "data.overwrite": ("true", "prepare"),
    "data.cache": ("ram", "train_data"),
    "data.max_instances": ("7", "train_data"),
    "data.shapes_train": ("9", "shapes"),
    "data.shapes_val": ("9", "shapes"),
    "data.shapes_seed": ("9", "shapes"),
    "data.shapes_min_size": ("90", "shapes"),
    "data.shapes_max_size": ("170", "shapes"),
    "data.shapes_num_classes": ("2", "shapes"),
    "data.shapes_objects": ("50", "shapes"),
    "augment.mosaic": ("0.5", "train_data"),
    "augment.close_mosaic": ("3", CALLBACKS + "test_close_mosaic_turns_mosaic_off_for_the_last_epochs"),
    "augment.degrees": ("5", "train_data"),
    "augment.translate": ("0.2", "train_data"),
    "augment.scale": ("0.3", "train_data"),
    "augment.shear": ("2", "train_data"),
    "augment.fliplr": ("0.1", "train_data"),
    "augment.hsv_h": ("0.1", "train_data"),
    "augment.hsv_s": ("0.1", "train_data"),
    "augment.hsv_v": ("0.1", "train_data"),
    "augment.min_area": ("9", "train_data"),
    "augment.perspective": ("0.0005", "train_data"),
    "augment.flipud": ("0.5", "train_data"),
    "augment.mixup": ("0.1", "train_data"),
    "augment.cutmix": ("0.1", "train_data"),
    "augment.copy_paste": ("0.1", "train_data"),
    "augment.copy_paste_mode": ("mixup", "train_data"),
    "augment.multi_scale": ("0.5", "train_data"),
    "train.epochs": ("7", "optimizer"),
    "train.batch": ("4", "optimizer"),
    "train.steps_per_epoch": ("3", "optimizer"),
    "train.optimizer": ("sgd", "optimizer"),
    "train.lr0": ("0.002", REJECTED),  # under the default optimizer auto; see below for sgd
    "train.lrf": ("0.1", "optimizer"),
    "train.momentum": ("0.8", REJECTED),
    "train.weight_decay": ("0.001", "optimizer"),
    "train.warmup_epochs": ("1", "optimizer"),
    "train.warmup_bias_lr": ("0.05", REJECTED),
    "train.cosine": ("true", "optimizer"),
    "train.ema": ("false", FINETUNE),
    "train.clip_norm": ("1", "optimizer"),
    "train.nominal_batch": ("0", "optimizer"),
    "train.mixed_precision": ("false", "precision"),
    "train.jit_compile": ("false", "xla"),
    "train.box": ("5", "loss"),
    "train.cls": ("1", "loss"),
    "train.dfl": ("1", "loss"),
    "train.seg": ("3", "loss"),
    "train.topk": ("13", "loss"),
    "train.alpha": ("1", "loss"),
    "train.beta": ("4", "loss"),
    "train.max_mask_anchors": ("64", "loss"),
    "train.patience": ("3", CALLBACKS + "test_patience_counts_epochs_but_stops_only_at_evaluations"),
    "train.eval_period": ("3", FINETUNE),
    "train.freeze": ("3", "built"),
    "train.strategy": ("mirrored", "strategy"),
    "train.resume": ("{run}", JOURNEY + "test_sigkill_then_resume_continues_and_keeps_the_history"),
    "train.seed": ("3", "train_data"),
    "eval.conf": ("0.1", "evaluate"),
    "eval.iou": ("0.5", "evaluate"),
    "eval.max_det": ("50", "evaluate"),
    "eval.tile": ("256", "eval_tiles"),
    "eval.tile_overlap": ("0.3", "eval_tiles"),
    "eval.batch": ("2", "eval_data"),
    "eval.agnostic": ("true", "evaluate"),
    "eval.multi_label": ("true", "evaluate"),
    "eval.augment": ("true", "evaluate"),
    "eval.end2end": ("false", "evaluate"),
    "eval.split": ("train", "read:tfseg/commands/val.py"),
    "eval.plots": ("false", "evaluate"),
    "predict.source": ("photo.jpg", "read:tfseg/commands/predict.py"),
    "predict.conf": ("0.5", "predict"),
    "predict.iou": ("0.5", "predict"),
    "predict.max_det": ("5", "predict"),
    "predict.tile": ("1", "predict"),
    "predict.tile_overlap": ("0.5", "predict"),
    "predict.save_json": ("true", "predict"),
    "predict.mask_format": ("polygon", "predict"),
    "predict.cutouts": ("alpha", "predict"),
    "predict.agnostic": ("true", "predict"),
    "predict.end2end": ("false", "predict"),
    "predict.augment": ("true", "predict"),
    "predict.save_overlays": ("false", "predict"),
    "predict.weights": ("w.tflite", "read:tfseg/commands/predict.py"),
    "predict.tracker": ("bytetrack.yaml", "read:tfseg/commands/predict.py"),
    "export.formats": ("tflite", "export"),
    "export.raw": ("false", "export"),
    "export.tflite_modes": ("float16", "export"),
    "export.conf": ("0.5", "export"),
    "export.iou": ("0.5", "export"),
    "export.max_det": ("5", "export"),
    "export.agnostic": ("true", "export"),
    "export.end2end": ("false", "export"),
    "export.serving_name": ("other", "export"),
    "export.serving_version": ("2", "export"),
    "export.calibration_images": ("5", "export"),
    "export.mask_size": ("56", "export"),
    "export.mask_dtype": ("uint8", "export"),
    "export.standard_outputs": ("true", "export"),
    "export.parity": ("false", "export"),
    "export.parity_images": ("7", "export"),
    "export.parity_max_drop": ("-1", "export"),
}


def _built(cfg):
    """The model fit builds (start weights loaded, layers frozen): trainable count and the
    stem kernel's sum, with the initialisation seeded so only the key can change them."""
    from tfseg.train.fit import _build

    keras.utils.set_random_seed(0)
    model = _build(cfg, 2, "float32")
    return len(model.trainable_weights), float(np.asarray(model.get_layer("stem").weights[0]).sum())


def _run_dir(new_run_dir, cfg) -> Path:
    """The run directory a command would create, relative to a fresh working folder."""
    base = Path(tempfile.mkdtemp())
    return new_run_dir(base / cfg.project, "train", cfg.name).relative_to(base)


def _probes(tmp_path):
    from tfseg.runs import new_run_dir
    from tfseg.train.fit import _use_xla
    from tfseg.train.precision import precision_policy
    from tfseg.train.strategy import make_strategy

    return {
        "model": lambda c: factory.model_arguments(c, 3),
        "loss": lambda c: factory.loss_arguments(c, 3),
        "optimizer": lambda c: factory.optimizer_arguments(c, factory.steps_per_epoch(c, 64), 3),
        "train_data": lambda c: factory.dataset_arguments(c, training=True),
        "eval_data": lambda c: factory.dataset_arguments(c, training=False),
        "evaluate": factory.evaluate_arguments,
        "eval_tiles": lambda c: factory.tile_arguments(c, "eval"),
        "predict": lambda c: (factory.predict_arguments(c), factory.postprocess_arguments(c, "predict")),
        "export": lambda c: (factory.export_arguments(c), factory.postprocess_arguments(c, "export")),
        "shapes": lambda c: factory.shapes_arguments(c.data),
        "prepare": lambda c: factory.prepare_arguments(c.data),
        "paths": lambda c: dataset_paths(c.data),
        "run_dir": lambda c: _run_dir(new_run_dir, c),
        "built": _built,
        "strategy": lambda c: type(make_strategy(c.train.strategy)).__name__,
        "precision": lambda c: precision_policy(c.train.mixed_precision),
        "xla": lambda c: _use_xla(c.train.jit_compile),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A weights file of the base model with every value 0.5, and a run directory."""
    from tfseg.model.yolo_seg import build_model
    from tfseg.runs import save_config

    root = tmp_path_factory.mktemp("keys")
    model = build_model("yolov8-seg-n", 2, 64)
    for w in model.weights:
        w.assign(np.full(w.shape, 0.5, w.dtype))
    model.save_weights(str(root / "start.weights.h5"))
    save_config(root / "run", load_config(BASE))
    return {"weights": str(root / "start.weights.h5"), "run": str(root / "run")}


def test_the_table_covers_every_schema_key_and_nothing_else():
    assert set(KEYS) == set(LEAF_KEYS)


@pytest.mark.parametrize("key", list(KEYS))
def test_a_changed_value_changes_what_is_built_or_run(key, files, tmp_path, capsys):
    value, how = KEYS[key]
    value = value.format(**files)
    override = f"{key}={value}"
    if how == REJECTED:
        with pytest.raises(ConfigError, match=re.escape(key.split(".")[-1])):
            load_config([*BASE, override])
        return
    if how.startswith("test:"):
        path, function = how[len("test:"):].split("::")
        tree = ast.parse((ROOT / path).read_text())
        assert function in {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
        return
    if how.startswith("read:"):
        source = (ROOT / how[len("read:"):]).read_text()
        assert re.search(rf"\b{re.escape(key)}\b", source), f"{how} does not read {key}"
        return
    probe = _probes(tmp_path)[how]
    default, changed = load_config(BASE), load_config([*BASE, override])
    if how == "precision" and not tf.config.list_physical_devices("GPU"):
        from tfseg.train.precision import cpu_has_bf16

        if cpu_has_bf16():  # bfloat16 math on this CPU: the default takes the mixed policy
            assert (probe(default), probe(changed)) == ("mixed_bfloat16", "float32")
        else:  # nothing benefits: float32 either way, and the default says why
            assert probe(changed) == "float32"
            capsys.readouterr()
            assert probe(default) == "float32"
            assert "no GPU of compute capability 7.0 or newer" in capsys.readouterr().out
        return
    if how == "xla" and not tf.config.list_physical_devices("GPU"):
        # Read where fit reads it and off on CPUs by design (slower there, see fit._use_xla;
        # the default anyway).
        assert probe(default) == probe(changed)
        return
    assert probe(default) != probe(changed), f"{key}={value} changed nothing in {how}"


def test_lr0_and_momentum_reach_the_optimizer_once_one_is_chosen():
    cfg = load_config([*BASE, "optimizer=sgd", "lr0=0.002", "momentum=0.8", "warmup_bias_lr=0.05"])
    args = factory.optimizer_arguments(cfg, 10, 3)
    assert (args["name"], args["lr0"], args["momentum"], args["warmup_bias_lr"]) == ("sgd", 0.002, 0.8, 0.05)


def test_auto_with_an_explicit_rate_says_how_to_keep_it():
    with pytest.raises(ConfigError, match="lr0=0.002 would be ignored; set optimizer=adamw or optimizer=sgd"):
        load_config(["lr0=0.002", "freeze=10"])


def test_the_loss_is_built_with_the_configured_gains_and_assigner():
    from tfseg.loss.yolo_seg_loss import YoloSegLoss

    cfg = load_config([*BASE, "seg=3", "topk=13", "alpha=1", "beta=4", "max_mask_anchors=64"])
    loss = YoloSegLoss(**factory.loss_arguments(cfg, 3))
    assert loss.gains["seg"] == 3.0 and loss.gains["box"] == 7.5
    assert (loss.topk, loss.alpha, loss.beta, loss.max_mask_anchors) == (13, 1.0, 4.0, 64)
    assert YoloSegLoss(**factory.loss_arguments(load_config(BASE), 3)).gains["seg"] == 7.5


def test_bad_mask_format_is_refused_at_load():
    with pytest.raises(ConfigError, match="predict.mask_format must be rle or polygon"):
        load_config(["mask_format=png"])
