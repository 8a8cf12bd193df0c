"""Instance bookkeeping and the training targets (contracts.TRAIN_TARGETS).

Every filter selects boxes, classes, crowd flags and masks with one boolean vector, so the
fields never fall out of step.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE
from tfseg.ops.boxes import area as box_areas

INSTANCE_FIELDS = ("boxes", "classes", "is_crowd", "masks")


def select_instances(sample: dict, keep: tf.Tensor) -> dict:
    """Keep the instances where ``keep`` ``[K]`` bool is true, in every per-instance field."""
    out = dict(sample)
    for key in INSTANCE_FIELDS:
        if key in sample:
            out[key] = tf.boolean_mask(sample[key], keep)
    return out


def remove_crowd(sample: dict) -> dict:
    """Drop crowd regions: they never become targets (they are neither positives nor negatives
    to the loss; COCO evaluation still ignores them through the annotation file)."""
    return select_instances(sample, tf.logical_not(sample["is_crowd"]))


def mask_boxes(masks: tf.Tensor) -> tf.Tensor:
    """The tight xyxy box of each mask, in pixels; zeros for an empty mask.

    A mask whose pixels span rows r0..r1 and columns c0..c1 gets (c0, r0, c1 + 1, r1 + 1).

    Args:
        masks: ``[K, H, W]`` 0/1 (any dtype).

    Returns:
        ``[K, 4]`` float32 xyxy.
    """
    on = tf.cast(masks, tf.bool)
    rows = tf.cast(tf.reduce_any(on, axis=2), tf.int32)  # [K, H]
    cols = tf.cast(tf.reduce_any(on, axis=1), tf.int32)  # [K, W]
    height, width = tf.shape(masks)[1], tf.shape(masks)[2]
    y1 = tf.argmax(rows, axis=1, output_type=tf.int32)
    y2 = height - tf.argmax(tf.reverse(rows, [1]), axis=1, output_type=tf.int32)
    x1 = tf.argmax(cols, axis=1, output_type=tf.int32)
    x2 = width - tf.argmax(tf.reverse(cols, [1]), axis=1, output_type=tf.int32)
    boxes = tf.cast(tf.stack([x1, y1, x2, y2], axis=1), tf.float32)  # [K, 4]
    present = tf.reduce_any(tf.cast(rows, tf.bool), axis=1)  # [K]
    return tf.where(present[:, None], boxes, tf.zeros_like(boxes))


def mask_areas(masks: tf.Tensor) -> tf.Tensor:
    """``[K]`` float32 pixel count of each ``[K, H, W]`` 0/1 mask."""
    return tf.reduce_sum(tf.cast(masks, tf.float32), axis=[1, 2])


def drop_small(sample: dict, min_area: float, min_side: float = 2.0) -> dict:
    """Recompute boxes as the tight boxes of the masks; drop instances that left the frame or
    shrank below ``min_area`` mask pixels or ``min_side`` pixels of box width or height."""
    boxes = mask_boxes(sample["masks"])
    wh = boxes[:, 2:] - boxes[:, :2]
    keep = ((mask_areas(sample["masks"]) >= tf.maximum(float(min_area), 1.0))
            & (wh[:, 0] >= min_side) & (wh[:, 1] >= min_side))
    return select_instances(dict(sample, boxes=boxes), keep)


def downsample_masks(masks: tf.Tensor) -> tf.Tensor:
    """``[K, S, S]`` 0/1 -> ``[K, S/4, S/4]`` uint8: a coarse pixel is on when at least half of
    its 4x4 block is on."""
    blocks = tf.nn.avg_pool2d(tf.cast(masks, tf.float32)[..., None], PROTO_STRIDE, PROTO_STRIDE,
                              "VALID")  # [K, S/4, S/4, 1]
    return tf.cast(blocks[..., 0] >= 0.5, tf.uint8)


def pad_instances(boxes: tf.Tensor, classes: tf.Tensor, masks: tf.Tensor | None,
                  max_instances: int, proto: int) -> dict:
    """Pad (or truncate to the first M) instances to a fixed count.

    Args:
        boxes: ``[K, 4]`` float32; classes: ``[K]`` int32; masks: ``[K, P, P]`` uint8, or
            None (no masks in the result).
        max_instances: M.
        proto: P.

    Returns:
        dict boxes ``[M, 4]`` (zeros for padding), classes ``[M]`` (-1 for padding),
        masks ``[M, P, P]`` (zeros for padding).
    """
    count = tf.minimum(tf.shape(classes)[0], max_instances)
    pad = max_instances - count
    boxes = tf.pad(boxes[:count], [[0, pad], [0, 0]])
    classes = tf.pad(classes[:count], [[0, pad]], constant_values=-1)
    padded = {"boxes": tf.ensure_shape(boxes, [max_instances, 4]),
              "classes": tf.ensure_shape(classes, [max_instances])}
    if masks is not None:
        masks = tf.pad(masks[:count], [[0, pad], [0, 0], [0, 0]])
        padded["masks"] = tf.ensure_shape(masks, [max_instances, proto, proto])
    return padded


def keep_largest(sample: dict, max_instances: int) -> tuple[dict, tf.Tensor]:
    """At most ``max_instances`` instances: when there are more, the M of largest mask area
    (box area for a sample without masks), in their original order.

    Why the largest: targets have a fixed M slots (100, COCO's default), and a mosaic of four
    crowded images can hold more. The instances left out are the smallest, which carry the
    least of the loss (and are the likeliest to be cut to slivers by the next augmentation);
    the count is returned so training can report it instead of losing it silently.

    Returns:
        (the sample, unchanged when it fits; the count of instances left out, scalar int32).
    """
    count = tf.shape(sample["classes"])[0]

    def largest():
        areas = (mask_areas(sample["masks"]) if "masks" in sample
                 else box_areas(sample["boxes"]))
        _, index = tf.math.top_k(areas, k=max_instances)
        return select_instances(sample, tf.scatter_nd(index[:, None],
                                                      tf.ones_like(index, tf.bool),
                                                      tf.shape(sample["classes"])))

    kept = tf.cond(count > max_instances, largest,
                   lambda: {key: tf.identity(value) for key, value in sample.items()})
    return kept, tf.maximum(count - max_instances, 0)


def to_targets(sample: dict, size: int, max_instances: int) -> tuple[tf.Tensor, dict]:
    """A size x size sample -> (image, targets) of contracts.TRAIN_IMAGES / TRAIN_TARGETS.

    Returns:
        image ``[S, S, 3]`` float32 in [0, 1]; targets dict boxes ``[M, 4]`` float32 xyxy input
        pixels, classes ``[M]`` int32 (-1 padding), masks ``[M, S/4, S/4]`` uint8 0/1 (left
        out for a sample without masks), and dropped ``[]`` int32: instances beyond M left
        out (the smallest; see keep_largest).
    """
    with tf.name_scope("to_targets"):
        image = tf.ensure_shape(tf.cast(sample["image"], tf.float32) / 255.0, [size, size, 3])
        instances = {"boxes": sample["boxes"], "classes": sample["classes"]}
        if "masks" in sample:
            instances["masks"] = tf.ensure_shape(sample["masks"], [None, size, size])
        kept, dropped = keep_largest(instances, max_instances)
        masks = downsample_masks(kept["masks"]) if "masks" in kept else None
        targets = pad_instances(kept["boxes"], kept["classes"], masks, max_instances,
                                size // PROTO_STRIDE)
        return image, dict(targets, dropped=dropped)
