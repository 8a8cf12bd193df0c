"""``tfseg predict source=<image|folder|glob|video|camera> weights=<run, weights, .pt or export>``.

The model and its class names come from the weights alone (tfseg.resolve): no
dataset is read or written. With ``tracker=<yaml>`` the frames are tracked as ``tfseg track``
does (tfseg.commands.track), into runs/predict/<name>.
"""

from __future__ import annotations

from tfseg.commands.models import load_run_config
from tfseg.errors import ConfigError
from tfseg.runs import new_run_dir, save_config


def run(args, verb: str = "predict", tracker: str = "") -> int:
    """``verb`` names the run folder and the messages; ``tracker`` is the tracker YAML used
    when ``predict.tracker`` is empty (``tfseg track`` passes bytetrack.yaml)."""
    overrides = list(args.overrides)
    cfg = load_run_config(overrides, "predict")
    weights = cfg.predict.weights or cfg.model.weights
    if not weights:
        raise ConfigError(f"{verb} needs weights=<run folder, .weights.h5, .keras, Ultralytics "
                          ".pt/.safetensors, .tflite or export folder>")
    if not cfg.predict.source:
        raise ConfigError(f"{verb} needs source=<image, folder, glob, video file, stream URL or "
                          "camera index>")
    tracker = cfg.predict.tracker or tracker
    if tracker:
        from tfseg.track.settings import load_tracker_settings

        settings = load_tracker_settings(tracker)  # a bad file fails before the model loads
    from tfseg.resolve import explicit_model_options, resolve_model

    loaded = resolve_model(weights, **explicit_model_options(overrides, "predict"))
    if cfg.predict.augment and loaded.is_export:
        raise ConfigError(f"augment=true needs a Keras model; {weights} is an export (a fixed "
                          "one-view graph): predict with the run folder or its weights")

    from tfseg.config.factory import predict_arguments
    from tfseg.predict.loop import predict

    run_dir = new_run_dir(cfg.project, verb, cfg.name)
    save_config(run_dir, cfg)
    if tracker:
        from tfseg.commands.track import track_into

        return track_into(run_dir, cfg, loaded, settings)
    summary = predict(loaded.model, cfg.predict.source, run_dir, loaded.info.class_names,
                      **predict_arguments(cfg))
    print(f"results: {run_dir}")
    return 0 if summary.get("frames") else 1
