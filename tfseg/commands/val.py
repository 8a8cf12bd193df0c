"""``tfseg val weights=<run, weights, .pt or export>``: COCO box and mask evaluation into
runs/val/<name>."""

from __future__ import annotations

from dataclasses import replace

from tfseg.commands.models import load_run_config, prepared_dataset
from tfseg.errors import ConfigError
from tfseg.runs import new_run_dir, save_config


def run(args) -> int:
    cfg = load_run_config(args.overrides, "eval")
    if not cfg.model.weights:
        raise ConfigError("val needs weights=<run folder, .weights.h5, .keras, Ultralytics "
                          ".pt/.safetensors, .tflite or export folder>")
    # An export is scored as deployed (its thresholds and max detections were set at export).
    from tfseg.resolve import explicit_model_options, resolve_model

    loaded = resolve_model(cfg.model.weights, **explicit_model_options(args.overrides, "eval"))
    model = loaded.model
    if cfg.eval.augment and loaded.is_export:
        raise ConfigError(f"augment=true needs a Keras model; {cfg.model.weights} is an export "
                          "(a fixed one-view graph): evaluate the run folder or its weights")
    cfg = replace(cfg, model=replace(cfg.model, image_size=loaded.info.image_size,
                                     num_classes=loaded.info.num_classes))
    cfg, paths, classes = prepared_dataset(cfg)

    from tfseg.config.factory import dataset_arguments, evaluate_arguments
    from tfseg.evaluate.loop import evaluate
    from tfseg.pipeline.dataset import build_dataset

    split = cfg.eval.split
    annotations = paths.val_annotations if split == "val" else paths.train_annotations
    dataset = build_dataset(str(paths.records), split, **dataset_arguments(cfg, training=False))
    run_dir = new_run_dir(cfg.project, "val", cfg.name)
    save_config(run_dir, cfg)
    metrics = evaluate(model, dataset, annotations, classes["category_ids"],
                       classes["class_names"], output_dir=run_dir, **evaluate_arguments(cfg))
    print(f"results: {run_dir} (box mAP50-95 {metrics['box/mAP50-95']:.4f}, "
          f"mask mAP50-95 {metrics['mask/mAP50-95']:.4f})")
    return 0
