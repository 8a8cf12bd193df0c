"""Configs of trained runs, and the dataset a command needs (models load in tfseg/resolve.py)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tfseg.commands.datasets import DatasetPaths, ensure_dataset, ensure_records
from tfseg.config import RunConfig, load_config
from tfseg.errors import ConfigError
from tfseg.runs import CONFIG_FILE


def load_run_config(overrides: list[str], section: str) -> RunConfig:
    """The config of a command that uses trained weights.

    ``weights=<run directory>`` starts from that run's config.yaml (model name, classes,
    image size and dataset as trained); the other overrides still apply on top.
    """
    for item in overrides:
        key, _, value = item.partition("=")
        if key in ("weights", "model.weights") and (Path(value) / CONFIG_FILE).is_file():
            return load_config([f"cfg={Path(value) / CONFIG_FILE}", *overrides], section=section)
    return load_config(overrides, section=section)


def prepared_dataset(cfg: RunConfig, verbose: bool = True) -> tuple[RunConfig, DatasetPaths, dict]:
    """Make sure the dataset and its records exist; return the config with absolute paths and
    the class count resolved, the paths, and the class info (names, category ids)."""
    paths = ensure_dataset(cfg.data, quiet=not verbose) if cfg.data.format == "coco" else None
    if paths is None:
        from tfseg.commands.datasets import dataset_paths

        paths = dataset_paths(cfg.data)
    summary = ensure_records(cfg.data, paths, verbose=verbose)
    classes = {"class_names": summary["class_names"], "category_ids": summary["category_ids"]}
    num_classes = len(classes["class_names"])
    if cfg.model.num_classes and cfg.model.num_classes != num_classes:
        raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but dataset "
                          f"'{cfg.data.name}' has {num_classes} classes")
    data = replace(cfg.data, root=str(paths.root), records=str(paths.records),
                   train_images=str(paths.train_images), val_images=str(paths.val_images),
                   train_annotations=str(paths.train_annotations),
                   val_annotations=str(paths.val_annotations))
    cfg = replace(cfg, data=data, model=replace(cfg.model, num_classes=num_classes))
    return cfg, paths, classes
