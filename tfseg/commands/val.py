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
    if cfg.eval.tile:
        return _tiled(cfg, model)
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


def _tiled(cfg, model) -> int:
    """``eval.tile``: each ORIGINAL image of the split as tiles plus a whole-image pass
    (tfseg.predict.tiles), scored on the host (tfseg.evaluate.images); no records needed."""
    from tfseg.commands.datasets import ensure_dataset
    from tfseg.config.factory import tile_arguments
    from tfseg.data.coco import load_json, parse_categories
    from tfseg.evaluate.images import evaluate_images
    from tfseg.predict.backends import KerasBackend
    from tfseg.predict.tiles import detect_tiled

    options, tiles = cfg.eval, tile_arguments(cfg, "eval")
    if options.multi_label:
        raise ConfigError("eval.multi_label is not available with eval.tile: tiles are merged "
                          "from best-class detections")
    paths = ensure_dataset(cfg.data) if cfg.data.format == "coco" else prepared_dataset(cfg)[1]
    annotations, images = ((paths.val_annotations, paths.val_images) if options.split == "val"
                           else (paths.train_annotations, paths.train_images))
    category_ids, class_names = parse_categories(load_json(str(annotations))["categories"],
                                                 str(annotations))
    if cfg.model.num_classes and cfg.model.num_classes != len(class_names):
        raise ConfigError(f"the model has {cfg.model.num_classes} classes but {annotations} has "
                          f"{len(class_names)}")
    backend = model if hasattr(model, "detect") else KerasBackend(
        model, options.conf, options.iou, options.max_det, options.agnostic, options.end2end,
        options.augment)

    def detect(image):
        return detect_tiled(backend, image, options.conf, options.iou, options.max_det,
                            tiles["tile"], tiles["tile_overlap"], options.agnostic)

    run_dir = new_run_dir(cfg.project, "val", cfg.name)
    save_config(run_dir, cfg)
    settings = dict(conf=options.conf, iou=options.iou, max_det=options.max_det,
                    agnostic=options.agnostic, augment=options.augment, **tiles)
    metrics = evaluate_images(detect, annotations, images, category_ids, class_names,
                              output_dir=run_dir, settings=settings, plots=options.plots)
    print(f"results: {run_dir} (tiles of {tiles['tile']} px, box mAP50-95 "
          f"{metrics['box/mAP50-95']:.4f}, mask mAP50-95 {metrics['mask/mAP50-95']:.4f})")
    return 0
