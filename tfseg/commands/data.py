"""``tfseg data shapes|prepare|convert|view|video``."""

from __future__ import annotations

from pathlib import Path

from tfseg.commands.datasets import dataset_paths, ensure_dataset, ensure_records
from tfseg.config import load_config


def run(args) -> int:
    if args.action == "video":
        return _video(args)
    cfg = load_config(args.overrides, section="data")
    if args.action == "shapes":
        data = cfg.data
        if args.output:
            data.root = args.output
        if dataset_paths(data).train_annotations.is_file():
            print(f"already there: {dataset_paths(data).root} (delete it to write it again)")
        paths = ensure_dataset(data, generate=True)
        print(f"shapes dataset: {paths.root}\n  train: {paths.train_annotations}\n"
              f"  val:   {paths.val_annotations}")
        return 0
    if args.action == "prepare":
        data = cfg.data
        if data.format == "coco":
            paths = ensure_dataset(data)
        else:
            paths = dataset_paths(data)
        ensure_records(data, paths)
        return 0
    if args.action == "convert":
        return _convert(cfg, args)
    return _view(cfg, args.output)


def _video(args) -> int:
    """A clip of moving shapes and its ground-truth identities, for tracking."""
    from tfseg.data.video import write_clip
    from tfseg.errors import ConfigError

    if args.overrides:
        raise ConfigError(f"data video takes flags, not keys: {' '.join(args.overrides)} "
                          "(see tfseg data --help)")
    if min(args.frames, args.width, args.height, args.objects) < 1:
        raise ConfigError("data video: --frames, --width, --height and --objects must be positive")
    written = write_clip(args.output or "clip", args.frames, args.width, args.height,
                         args.objects, args.seed)
    print(f"video: {written['video']} ({written['frames']} frames of {args.width}x{args.height}, "
          f"{args.objects} objects)\n  ground truth: {written['gt']} ({written['rows']} rows)")
    return 0


def _view(cfg, output: str | None) -> int:
    """A PNG grid of augmented training batches, as the model sees them."""
    from tfseg.commands.models import prepared_dataset
    from tfseg.config.factory import augment_arguments
    from tfseg.config.recipes import recipe_line
    from tfseg.data.prepare import load_split
    from tfseg.pipeline.dataset import build_dataset
    from tfseg.pipeline.mixing import partners_needed
    from tfseg.pipeline.mosaic import TILES
    from tfseg.pipeline.view import write_grid

    cfg, paths, classes = prepared_dataset(cfg, verbose=False)
    # One pass gives num_examples - window + 1 samples (mosaic's sliding window, twice as long
    # when mixing draws a partner) and drops a partial batch: a small set would give none.
    _, info = load_split(str(paths.records), "train", decode=False)  # the info alone
    mix = augment_arguments(cfg)
    window = TILES * (2 if partners_needed(mix["mixup"], mix["cutmix"], mix["copy_paste"],
                                           mix["copy_paste_mode"]) else 1)
    batch = max(1, min(cfg.train.batch, 16, info["num_examples"] - window + 1))
    dataset = build_dataset(str(paths.records), "train", cfg.model.image_size, batch,
                            cfg.data.max_instances, training=True, seed=cfg.train.seed,
                            **mix)
    batches = list(dataset.take(1))
    path = write_grid(batches, output or "augmented_batches.png", num_batches=1,
                      class_names=classes["class_names"])
    print(recipe_line(cfg))
    size = batches[0][0].shape[1]  # multi_scale: the size drawn for this batch
    print(f"augmented batch of {batch} images at {size} px: {path}")
    return 0


def _convert(cfg, args) -> int:
    """COCO -> YOLO-seg (both splits) or YOLO-seg -> COCO JSON."""
    from tfseg.data import yolo
    from tfseg.errors import ConfigError

    if not args.to:
        raise ConfigError("data convert needs --to coco or --to yolo")
    paths = dataset_paths(cfg.data)
    out = Path(args.output or f"{paths.root}_{args.to}")
    if args.to == "yolo":
        if cfg.data.name == "shapes":
            paths = ensure_dataset(cfg.data)
        for split, images, ann_file in (("train", paths.train_images, paths.train_annotations),
                                        ("val", paths.val_images, paths.val_annotations)):
            yolo.coco_to_yolo(str(images), str(ann_file), str(out), split=split)
        print(f"YOLO-seg dataset: {out} (data.yaml inside)")
        return 0
    if cfg.data.format != "yolo":
        raise ConfigError("converting to COCO needs a YOLO-seg dataset: data=path/to/data.yaml "
                          "(or data.format=yolo data.data_yaml=...)")
    for split in ("train", "val"):
        target = out / "annotations" / f"instances_{split}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        yolo.yolo_to_coco(str(paths.data_yaml), split, str(target), strict=cfg.data.strict)
        print(f"COCO annotations ({split}): {target}")
    return 0
