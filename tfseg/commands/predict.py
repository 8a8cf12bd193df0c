"""``tfseg predict source=<image|folder|glob|video|camera> weights=<run, weights, .pt or export>``.

The model and its class names come from the weights alone (tfseg.resolve): no
dataset is read or written.
"""

from __future__ import annotations

from tfseg.commands.models import load_run_config
from tfseg.errors import ConfigError
from tfseg.runs import new_run_dir, save_config


def run(args) -> int:
    overrides = list(args.overrides)
    cfg = load_run_config(overrides, "predict")
    weights = cfg.predict.weights or cfg.model.weights
    if not weights:
        raise ConfigError("predict needs weights=<run folder, .weights.h5, .keras, Ultralytics "
                          ".pt/.safetensors, .tflite or export folder>")
    if not cfg.predict.source:
        raise ConfigError("predict needs source=<image, folder, glob, video file or camera index>")
    from tfseg.resolve import explicit_model_options, resolve_model

    loaded = resolve_model(weights, **explicit_model_options(overrides, "predict"))
    if cfg.predict.augment and loaded.is_export:
        raise ConfigError(f"augment=true needs a Keras model; {weights} is an export (a fixed "
                          "one-view graph): predict with the run folder or its weights")

    from tfseg.config.factory import predict_arguments
    from tfseg.predict.loop import predict

    run_dir = new_run_dir(cfg.project, "predict", cfg.name)
    save_config(run_dir, cfg)
    summary = predict(loaded.model, cfg.predict.source, run_dir, loaded.info.class_names,
                      **predict_arguments(cfg))
    print(f"results: {run_dir}")
    return 0 if summary.get("frames") else 1
