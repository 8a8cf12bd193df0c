"""tfseg: single-stage instance segmentation (YOLOv8-seg / YOLO11-seg / YOLO26-seg) in
TensorFlow/Keras 3.

The Python API (each name is imported on first use, so ``import tfseg`` and the ``tfseg``
command do not load TensorFlow until they need it):

    build_model(name, num_classes, image_size)   a Keras model that owns its loss: compile, fit
    build_dataset(data, split, image_size, ...)  the trainer's tf.data pipeline (class_names)
    detect(model, images)                        numpy images -> ImageDetections (full-size masks)
    export_model(model, output_dir, ...)         .tflite (signature ``detect``) and SavedModel
    load(path)                                   run folder, weights, .pt or export -> LoadedModel
    PostProcess                                  the graph post-processing layer (raw -> detections)
    ImageDetections, LoadedModel                 what detect and load return

Example:
    >>> import tfseg
    >>> train = tfseg.build_dataset("shapes", "train", image_size=128, batch_size=8)
    >>> model = tfseg.build_model("yolov8-seg-n", len(train.class_names), 128)
    >>> model.compile(optimizer="adamw")
    >>> model.fit(train, epochs=1, steps_per_epoch=10)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> the module that defines it
_API = {
    "build_model": "tfseg.api",
    "build_dataset": "tfseg.api",
    "detect": "tfseg.api",
    "export_model": "tfseg.api",
    "load": "tfseg.api",
    "PostProcess": "tfseg.postprocess.layer",
    "ImageDetections": "tfseg.postprocess.host",
    "LoadedModel": "tfseg.resolve",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tfseg' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
