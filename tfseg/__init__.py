"""tfseg: single-stage instance segmentation (YOLOv8-seg / YOLO11-seg) in TensorFlow/Keras 3."""

__version__ = "0.1.0"
