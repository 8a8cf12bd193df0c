"""A tiny prepared shapes dataset and a tiny training config, shared by tests/train."""

from pathlib import Path

import pytest

from tfseg.data.prepare import prepare
from tfseg.data.shapes import write_shapes

TRAIN_JSON = "annotations/instances_train.json"


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory) -> Path:
    """8 images of 64 px, 2 classes, at most 2 shapes each; the val split is the train images
    (the convergence test measures overfitting)."""
    root = tmp_path_factory.mktemp("shapes")
    write_shapes(str(root), num_train=8, num_val=2, seed=0, min_size=64, max_size=64,
                 num_classes=2, max_instances=2)
    prepare([str(root / "images/train")] * 2, [str(root / TRAIN_JSON)] * 2, str(root / "records"),
            splits=["train", "val"], num_workers=0, verbose=False)
    return root


def tiny_config(root: Path, **overrides) -> dict:
    """Dotted keys of a 64 px, batch 8, AdamW run without augmentation, no XLA (compiling
    the train step with XLA takes minutes on 2 cores)."""
    config = {
        "data.root": str(root), "data.val_annotations": TRAIN_JSON, "data.max_instances": 4,
        "model.image_size": 64, "train.batch": 8, "train.epochs": 3, "train.steps_per_epoch": 4,
        "train.optimizer": "adamw", "train.lr0": 0.01, "train.lrf": 1.0,
        "train.warmup_epochs": 0.0, "train.jit_compile": False, "train.nominal_batch": 0,
        "train.patience": 0, "train.eval_period": 1,
        # float32 on every CPU, so these tests compute the same on machines with and without
        # bfloat16 math; test_mixed_precision.py trains under the mixed policies.
        "train.mixed_precision": False,
        "augment.mosaic": 0.0, "augment.close_mosaic": 0, "augment.fliplr": 0.0,
        "augment.scale": 0.0, "augment.translate": 0.0, "augment.hsv_h": 0.0,
        "augment.hsv_s": 0.0, "augment.hsv_v": 0.0,
    }
    config.update(overrides)
    return config


def apply_config(config: dict):
    """A RunConfig with the dotted keys set."""
    from tfseg.config.schema import RunConfig

    cfg = RunConfig()
    for dotted, value in config.items():
        section, key = dotted.split(".")
        setattr(getattr(cfg, section), key, value)
    return cfg


@pytest.fixture
def make_config():
    """``tiny_config`` as a fixture (test modules cannot import this conftest)."""
    return tiny_config


@pytest.fixture
def run_config():
    """``apply_config`` as a fixture: dotted keys -> RunConfig."""
    return apply_config
