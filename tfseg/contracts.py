"""The contracts between tfseg's stages: names, dtypes, shapes and units, in one place.

Symbols used in shapes:
    B  batch size
    S  square input size in pixels (divisible by 32)
    A  anchor points over strides 8, 16, 32: (S/8)^2 + (S/16)^2 + (S/32)^2, stride 8 first,
       row-major (y then x) within a level
    C  number of classes
    M  padded instances per image in a training batch (``max_instances``)
    N  padded detections per image after NMS (``max_detections``)
    K  instances in one record (variable)
    P  prototype resolution, S/4

Box convention inside tfseg: xyxy in input (letterboxed) pixels, from the pipeline to the
post-processing. COCO xywh only when reading datasets and writing results JSON; normalized
[ymin, xmin, ymax, xmax] only in the TFLite end-to-end outputs (stated in their metadata).

This module imports nothing of tfseg's and no TensorFlow, so anything may use it.
"""

from __future__ import annotations

from dataclasses import dataclass

STRIDES = (8, 16, 32)
PROTO_STRIDE = 4
NUM_MASK_COEFFICIENTS = 32
REG_MAX = 16
LETTERBOX_PAD_VALUE = 114  # grey, as the YOLO family pads


@dataclass(frozen=True)
class TensorContract:
    """One tensor crossing a boundary."""
    name: str
    dtype: str
    shape: str
    meaning: str


def _table(*items: TensorContract) -> dict[str, TensorContract]:
    return {t.name: t for t in items}


# Dataset records (one per image), as stored by the TFDS builder (tfseg/data/features.py)
# and read by tfseg/pipeline/decode.py.
RECORD = _table(
    TensorContract("image", "uint8", "[H, W, 3]", "the image, RGB (stored encoded)"),
    TensorContract("image_id", "int64", "[]", "the image id of the source dataset"),
    TensorContract("file_name", "string", "[]", "file name relative to the image folder"),
    TensorContract("height", "int32", "[]", "original height in pixels"),
    TensorContract("width", "int32", "[]", "original width in pixels"),
    TensorContract("objects/class", "int64", "[K]", "contiguous class index 0..C-1"),
    TensorContract("objects/bbox", "float32", "[K, 4]", "xyxy, original image pixels"),
    TensorContract("objects/is_crowd", "bool", "[K]", "crowd region: never a training target"),
    TensorContract("objects/area", "float32", "[K]", "mask area in pixels, as COCO states it"),
    TensorContract("objects/mask", "uint8", "[K, H, W, 1]",
                   "mask, nonzero inside (a 1-bit PNG: decodes to 0/255)"),
)
# The dataset metadata carries: class names (index order) and the map from class index to
# the source category id (``category_ids``), so results JSON can name the original ids.

# One decoded sample inside the pipeline (tfseg/pipeline), before batching.
SAMPLE = _table(
    TensorContract("image", "uint8", "[H, W, 3]", "RGB"),
    TensorContract("image_id", "int64", "[]", "source image id"),
    TensorContract("boxes", "float32", "[K, 4]", "xyxy pixels of this image"),
    TensorContract("classes", "int32", "[K]", "class index"),
    TensorContract("is_crowd", "bool", "[K]", "crowd flag"),
    TensorContract("masks", "uint8", "[K, H, W]", "0/1 instance masks"),
)

# Training batch: (images, targets) as model.fit receives it.
TRAIN_IMAGES = TensorContract("images", "float32", "[B, S, S, 3]", "RGB in [0, 1]")
TRAIN_TARGETS = _table(
    TensorContract("boxes", "float32", "[B, M, 4]", "xyxy input pixels; zeros for padding"),
    TensorContract("classes", "int32", "[B, M]", "class index; -1 for padding"),
    TensorContract("masks", "uint8", "[B, M, P, P]", "0/1 masks at 1/4 input resolution"),
    TensorContract("dropped", "int32", "[B]",
                   "instances beyond M left out of the sample (the smallest); logged"),
)

# Raw model outputs (Keras predict, the raw TFLite export): a dict with these keys.
# reg_max is the family's (REG_MAX = 16 for YOLOv8/11; 1 for YOLO26, whose box_logits are
# the four distances themselves, in strides, with no DFL).
RAW_OUTPUTS = _table(
    TensorContract("box_logits", "float32", "[B, A, 4 * reg_max]",
                   "DFL logits per side (reg_max 1: the distance in strides), order "
                   "(left, top, right, bottom)"),
    TensorContract("class_logits", "float32", "[B, A, C]", "class logits (sigmoid gives scores)"),
    TensorContract("mask_coefficients", "float32", "[B, A, 32]", "per-anchor mask coefficients"),
    TensorContract("prototypes", "float32", "[B, P, P, 32]", "prototype masks, NHWC"),
)

# End-to-end families (YOLO26) add their one-to-one head: the same layouts as the
# one-to-many keys above, trained to give one box per object, so the detections are its
# top-k (no NMS); both heads share the prototypes.
END_TO_END_OUTPUTS = _table(
    TensorContract("o2o_box_logits", "float32", "[B, A, 4 * reg_max]", "as box_logits"),
    TensorContract("o2o_class_logits", "float32", "[B, A, C]", "as class_logits"),
    TensorContract("o2o_mask_coefficients", "float32", "[B, A, 32]", "as mask_coefficients"),
)
O2O_PREFIX = "o2o_"  # the one-to-one key of a one-to-many key: O2O_PREFIX + key

# Training-only outputs: the loss may read them; post-processing and exports ignore them.
TRAINING_OUTPUTS = _table(
    TensorContract("semantic_logits", "float32", "[B, S/8, S/8, C]",
                   "YOLO26: per-class logits of the fused stride-8 features (auxiliary target)"),
)


# Post-processed detections (evaluation, prediction, SavedModel, TFLite), fixed shapes.
DETECTIONS = _table(
    TensorContract("boxes", "float32", "[B, N, 4]", "xyxy input pixels; zeros past num_detections"),
    TensorContract("scores", "float32", "[B, N]", "confidence; zeros past num_detections"),
    TensorContract("classes", "int32", "[B, N]", "class index; zeros past num_detections"),
    TensorContract("masks", "float32", "[B, N, P, P]",
                   "sigmoid mask probabilities at prototype resolution, zero outside the box"),
    TensorContract("num_detections", "int32", "[B]", "valid rows of the tensors above"),
)

# Export option (export.mask_size = m > 0): box-aligned masks replace ``masks`` in the
# end-to-end exports (tfseg.postprocess.masks states the grid convention).
BOX_MASKS = _table(
    TensorContract("box_masks", "float32 or uint8", "[B, N, m, m]",
                   "mask of each detection on an m x m grid spanning its box: cell (i, j) "
                   "centred at (x1 + (j + 0.5)(x2 - x1)/m, y1 + (i + 0.5)(y2 - y1)/m); "
                   "probabilities, or round(255 p) as uint8; zeros past num_detections"),
)

# Letterbox information for one image: how the original maps into the S x S input.
# input = original * scale + (pad_left, pad_top); original = (input - pad) / scale.
LETTERBOX_INFO = _table(
    TensorContract("letterbox", "float32", "[B, 5]",
                   "(original height, original width, scale, pad_top, pad_left)"),
)


def num_anchors(size: int) -> int:
    """A for a square input of ``size`` pixels."""
    return sum((size // s) ** 2 for s in STRIDES)


def proto_size(size: int) -> int:
    """P for a square input of ``size`` pixels."""
    return size // PROTO_STRIDE
