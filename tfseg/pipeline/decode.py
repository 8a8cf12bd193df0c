"""One dataset record -> one SAMPLE dict (contracts.RECORD -> contracts.SAMPLE).

The only module of the pipeline that knows the record layout. It accepts the TFDS layout
(nested ``record["objects"]["class"]``) and the flat one (``record["objects/class"]``), and an
image or masks that are still encoded (PNG/JPEG bytes) as well as decoded tensors.
"""

from __future__ import annotations

import tensorflow as tf


def _field(record: dict, key: str) -> tf.Tensor:
    """``record[key]`` for a flat key such as "objects/class", or the nested path to it."""
    if key in record:
        return record[key]
    value = record
    for part in key.split("/"):
        value = value[part]
    return value


def _decode_image(image: tf.Tensor) -> tf.Tensor:
    """``[H, W, 3]`` uint8 from a decoded image or encoded bytes."""
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    image = tf.cast(image, tf.uint8)
    return tf.ensure_shape(image, [None, None, 3])


def _decode_masks(masks: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """``[K, H, W]`` uint8 0/1 from ``[K, H, W(, 1)]`` tensors or ``[K]`` encoded PNGs."""
    if masks.dtype == tf.string:  # [K] PNGs; K may be 0, which map_fn cannot stack
        masks = tf.cond(
            tf.size(masks) > 0,
            lambda: tf.map_fn(lambda png: tf.io.decode_png(png, channels=1), masks,
                              fn_output_signature=tf.TensorSpec([None, None, 1], tf.uint8)),
            lambda: tf.zeros(tf.stack([0, height, width, 1]), tf.uint8))
    if masks.shape.rank == 4:
        masks = masks[..., 0]  # [K, H, W, 1] -> [K, H, W]
    masks = tf.minimum(tf.cast(masks, tf.uint8), 1)  # 0/1 from 0/255 (1-bit PNGs) or 0/1
    # An image without instances may store masks as [0, 0, 0]: give them the image's size.
    return tf.reshape(masks, tf.stack([-1, height, width]))


def decode_record(record: dict, masks: bool = True) -> dict:
    """Turn a record into a SAMPLE.

    Args:
        record: a dict of contracts.RECORD fields (nested or flat "objects/..." keys).
        masks: decode the instance masks; False leaves them out of the sample (evaluation
            scores against the annotation file and needs only boxes and classes).

    Returns:
        SAMPLE dict: image ``[H, W, 3]`` uint8, image_id ``[]`` int64, boxes ``[K, 4]`` float32
        xyxy pixels, classes ``[K]`` int32, is_crowd ``[K]`` bool, and (with ``masks``) masks
        ``[K, H, W]`` uint8 0/1.
    """
    with tf.name_scope("decode_record"):
        image = _decode_image(_field(record, "image"))
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        classes = tf.cast(tf.reshape(_field(record, "objects/class"), [-1]), tf.int32)
        sample = {
            "image": image,
            "image_id": tf.cast(_field(record, "image_id"), tf.int64),
            "boxes": tf.reshape(tf.cast(_field(record, "objects/bbox"), tf.float32), [-1, 4]),
            "classes": classes,
            "is_crowd": tf.reshape(tf.cast(_field(record, "objects/is_crowd"), tf.bool), [-1]),
        }
        if masks:
            sample["masks"] = _decode_masks(_field(record, "objects/mask"), height, width)
        return sample


def record_size(record: dict) -> dict:
    """What a record states about its size, without decoding its image or masks.

    Args:
        record: a prepared record (contracts.RECORD, TFDS or flat layout) with its
            ``height`` and ``width`` fields.

    Returns:
        {"height": ``[]`` int32, "width": ``[]`` int32, "instances": ``[]`` int32 (crowd
        regions left out, as training leaves them out)}.
    """
    crowd = tf.reshape(tf.cast(_field(record, "objects/is_crowd"), tf.bool), [-1])
    return {"height": tf.cast(_field(record, "height"), tf.int32),
            "width": tf.cast(_field(record, "width"), tf.int32),
            "instances": tf.reduce_sum(tf.cast(tf.logical_not(crowd), tf.int32))}
