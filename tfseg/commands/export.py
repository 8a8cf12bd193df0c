"""``tfseg export weights=<run, weights or .pt>`` and ``tfseg export --check-gpu model.tflite``.

Exports land in ``<project>/export/<name>``: ``name=`` if given, else the run's name
(``weights=runs/train/train`` -> ``runs/export/train``), else the weights file's stem. The
model and its class names come from the weights (tfseg.resolve); a dataset is read
for int8 calibration images and for the parity certificate (tfseg.export.certificate).

The certificate is measured on the dataset the model was trained on: the run's, when
``weights=`` is a run folder, or the one typed (``data=...``). Weights alone, or a dataset
that is no longer on disk, export without it and say so ("parity: not measured").
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tfseg.commands.models import load_run_config, prepared_dataset
from tfseg.errors import ConfigError, WeightsError
from tfseg.runs import CONFIG_FILE, new_run_dir, save_config


def run(args) -> int:
    if args.check_gpu:
        from tfseg.export.api import check_gpu_main

        return check_gpu_main(args.check_gpu)
    cfg = load_run_config(args.overrides, "export")
    if not cfg.model.weights:
        raise ConfigError("export needs weights=<run folder, .weights.h5, .keras or an "
                          "Ultralytics .pt/.safetensors>")
    from tfseg.resolve import explicit_model_options, resolve_model

    loaded = resolve_model(cfg.model.weights, **explicit_model_options(args.overrides, "export"))
    if loaded.is_export:
        raise WeightsError(f"{loaded.path} is already an export; export the weights it was made "
                           "from (a run folder or .weights.h5)")
    info = loaded.info
    cfg = replace(cfg, model=replace(cfg.model, name=info.model_name, image_size=info.image_size,
                                     num_classes=info.num_classes))
    cfg, parity_unavailable = _parity_dataset(cfg, args.overrides)
    if "int8" in cfg.export.tflite_modes.split(",") and parity_unavailable:
        cfg, _, _ = prepared_dataset(cfg, verbose=False)  # calibration images

    from tfseg.export.api import export_from_config

    run_dir = new_run_dir(cfg.project, "export", cfg.name or loaded.run_name)
    save_config(run_dir, cfg)
    classes = {"class_names": info.class_names, "category_ids": info.category_ids}
    for path in export_from_config(cfg, loaded.model, classes, run_dir, info.to_json(),
                                   parity_unavailable):
        print(f"wrote {path}")
    print(f"exports: {run_dir}")
    return 0


def _parity_dataset(cfg, overrides: list[str]):
    """The config with its dataset prepared for the parity check, or why there is none.

    Returns:
        (cfg, None) with absolute, prepared dataset paths; or (cfg unchanged, the reason).
    """
    from tfseg.config.load import parse_overrides, resolve_key
    from tfseg.config.paths import dataset_paths

    if not cfg.export.parity:
        return cfg, "export.parity=false"
    from_run = (Path(cfg.model.weights) / CONFIG_FILE).is_file()
    typed = any(k == "cfg" or resolve_key(k, "export").startswith("data.")
                for k, _ in parse_overrides(overrides))
    if not (from_run or typed):
        return cfg, ("no dataset: these weights come without their run; give data=<dataset> "
                     "or weights=<run folder> to measure it")
    paths = dataset_paths(cfg.data)
    source = paths.data_yaml if cfg.data.format == "yolo" else paths.val_annotations
    if source is None or not Path(source).is_file():
        return cfg, f"dataset '{cfg.data.name}' not found: {source} is missing"
    cfg, _, _ = prepared_dataset(cfg, verbose=False)
    return cfg, None
