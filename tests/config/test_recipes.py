"""Per-scale augmentation recipes: chosen by model=, under whatever the user sets."""

import pytest

from tfseg.config.load import load_config
from tfseg.config.recipes import recipe_for, recipe_line
from tfseg.errors import ConfigError

MODELS = [f"{family}-{scale}" for family in ("yolov8-seg", "yolo11-seg", "yolo26-seg")
          for scale in "nsmlx"]


@pytest.mark.parametrize("name", MODELS)
def test_every_recipe_loads_and_applies(name):
    cfg = load_config([f"model={name}"], "train")
    for key, value in recipe_for(name).items():
        assert getattr(cfg.augment, key) == value
    assert name in recipe_line(cfg)


def test_published_values_reach_the_config():
    cfg = load_config(["model=yolo11-seg-x"], "train")
    assert (cfg.augment.scale, cfg.augment.mixup, cfg.augment.copy_paste) == (0.9, 0.2, 0.6)
    small = load_config(["model=yolov8-seg-n"], "train")
    assert (small.augment.scale, small.augment.mixup, small.augment.copy_paste) == (0.5, 0.0, 0.0)
    assert "the defaults" in recipe_line(small)


def test_keys_the_user_sets_win(tmp_path):
    cfg = load_config(["model=yolo11-seg-m", "mixup=0.05"], "train")
    assert cfg.augment.mixup == 0.05 and cfg.augment.copy_paste == 0.4
    assert "yours instead: mixup=0.05" in recipe_line(cfg)
    user = tmp_path / "mine.yaml"
    user.write_text("model:\n  name: yolo26-seg-l\naugment:\n  scale: 0.3\n")
    cfg = load_config([f"cfg={user}"], "train")
    assert cfg.augment.scale == 0.3 and cfg.augment.mixup == 0.427
    # A resumed run reloads its own config snapshot, which names every key: nothing changes.
    snapshot = tmp_path / "config.yaml"
    snapshot.write_text("model:\n  name: yolo11-seg-l\naugment:\n  mixup: 0.0\n  scale: 0.5\n"
                        "  copy_paste: 0.0\n")
    cfg = load_config([f"cfg={snapshot}"], "train")
    assert (cfg.augment.scale, cfg.augment.mixup, cfg.augment.copy_paste) == (0.5, 0.0, 0.0)


@pytest.mark.parametrize("override", ["mixup=1.5", "cutmix=-0.1", "flipud=2", "copy_paste=1.2",
                                      "perspective=0.01", "copy_paste_mode=paste"])
def test_bad_mixing_values_are_refused(override):
    with pytest.raises(ConfigError, match=override.split("=")[0]):
        load_config([override], "train")
