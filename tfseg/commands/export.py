"""``tfseg export weights=<run, weights or .pt>`` and ``tfseg export --check-gpu model.tflite``.

Exports land in ``<project>/export/<name>``: ``name=`` if given, else the run's name
(``weights=runs/train/train`` -> ``runs/export/train``), else the weights file's stem. The
model and its class names come from the weights (tfseg.commands.resolve); a dataset is read
only for int8 calibration images.
"""

from __future__ import annotations

from dataclasses import replace

from tfseg.commands.models import load_run_config, prepared_dataset
from tfseg.errors import ConfigError, WeightsError
from tfseg.runs import new_run_dir, save_config


def run(args) -> int:
    if args.check_gpu:
        from tfseg.export.api import check_gpu_main

        return check_gpu_main(args.check_gpu)
    cfg = load_run_config(args.overrides, "export")
    if not cfg.model.weights:
        raise ConfigError("export needs weights=<run folder, .weights.h5, .keras or an "
                          "Ultralytics .pt/.safetensors>")
    from tfseg.commands.resolve import explicit_model_options, resolve_model

    loaded = resolve_model(cfg.model.weights, **explicit_model_options(args.overrides, "export"))
    if loaded.is_export:
        raise WeightsError(f"{loaded.path} is already an export; export the weights it was made "
                           "from (a run folder or .weights.h5)")
    info = loaded.info
    cfg = replace(cfg, model=replace(cfg.model, name=info.model_name, image_size=info.image_size,
                                     num_classes=info.num_classes))
    if "int8" in cfg.export.tflite_modes.split(","):
        cfg, _, _ = prepared_dataset(cfg, verbose=False)  # calibration images

    from tfseg.export.api import export_from_config

    run_dir = new_run_dir(cfg.project, "export", cfg.name or loaded.run_name)
    save_config(run_dir, cfg)
    classes = {"class_names": info.class_names, "category_ids": info.category_ids}
    for path in export_from_config(cfg, loaded.model, classes, run_dir, info.to_json()):
        print(f"wrote {path}")
    print(f"exports: {run_dir}")
    return 0
