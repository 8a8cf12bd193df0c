"""``tfseg import-weights <checkpoint> [model=<name>]``: an Ultralytics checkpoint -> Keras
weights plus their metadata JSON (architecture, image size, class names)."""

from __future__ import annotations

from pathlib import Path

from tfseg.resolve import explicit_model_options
from tfseg.config import load_config


def run(args) -> int:
    load_config(args.overrides, section="model")  # validates the keys and values
    options = explicit_model_options(args.overrides, "model")
    from tfseg.model.import_ultralytics import import_weights

    checkpoint = Path(args.checkpoint)
    output = Path(args.output or checkpoint.with_name(f"{checkpoint.stem}.weights.h5"))
    written, info = import_weights(checkpoint, options["model_name"], options["image_size"],
                                   output)
    print(f"Keras weights for {info.model_name} ({info.num_classes} classes: "
          f"{', '.join(info.class_names[:4])}{', ...' if info.num_classes > 4 else ''}): "
          f"{written}\n"
          f"metadata: {written.with_name(written.name[:-len('.weights.h5')] + '.json')}\n"
          f"next: tfseg predict weights={written} source=photo.jpg   (an image, folder or video)")
    return 0
