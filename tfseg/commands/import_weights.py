"""``tfseg import-weights <checkpoint> model=<name>``: Ultralytics state dict -> Keras weights."""

from __future__ import annotations

from pathlib import Path

from tfseg.config import load_config


def run(args) -> int:
    cfg = load_config(args.overrides, section="model")
    from tfseg.model.import_ultralytics import import_weights

    checkpoint = Path(args.checkpoint)
    output = Path(args.output or checkpoint.with_name(f"{checkpoint.stem}.weights.h5"))
    written = import_weights(checkpoint, cfg.model.name, cfg.model.num_classes or None,
                             cfg.model.image_size, output)
    print(f"Keras weights for {cfg.model.name}: {written}\n"
          f"use them with: tfseg val model={cfg.model.name} weights={written}")
    return 0
