"""Copy-paste: instances of one sample pasted, pixels and masks, over another.

Segmentation's own augmentation ("Simple Copy-Paste", Ghiasi et al. 2021, as the YOLO recipes
use it). The source is the sample itself mirrored left-right (``copy_paste_mode`` "flip") or
another augmented sample ("mixup"). An instance of the source is eligible when its box covers
under OCCLUSION_LIMIT of every box already in the base; the eligible ones are pasted in
increasing order of that cover, ``round(fraction * eligible)`` of them.

Pasting is occlusion-aware, which keeps masks exact: the pasted pixels are cut from the masks
of the base's instances under them, an instance left with under MIN_VISIBLE of its area (or
none) is dropped, and every box is recomputed as the tight box of its mask. ``occlude`` is that
bookkeeping, shared with cutmix (mixing.py).

Every function takes and returns S x S samples (image ``[S, S, 3]`` uint8, masks ``[K, S, S]``
uint8 0/1, boxes ``[K, 4]`` xyxy, classes ``[K]``), plain TF on one sample.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.pipeline.augment import MIN_VISIBLE, flip_sample
from tfseg.pipeline.targets import mask_areas, mask_boxes, select_instances

OCCLUSION_LIMIT = 0.30  # the reference's: a pasted box may cover under 30% of each existing box


def occlude(sample: dict, cover: tf.Tensor) -> dict:
    """Cut ``cover`` (``[S, S]`` 0/1: pixels that now show something else) from every mask.

    An instance keeps when at least one pixel and MIN_VISIBLE of its area stay visible; boxes
    become the tight boxes of the cut masks.
    """
    before = mask_areas(sample["masks"])
    masks = sample["masks"] * (1 - tf.cast(cover, tf.uint8))[None]  # [K, S, S]
    after = mask_areas(masks)
    keep = (after > 0) & (after >= MIN_VISIBLE * before)
    return select_instances(dict(sample, masks=masks, boxes=mask_boxes(masks)), keep)


def concat_instances(first: dict, second: dict) -> dict:
    """``first`` with the instances of ``second`` appended (image and image_id of ``first``)."""
    return dict(first, **{key: tf.concat([first[key], second[key]], axis=0)
                          for key in ("masks", "boxes", "classes")})


def paste_instances(base: dict, source: dict, chosen: tf.Tensor) -> dict:
    """The ``chosen`` ``[K_source]`` bool instances of ``source`` pasted over ``base``.

    The pixels under the chosen masks come from ``source``'s image; base instances under them
    lose those pixels (``occlude``); the pasted instances follow, their masks whole.
    """
    pasted = select_instances(source, chosen)
    cover = tf.reduce_max(tf.concat([pasted["masks"], tf.zeros_like(base["image"][None, ..., 0])],
                                    axis=0), axis=0)  # [S, S]; the zeros make K = 0 safe
    image = tf.where(cover[..., None] > 0, source["image"], base["image"])
    pasted = dict(pasted, boxes=mask_boxes(pasted["masks"]))
    return concat_instances(occlude(dict(base, image=image), cover), pasted)


def box_cover(boxes: tf.Tensor, others: tf.Tensor) -> tf.Tensor:
    """``[N, M]``: the fraction of each box of ``others`` ``[M, 4]`` that box n of ``boxes``
    ``[N, 4]`` covers (intersection over the other's area)."""
    top_left = tf.maximum(boxes[:, None, :2], others[None, :, :2])  # [N, M, 2]
    bottom_right = tf.minimum(boxes[:, None, 2:], others[None, :, 2:])
    overlap = tf.reduce_prod(tf.maximum(bottom_right - top_left, 0.0), axis=-1)  # [N, M]
    sides = tf.maximum(others[:, 2:] - others[:, :2], 0.0)
    return overlap / (sides[:, 0] * sides[:, 1] + 1e-7)[None, :]


def choose_to_paste(boxes: tf.Tensor, base_boxes: tf.Tensor, fraction: float) -> tf.Tensor:
    """Which source instances to paste: ``round(fraction * eligible)`` of the eligible ones
    (covering under OCCLUSION_LIMIT of every base box), least covering first.

    Args:
        boxes: ``[N, 4]`` source boxes; base_boxes: ``[M, 4]``.

    Returns:
        ``[N]`` bool.
    """
    cover = tf.concat([box_cover(boxes, base_boxes), tf.zeros_like(boxes[:, :1])], axis=1)
    worst = tf.reduce_max(cover, axis=1)  # [N]; 0 when the base is empty
    eligible = worst < OCCLUSION_LIMIT
    count = tf.cast(tf.round(fraction * tf.reduce_sum(tf.cast(eligible, tf.float32))), tf.int32)
    order = tf.argsort(tf.where(eligible, worst, 2.0), stable=True)  # eligible first, least cover
    first = order[:count]
    return tf.scatter_nd(first[:, None], tf.ones_like(first, tf.bool), tf.shape(worst))


def copy_paste_from(base: dict, source: dict, fraction: float) -> dict:
    """Paste the instances of ``source`` chosen by ``choose_to_paste`` over ``base``."""
    with tf.name_scope("copy_paste"):
        return paste_instances(base, source,
                               choose_to_paste(source["boxes"], base["boxes"], fraction))


def copy_paste_flip(sample: dict, fraction: float) -> dict:
    """Copy-paste from the sample's own left-right mirror ("flip" mode)."""
    return copy_paste_from(sample, flip_sample(sample), fraction)
