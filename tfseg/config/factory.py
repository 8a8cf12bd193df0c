"""Config sections -> the plain keyword arguments of the library's constructors and functions.

Deep code takes numbers, not the config tree; these functions are the only places that know
both, so a key added to the schema is wired here once (tests/test_config.py checks that every
key changes one of these outputs, or is rejected, or names the test that shows its effect).
They return dicts, not objects: ``tfseg.config`` may import only ``tfseg.errors``
(tests/test_architecture.py), so the caller does ``model.make_loss(**loss_arguments(cfg, C))``.

==========================  ==========================================================
function                    keyword arguments of
==========================  ==========================================================
model_arguments             tfseg.model.yolo_seg.build_model
steps_per_epoch             (a number: global batches per epoch)
loss_arguments              tfseg.model.yolo_seg.YoloSeg.make_loss (YoloSegLoss or EndToEndSegLoss)
optimizer_arguments         tfseg.train.optim.make_optimizer (``replicas`` left to fit)
dataset_arguments           tfseg.pipeline.dataset.build_dataset (after source, split)
augment_arguments           the augmentation part of dataset_arguments
postprocess_arguments       tfseg.postprocess.layer.PostProcess, per section
evaluate_arguments          tfseg.evaluate.loop.evaluate (thresholds, plots)
predict_arguments           tfseg.predict.loop.predict (after model, source, dir, names)
tile_arguments              tfseg.predict.tiles.detect_tiled's tile and overlap, per section
export_arguments            tfseg.export.export (the export section's part)
shapes_arguments            tfseg.data.shapes.write_shapes (after the root folder)
prepare_arguments           tfseg.data.prepare.prepare / prepare_yolo options
==========================  ==========================================================
"""

from __future__ import annotations

from tfseg.config.schema import DataConfig, RunConfig, TrainConfig
from tfseg.errors import ConfigError

# Keys the "auto" optimizer sets itself; a value other than the schema default is a request
# "auto" would not honour, so it is refused (see check_auto_optimizer).
AUTO_OPTIMIZER_KEYS = ("lr0", "momentum", "warmup_bias_lr")


def check_auto_optimizer(train: TrainConfig) -> None:
    """Refuse ``lr0``/``momentum``/``warmup_bias_lr`` set by the user under ``optimizer: auto``.

    "auto" derives its rate from the run length and class count (AdamW for short runs at
    about 0.002 x 5 / (4 + C), SGD at 0.01 for long ones): a user's lr0 means a different
    thing for each, so silently honouring it in one case and replacing it in the other would
    both surprise. The error names the fix (``optimizer=adamw`` or ``sgd``).

    Raises:
        ConfigError: one of those keys differs from its default while optimizer is auto.
    """
    if train.optimizer != "auto":
        return
    defaults = TrainConfig()
    changed = [f"{k}={getattr(train, k)}" for k in AUTO_OPTIMIZER_KEYS
               if getattr(train, k) != getattr(defaults, k)]
    if changed:
        raise ConfigError(f"train.optimizer is auto, which chooses its own learning rate and "
                          f"momentum, so {', '.join(changed)} would be ignored; set "
                          f"optimizer=adamw or optimizer=sgd to train with them")


def model_arguments(cfg: RunConfig, num_classes: int) -> dict:
    """``build_model(**...)``: name, class count (``model.num_classes`` wins over the
    dataset's ``num_classes`` when set) and input size."""
    return dict(name=cfg.model.name, num_classes=int(cfg.model.num_classes or num_classes),
                image_size=cfg.model.image_size)


def steps_per_epoch(cfg: RunConfig, num_examples: int) -> int:
    """Global batches per epoch: ``train.steps_per_epoch``, or one pass over the training set.

    Raises:
        ConfigError: not a single batch (batch larger than the training set).
    """
    steps = cfg.train.steps_per_epoch or int(num_examples) // cfg.train.batch
    if steps < 1:
        raise ConfigError(f"train.batch: {cfg.train.batch} is larger than the {num_examples} "
                          f"training images (or set train.steps_per_epoch)")
    return steps


def loss_arguments(cfg: RunConfig, num_classes: int) -> dict:
    """``model.make_loss(**...)``: gains, assigner settings and the mask-loss anchor cap.

    ``train.seg`` 0 means "the box gain", as the reference recipe does. For YOLO26 (no DFL)
    ``train.dfl`` is the gain of the L1 distance term that replaces DFL, and ``train.topk``
    the one-to-many head's (the one-to-one head's assignment is fixed: see
    tfseg/loss/end_to_end_loss.py).
    """
    train = cfg.train
    return dict(image_size=cfg.model.image_size, num_classes=int(num_classes),
                box_gain=train.box, cls_gain=train.cls, dfl_gain=train.dfl,
                seg_gain=train.seg if train.seg > 0 else None, topk=train.topk,
                alpha=train.alpha, beta=train.beta, max_mask_anchors=train.max_mask_anchors)


def optimizer_arguments(cfg: RunConfig, steps_per_epoch: int, num_classes: int) -> dict:
    """``make_optimizer(**...)`` (fit adds ``replicas``).

    Raises:
        ConfigError: see check_auto_optimizer.
    """
    train = cfg.train
    check_auto_optimizer(train)
    return dict(name=train.optimizer, lr0=train.lr0, lrf=train.lrf, momentum=train.momentum,
                weight_decay=train.weight_decay, warmup_epochs=train.warmup_epochs,
                warmup_bias_lr=train.warmup_bias_lr, cosine=train.cosine, epochs=train.epochs,
                steps_per_epoch=int(steps_per_epoch), batch=train.batch,
                num_classes=int(num_classes), clip_norm=train.clip_norm,
                nominal_batch=train.nominal_batch)


def augment_arguments(cfg: RunConfig) -> dict:
    """Keyword arguments of tfseg.pipeline.dataset.build_dataset for training augmentation.

    Raises:
        ConfigError: ``augment.copy_paste_mode`` other than flip or mixup.
    """
    aug = cfg.augment
    if aug.copy_paste_mode not in ("flip", "mixup"):
        raise ConfigError(f"augment.copy_paste_mode must be flip or mixup, got "
                          f"'{aug.copy_paste_mode}'")
    return dict(mosaic_p=aug.mosaic, degrees=aug.degrees, translate=aug.translate,
                scale=aug.scale, shear=aug.shear, fliplr=aug.fliplr, hsv_h=aug.hsv_h,
                hsv_s=aug.hsv_s, hsv_v=aug.hsv_v, min_area=aug.min_area, flipud=aug.flipud,
                perspective=aug.perspective, mixup=aug.mixup, cutmix=aug.cutmix,
                copy_paste=aug.copy_paste, copy_paste_mode=aug.copy_paste_mode,
                multi_scale=aug.multi_scale)


def cache_mode(data: DataConfig) -> str | None:
    """``data.cache`` as build_dataset's ``cache``: None (false), "ram" or "disk"; "true"
    means "ram", as YOLO users write it.

    Raises:
        ConfigError: another value.
    """
    modes = {"false": None, "true": "ram", "ram": "ram", "disk": "disk"}
    value = str(data.cache).strip().lower()
    if value not in modes:
        raise ConfigError(f"data.cache must be false, ram or disk, got '{data.cache}'")
    return modes[value]


def dataset_arguments(cfg: RunConfig, training: bool) -> dict:
    """``build_dataset(source, split, **...)``: training batches (train.batch, augmentation,
    seed) or evaluation batches (eval.batch, letterbox only, no masks: COCO evaluation reads
    them from the annotation file)."""
    args = dict(image_size=cfg.model.image_size,
                batch_size=cfg.train.batch if training else cfg.eval.batch,
                max_instances=cfg.data.max_instances, training=bool(training))
    if training:
        args.update(seed=cfg.train.seed, cache=cache_mode(cfg.data), **augment_arguments(cfg))
    else:
        args.update(masks=False)
    return args


def postprocess_arguments(cfg: RunConfig, section: str) -> dict:
    """``PostProcess(**...)`` with the thresholds of ``section`` (eval, predict or export).

    Raises:
        ConfigError: unknown section.
    """
    if section not in ("eval", "predict", "export"):
        raise ConfigError(f"post-processing settings live in eval, predict or export, not {section!r}")
    options = getattr(cfg, section)
    return dict(score_threshold=options.conf, iou_threshold=options.iou,
                max_detections=options.max_det, agnostic=options.agnostic,
                multi_label=bool(getattr(options, "multi_label", False)),
                end_to_end=options.end2end)


def evaluate_arguments(cfg: RunConfig) -> dict:
    """``evaluate(model, dataset, gt, ids, names, output_dir=..., **...)``: the eval section."""
    options = cfg.eval
    return dict(conf=options.conf, iou=options.iou, max_det=options.max_det,
                agnostic=options.agnostic, multi_label=options.multi_label, plots=options.plots,
                end2end=options.end2end, augment=options.augment)


def predict_arguments(cfg: RunConfig) -> dict:
    """``predict(model, source, output_dir, names, **...)``: the predict section.

    Raises:
        ConfigError: unknown ``predict.cutouts`` or ``predict.mask_format``.
    """
    options = cfg.predict
    if options.cutouts not in ("none", "alpha", "black"):
        raise ConfigError(f"predict.cutouts must be none, alpha or black, got '{options.cutouts}'")
    if options.mask_format not in ("rle", "polygon"):
        raise ConfigError(f"predict.mask_format must be rle or polygon, got '{options.mask_format}'")
    return dict(conf=options.conf, iou=options.iou, max_det=options.max_det,
                save_json=options.save_json, cutouts=options.cutouts != "none",
                cutout_background="transparent" if options.cutouts == "alpha" else "black",
                mask_format=options.mask_format, agnostic=options.agnostic,
                save_overlays=options.save_overlays, end2end=options.end2end,
                augment=options.augment,
                **tile_arguments(cfg, "predict"))


def tile_arguments(cfg: RunConfig, section: str) -> dict:
    """``tile`` and ``tile_overlap`` of the ``eval`` or ``predict`` section, checked.

    Raises:
        ConfigError: a tile of 2..31 px (0 is off, 1 the model's input size), or an overlap
            outside [0, 0.9].
    """
    options = getattr(cfg, section)
    if options.tile < 0 or 1 < options.tile < 32:
        raise ConfigError(f"{section}.tile must be 0 (off), 1 (the model's input size) or at "
                          f"least 32 px, got {options.tile}")
    if not 0.0 <= options.tile_overlap <= 0.9:
        raise ConfigError(f"{section}.tile_overlap must lie in [0, 0.9], got {options.tile_overlap}")
    return dict(tile=options.tile, tile_overlap=options.tile_overlap)


def export_arguments(cfg: RunConfig) -> dict:
    """The export section as ``tfseg.export.export`` keywords (lists split, thresholds named
    as PostProcess names them), plus ``calibration_images`` for the int8 calibration set and
    ``parity``, ``parity_images``, ``parity_max_drop`` for tfseg.export.certificate.

    Raises:
        ConfigError: ``export.parity_images`` below 1 while the parity check is on.
    """
    options = cfg.export
    if options.parity and options.parity_images < 1:
        raise ConfigError(f"export.parity_images must be at least 1, got {options.parity_images} "
                          "(export.parity=false skips the check)")
    return dict(formats=[f.strip() for f in options.formats.split(",") if f.strip()],
                tflite_modes=[m.strip() for m in options.tflite_modes.split(",") if m.strip()],
                raw=options.raw, score_threshold=options.conf, iou_threshold=options.iou,
                max_detections=options.max_det, agnostic=options.agnostic,
                serving_name=options.serving_name, serving_version=options.serving_version,
                calibration_images=options.calibration_images, mask_size=options.mask_size,
                mask_dtype=options.mask_dtype, standard_outputs=options.standard_outputs,
                parity=options.parity, parity_images=options.parity_images,
                parity_max_drop=options.parity_max_drop, end_to_end=options.end2end)


def shapes_arguments(data: DataConfig) -> dict:
    """``write_shapes(root, **...)``: the built-in synthetic dataset's size and seed."""
    return dict(num_train=data.shapes_train, num_val=data.shapes_val, seed=data.shapes_seed,
                min_size=data.shapes_min_size, max_size=data.shapes_max_size,
                num_classes=data.shapes_num_classes, objects=data.shapes_objects)


def prepare_arguments(data: DataConfig) -> dict:
    """Options of record preparation: workers (``-1``: every CPU, as None), strictness,
    Beam, overwrite."""
    return dict(num_workers=None if data.prepare_workers < 0 else data.prepare_workers,
                strict=data.strict, beam_options=data.beam_options or None,
                overwrite=data.overwrite)

