"""The TFDS feature spec of one dataset record (one image), per ``tfseg.contracts.RECORD``.

The pipeline reads records through this module only. Decoded by TFDS (``as_dataset``),
one record is a dict with exactly these keys (K = instances in the image, may be 0):

    image            uint8   [H, W, 3]      RGB; stored as the source file's own JPEG/PNG bytes
    image_id         int64   []             image id of the source dataset
    file_name        string  []             file name relative to the image folder
    height           int32   []             original height in pixels
    width            int32   []             original width in pixels
    objects/class    int64   [K]            contiguous class index 0..C-1 (ClassLabel)
    objects/bbox     float32 [K, 4]         xyxy, original image pixels
    objects/is_crowd bool    [K]            crowd region: never a training target
    objects/area     float32 [K]            mask area in pixels, as the source states it
    objects/mask     uint8   [K, H, W, 1]   instance mask, nonzero inside; 1-bit PNG each

(``objects`` is a nested dict: ``record["objects"]["mask"]``.) Masks are decoded by
pycocotools at preparation time and stored as one 1-bit grayscale PNG per instance: a
binary mask compresses to a few hundred bytes, and ``tf.io.decode_png`` reads it in the
tf.data graph, as 0/255 (older records: 8-bit 0/1); readers take nonzero as inside. The
dataset metadata (``info.metadata``) carries ``class_names`` and ``category_ids`` (class
index -> source category id), see ``metadata_dict``.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from tfseg.contracts import RECORD

RECORD_KEYS = tuple(RECORD)  # flat names; "objects/..." are nested under "objects" on disk


def record_features(class_names: list[str]) -> tfds.features.FeaturesDict:
    """The FeaturesDict of one record.

    Args:
        class_names: names in class-index order (C entries).

    Returns:
        tfds.features.FeaturesDict with the keys of the module docstring.
    """
    return tfds.features.FeaturesDict({
        # No encoding_format: the source bytes are stored as they are (JPEG or PNG) and
        # decoded with decode_image, so preparation never re-encodes (lossless, fast).
        "image": tfds.features.Image(shape=(None, None, 3)),
        "image_id": tfds.features.Scalar(dtype=np.int64),
        "file_name": tfds.features.Text(),
        "height": tfds.features.Scalar(dtype=np.int32),
        "width": tfds.features.Scalar(dtype=np.int32),
        "objects": tfds.features.Sequence({
            "class": tfds.features.ClassLabel(names=list(class_names)),
            "bbox": tfds.features.Tensor(shape=(4,), dtype=np.float32),
            "is_crowd": tfds.features.Scalar(dtype=np.bool_),
            "area": tfds.features.Scalar(dtype=np.float32),
            "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
        }),
    })


def metadata_dict(class_names: list[str], category_ids: list[int], **extra) -> dict:
    """The dataset metadata stored with the records (JSON-serializable)."""
    return {"class_names": list(class_names),
            "category_ids": [int(c) for c in category_ids], **extra}


def empty_objects() -> dict:
    """The ``objects`` value of an image without instances (K = 0)."""
    return {"class": np.zeros([0], np.int64), "bbox": np.zeros([0, 4], np.float32),
            "is_crowd": np.zeros([0], np.bool_), "area": np.zeros([0], np.float32),
            "mask": []}


def flatten_record(record: dict) -> dict:
    """{"objects": {...}} -> {"objects/class": ...}: the flat names RECORD uses."""
    flat = {k: v for k, v in record.items() if k != "objects"}
    flat.update({f"objects/{k}": v for k, v in record["objects"].items()})
    return flat
