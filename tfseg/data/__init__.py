"""tfseg.data: dataset files -> TFDS records (host side, preparation time).

shapes (synthetic COCO writer), coco (read/validate COCO JSON, decode masks), yolo (YOLO-seg
import/export), features (the record spec), tfds_builder (the TFDS builder), prepare
(`tfseg data prepare` and `load_split`). Nothing here is imported eagerly: preparation
workers import tfseg.data.coco without TensorFlow.
"""
