"""One validated COCO image entry -> record values: runs in the preparation workers.

Reads and checks the image file and decodes each instance's segmentation with pycocotools
into a PNG per instance, in the layout of ``tfseg.data.features``. Imports no TensorFlow,
so spawned worker processes start fast.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from tfseg.data.coco import ImageEntry, RecordSkip, decode_segmentation

_NATIVE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG: stored as they are


def encode_mask_png(mask: np.ndarray) -> bytes:
    """[H, W] 0/1 uint8 mask -> PNG bytes of a 1-bit (bilevel) grayscale image.

    A 1-bit PNG inflates to an eighth of an 8-bit one's bytes: ``tf.io.decode_png`` reads it
    about 2.5x faster, and mask decoding is the largest part of the training pipeline's
    decoding. Decoders expand it to 0/255 (tfseg.pipeline.decode maps nonzero to 1); records
    prepared before stored 8-bit 0/1 PNGs, which read the same way.
    """
    ok, buf = cv2.imencode(".png", (mask != 0).astype(np.uint8)[:, :, None],
                           [cv2.IMWRITE_PNG_BILEVEL, 1])
    if not ok:
        raise ValueError("PNG encoding of a mask failed")
    return buf.tobytes()


def read_image_file(entry: ImageEntry, images_dir: str) -> bytes:
    """The image's bytes, checked to decode at the size the JSON states; raises RecordSkip.

    JPEG and PNG bytes are kept as they are; other formats (BMP, TIFF, WebP...) are
    re-encoded as PNG so that ``tf.image.decode_image`` reads every stored image.
    """
    path = os.path.join(images_dir, entry.file_name)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        raise RecordSkip("image file missing or unreadable", "file_name") from None
    # IGNORE_ORIENTATION: TensorFlow ignores EXIF rotation, and so do COCO's annotations.
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flags) if data else None
    if pixels is None:
        raise RecordSkip("corrupt image file", "file_name")
    if pixels.shape[:2] != (entry.height, entry.width):
        raise RecordSkip("image size differs from the annotation file", "height/width")
    if not data.startswith(_NATIVE_MAGIC):
        data = cv2.imencode(".png", pixels)[1].tobytes()
    return data


def encode_entry(entry: ImageEntry, images_dir: str) -> dict:
    """One image entry -> record values in the layout of ``tfseg.data.features``.

    Masks are decoded by pycocotools and stored as per-instance PNG bytes. Raises RecordSkip
    (a reason for the whole image) when the image file is unusable.
    """
    cv2.setNumThreads(1)  # one process per core already; no nested thread pools
    image = read_image_file(entry, images_dir)
    insts = entry.instances
    return {
        "image": image,
        "image_id": entry.image_id,
        "file_name": entry.file_name,
        "height": entry.height,
        "width": entry.width,
        "objects": {
            "class": np.array([i.class_index for i in insts], np.int64),
            "bbox": np.array([i.bbox for i in insts], np.float32).reshape(-1, 4),
            "is_crowd": np.array([i.is_crowd for i in insts], np.bool_),
            "area": np.array([i.area for i in insts], np.float32),
            "mask": [encode_mask_png(decode_segmentation(i.segmentation, entry.height,
                                                         entry.width)) for i in insts],
        },
    }


def encode_entry_or_skip(args: tuple[ImageEntry, str]) -> tuple[int, dict | None, str | None]:
    """Pool-friendly ``encode_entry``: (image_id, record or None, skip reason or None)."""
    entry, images_dir = args
    try:
        return entry.image_id, encode_entry(entry, images_dir), None
    except RecordSkip as skip:
        return entry.image_id, None, skip.reason
