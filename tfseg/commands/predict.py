"""``tfseg predict source=<image|folder|glob|video|camera> weights=<run dir|file>``."""

from __future__ import annotations

import json
from pathlib import Path

from tfseg.commands.models import (load_run_config, load_trained_model, prepared_dataset,
                                   resolve_weights)
from tfseg.errors import ConfigError
from tfseg.runs import new_run_dir, save_config

CLASSES_FILE = "classes.json"  # written by tfseg train beside config.yaml


def class_names_for(weights: Path, num_classes: int) -> list[str]:
    """Class names stored with the weights (a run's classes.json or an export's metadata)."""
    for folder in (weights, *weights.parents[:3]):
        for name in (CLASSES_FILE, "metadata.json"):
            candidate = folder / name
            if candidate.is_file():
                names = json.loads(candidate.read_text()).get("class_names")
                if names:
                    return list(names)
    return [f"class{i}" for i in range(num_classes)]


def _backend(cfg, weights: str):
    """A Keras model, or an exported model's backend (.tflite file, SavedModel folder), and
    the class names."""
    path = Path(weights)
    if path.suffix == ".tflite" or (path / "saved_model.pb").is_file():
        from tfseg.export.backends import load_backend

        backend = load_backend(path)
        return backend, class_names_for(path, backend.num_classes)
    resolved = resolve_weights(weights)
    if cfg.model.num_classes:
        return load_trained_model(cfg, weights), class_names_for(resolved, cfg.model.num_classes)
    # Bare weights: the classes are the configured dataset's.
    cfg, _, classes = prepared_dataset(cfg, verbose=False)
    return load_trained_model(cfg, weights), classes["class_names"]


def run(args) -> int:
    overrides = list(args.overrides)
    cfg = load_run_config(overrides, "predict")
    weights = cfg.predict.weights or cfg.model.weights
    if not weights:
        raise ConfigError("predict needs weights=<run directory, .weights.h5, .keras, "
                          ".tflite or SavedModel folder>")
    if not cfg.predict.source:
        raise ConfigError("predict needs source=<image, folder, glob, video file or camera index>")
    model, names = _backend(cfg, weights)

    from tfseg.predict.loop import predict

    run_dir = new_run_dir(cfg.project, "predict", cfg.name)
    save_config(run_dir, cfg)
    options = cfg.predict
    summary = predict(model, options.source, run_dir, names, conf=options.conf, iou=options.iou,
                      max_det=options.max_det, save_json=options.save_json,
                      cutouts=options.cutouts != "none",
                      cutout_background="transparent" if options.cutouts == "alpha" else "black",
                      mask_format=options.mask_format, agnostic=options.agnostic,
                      save_overlays=options.save_overlays)
    print(f"results: {run_dir}")
    return 0 if summary.get("frames") else 1
