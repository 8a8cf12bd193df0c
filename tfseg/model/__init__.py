"""tfseg.model: YOLOv8-seg, YOLO11-seg and YOLO26-seg networks in Keras 3 (NHWC), every scale.

Public entry points:
    build_model(name, num_classes, image_size) -> YoloSeg     the network, raw-output contract
    all_model_names()                                       yolov8-seg-{n..x} ... yolo26-seg-{n..x}
Weight import (tfseg.model.import_ultralytics) and the summary table (tfseg.model.summary)
are imported from their modules where needed (they pull in more).
"""

from tfseg.model.scales import all_model_names, model_spec

__all__ = ["YoloSeg", "all_model_names", "build_model", "model_spec"]


def __getattr__(name: str):
    # The network is imported on first use, so name and scale look-ups (``tfseg train``
    # refusing a model before any data is prepared) do not load TensorFlow.
    if name in ("YoloSeg", "build_model"):
        from tfseg.model import yolo_seg

        return getattr(yolo_seg, name)
    raise AttributeError(f"module 'tfseg.model' has no attribute {name!r}")
