"""``tfseg export weights=<run dir|file>`` and ``tfseg export --check-gpu model.tflite``."""

from __future__ import annotations

from tfseg.commands.models import load_run_config, load_trained_model, prepared_dataset
from tfseg.errors import ConfigError
from tfseg.runs import new_run_dir, save_config


def run(args) -> int:
    if args.check_gpu:
        from tfseg.export.api import check_gpu_main

        return check_gpu_main(args.check_gpu)
    cfg = load_run_config(args.overrides, "export")
    if not cfg.model.weights:
        raise ConfigError("export needs weights=<run directory, .weights.h5 or .keras file>")
    # The dataset gives the class names and, for int8, the calibration images.
    cfg, _, classes = prepared_dataset(cfg, verbose=False)
    model = load_trained_model(cfg, cfg.model.weights)

    from tfseg.export.api import export_from_config

    run_dir = new_run_dir(cfg.project, "export", cfg.name)
    save_config(run_dir, cfg)
    for path in export_from_config(cfg, model, classes, run_dir):
        print(f"wrote {path}")
    print(f"exports: {run_dir}")
    return 0
