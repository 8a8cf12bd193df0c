"""``tfseg info``: parameter count and GFLOPs of one model, or of every model with model=all."""

from __future__ import annotations

from tfseg.config import load_config


def run(args) -> int:
    overrides = [o for o in args.overrides if o not in ("model=all",)]
    every = len(overrides) != len(args.overrides)
    cfg = load_config(overrides, section="model")
    from tfseg.model import all_model_names
    from tfseg.model.summary import format_summary, model_summary

    num_classes = cfg.model.num_classes or 80  # the published tables count 80 classes
    names = all_model_names() if every else [cfg.model.name]
    for index, name in enumerate(names):
        summary = model_summary(name, num_classes, cfg.model.image_size)
        print(("\n" if index else "") + format_summary(summary))
    return 0
