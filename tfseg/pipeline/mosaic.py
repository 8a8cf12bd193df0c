"""4-image mosaic, fused with the random affine that follows it, as a dataset transform.

Each sample is first resized so its long side is S (``resize_to_fit``). A sliding window of 4
consecutive (shuffled) samples forms a group, so every sample is decoded once yet anchors a
mosaic of its own (the epoch keeps its length, less 3). With probability ``mosaic`` a group
becomes a mosaic: the 4 images tile a 2S x 2S canvas around a random centre (as in YOLO), and
the random affine maps the canvas to S x S. Otherwise the first sample alone is letterboxed
(centred) and warped by the random affine.

Memory and time: the canvas image is built (2S x 2S x 3 bytes) from one padded crop per
quadrant. The masks travel bit-packed (8 per uint8 channel) from ``resize_to_fit`` on: each
sample is packed once, at its own resolution, and resized packed, so the window of 4 copies
and pads ``ceil(K / 8)`` channels, not K masks. The tiles' shown parts share one 2S x 2S canvas
of ``ceil(K / 8) + 1`` channels (tiles never overlap, so the last channel says which tile a
pixel shows), warped once (nearest, which copies whole values) and unpacked at S x S for the
instances that can show: mask work is a few image-sized warps, not 4K mask warps.

Close mosaic: pass ``enabled``, a boolean ``tf.Variable`` read inside the graph on every
sample. A callback sets it to False for the last ``close_mosaic`` epochs
(``enabled.assign(False)``); samples already prefetched (a few batches) still follow the old
value. The dataset is not rebuilt, so ``fit`` keeps one dataset and one iterator per epoch.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import LETTERBOX_PAD_VALUE
from tfseg.ops import affine
from tfseg.ops.letterbox import letterbox_params
from tfseg.pipeline.augment import (area_gain, keep_visible, pack_masks, packed_layout,
                                    random_affine, random_affine_matrix, unpack_masks)
from tfseg.pipeline.targets import mask_areas

TILES = 4


def resize_to_fit(sample: dict, size: int) -> dict:
    """Resize a sample so its long side is ``size`` (aspect kept, no padding), masks packed.

    The masks are bit-packed at the source resolution (``pack_masks``) and resized packed with
    nearest sampling, which moves 8 masks per channel (evaluation letterboxes its masks
    bilinear >= 0.5 instead: its targets are scored, not augmented, and have no packing).

    Returns:
        dict with image ``[h, w, 3]`` uint8 (bilinear), packed ``[h, w, max(ceil(K / 8), 1)]``
        uint8 (nearest), areas ``[K]`` float32 (each mask's source pixel count times the area
        scale: the expected area for ``keep_visible``, not a recount), boxes scaled, classes,
        image_id, and ``size`` ``[2]`` int32 = (h, w).
    """
    with tf.name_scope("resize_to_fit"):
        height, width = tf.shape(sample["image"])[0], tf.shape(sample["image"])[1]
        scale, new_h, new_w, _, _ = letterbox_params(height, width, size)
        new_size = tf.stack([new_h, new_w])
        image = tf.image.resize(tf.cast(sample["image"], tf.float32), new_size, "bilinear")
        # The image's own per-axis scales (the rounded size), so masks and pixels line up.
        scale_x = tf.cast(new_w, tf.float32) / tf.cast(width, tf.float32)
        scale_y = tf.cast(new_h, tf.float32) / tf.cast(height, tf.float32)
        packed = affine.warp_image(pack_masks(sample["masks"]), affine.scaling(scale_x, scale_y),
                                   new_h, new_w, "nearest", 0.0)
        return {"image": tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8),
                "image_id": sample["image_id"], "classes": sample["classes"],
                "boxes": sample["boxes"] * scale, "packed": packed,
                "areas": mask_areas(sample["masks"]) * scale_x * scale_y, "size": new_size}


def group_samples(dataset: tf.data.Dataset, size: int, tiles: int = TILES) -> tf.data.Dataset:
    """Resized samples -> groups of 4 consecutive ones, padded to common shapes.

    ``tiles=1`` makes groups of one sample (the shapes below with 1 for 4): what
    ``apply_mosaic`` needs when it never makes a mosaic.

    Returns:
        dataset of dicts: image ``[4, S, S, 3]`` (grey bottom/right padding), image_id ``[4]``,
        boxes ``[4, K, 4]``, classes ``[4, K]`` (-1 padding), packed ``[4, S, S, C]`` masks
        (``C = max(ceil(K / 8), 1)``, instance j of a tile in bit j % 8 of channel j // 8), areas
        ``[4, K]``, size ``[4, 2]``.
    """
    shapes = {"image": [size, size, 3], "image_id": [], "boxes": [None, 4], "classes": [None],
              "packed": [size, size, None], "areas": [None], "size": [2]}
    values = {"image": tf.constant(LETTERBOX_PAD_VALUE, tf.uint8),
              "image_id": tf.constant(0, tf.int64), "boxes": 0.0,
              "classes": tf.constant(-1, tf.int32), "packed": tf.constant(0, tf.uint8),
              "areas": 0.0, "size": tf.constant(0, tf.int32)}
    keys = list(shapes)
    fields = dataset.map(lambda s: {k: s[k] for k in keys})
    if tiles == 1:
        return fields.padded_batch(1, shapes, values)
    windows = fields.window(tiles, shift=1, drop_remainder=True)
    return windows.flat_map(
        lambda w: tf.data.Dataset.zip(w).padded_batch(tiles, shapes, values))


def mosaic_layout(sizes: tf.Tensor, centre: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Where each tile goes on the 2S x 2S canvas and which part of it shows.

    Tiles 0..3 sit top-left, top-right, bottom-left and bottom-right of ``centre``, each touching
    it with one corner, cut by the canvas border.

    Args:
        sizes: ``[4, 2]`` int32 (h, w) of each tile.
        centre: ``[2]`` int32 (xc, yc) on the canvas.
        size: S.

    Returns:
        canvas: ``[4, 4]`` int32 xyxy rectangles on the canvas.
        source: ``[4, 4]`` int32 xyxy rectangles of the tiles they show (same sizes).
    """
    xc, yc, edge = centre[0], centre[1], 2 * size
    canvas, source = [], []
    for k in range(TILES):
        h, w = sizes[k, 0], sizes[k, 1]
        left, top = k in (0, 2), k in (0, 1)
        x1 = tf.maximum(xc - w, 0) if left else xc
        x2 = xc if left else tf.minimum(xc + w, edge)
        y1 = tf.maximum(yc - h, 0) if top else yc
        y2 = yc if top else tf.minimum(yc + h, edge)
        sx1 = w - (x2 - x1) if left else tf.zeros_like(w)
        sy1 = h - (y2 - y1) if top else tf.zeros_like(h)
        canvas.append(tf.stack([x1, y1, x2, y2]))
        source.append(tf.stack([sx1, sy1, sx1 + x2 - x1, sy1 + y2 - y1]))
    return tf.stack(canvas), tf.stack(source)


def mosaic_canvas(crops: list[tf.Tensor], canvas: tf.Tensor, centre: tf.Tensor, size: int,
                  fill) -> tf.Tensor:
    """``[2S, 2S, C]`` canvas of 4 crops, each at its rectangle, ``fill`` elsewhere.

    Each tile lies in its own quadrant around ``centre``, so every quadrant is one padded crop
    and the canvas is their 2 x 2 concatenation: each pixel is written once, in the crops'
    dtype.

    Args:
        crops: 4 tensors ``[h_k, w_k, C]``, the shown parts (``mosaic_layout``'s source rects).
        canvas: ``[4, 4]`` int32 xyxy rectangles from ``mosaic_layout``.
        centre: ``[2]`` int32 (xc, yc).
        size: S.
        fill: the value of uncovered pixels.
    """
    xc, yc, edge = centre[0], centre[1], 2 * size
    quadrants = []
    for k in range(TILES):
        left, top = k in (0, 2), k in (0, 1)
        qx1, qx2 = (0, xc) if left else (xc, edge)
        qy1, qy2 = (0, yc) if top else (yc, edge)
        c = canvas[k]
        pads = [[c[1] - qy1, qy2 - c[3]], [c[0] - qx1, qx2 - c[2]], [0, 0]]
        quadrants.append(tf.pad(crops[k], pads, constant_values=fill))
    return tf.concat([tf.concat(quadrants[:2], axis=1), tf.concat(quadrants[2:], axis=1)], axis=0)


def _mask_canvas(packed: tf.Tensor, canvas: tf.Tensor, centre: tf.Tensor, source: tf.Tensor,
                 size: int) -> tf.Tensor:
    """The 4 tiles' packed masks on one ``[2S, 2S, C + 1]`` canvas.

    Tiles never overlap on the canvas, so they share channels: channel c holds the packed
    masks of whichever tile covers the pixel, and the last channel says which (tile k shows
    as k + 1, uncovered pixels 0). One nearest warp then moves every tile's masks.

    Args:
        packed: ``[4, S, S, C]`` uint8 (group_samples').
    """
    crops = []
    for k in range(TILES):
        s = source[k]
        crop = packed[k, s[1]:s[3], s[0]:s[2]]  # [h', w', C]
        owner = tf.fill(tf.concat([tf.shape(crop)[:2], [1]], 0), tf.constant(k + 1, tf.uint8))
        crops.append(tf.concat([crop, owner], axis=-1))
    return mosaic_canvas(crops, canvas, centre, size, tf.constant(0, tf.uint8))


def _unpack_tiles(warped: tf.Tensor, slots: tf.Tensor, count: tf.Tensor) -> tf.Tensor:
    """Masks of tile instances out of the warped ``_mask_canvas``.

    Args:
        warped: ``[S, S, C + 1]`` uint8.
        slots: ``[n]`` int32 instance slots ``k * count + j`` (tile k, instance j).
        count: K, the group's instances per tile (padding included).

    Returns:
        ``[n, S, S]`` uint8 0/1.
    """
    per_tile = tf.maximum(count, 1)  # a group without instances has no slots to divide
    tile, index = slots // per_tile, slots % per_tile
    channels, bits = packed_layout(count)
    masks = unpack_masks(warped[..., :-1], tf.gather(channels, index), tf.gather(bits, index))
    owner = tf.cast(warped[..., -1][None] == tf.cast(tile + 1, tf.uint8)[:, None, None], tf.uint8)
    return masks * owner


def mosaic_sample(group: dict, seed, size: int, degrees: float, translate: float, scale: float,
                  shear: float, perspective: float = 0.0) -> dict:
    """One group of 4 -> one S x S sample: mosaic on a 2S canvas, then the random affine.

    Returns:
        SAMPLE dict: image ``[S, S, 3]`` uint8, image_id of the first tile, masks ``[K, S, S]``,
        boxes (tight boxes of the masks), classes; instances under MIN_VISIBLE dropped.
    """
    with tf.name_scope("mosaic"):
        centre_seed, affine_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
        centre = tf.random.stateless_uniform([2], centre_seed, size // 2, size + size // 2,
                                             dtype=tf.int32)
        canvas, source = mosaic_layout(group["size"], centre, size)
        matrix = random_affine_matrix(affine_seed, 2 * size, 2 * size, size, degrees, translate,
                                      scale, shear, perspective)
        crops = [group["image"][k, source[k, 1]:source[k, 3], source[k, 0]:source[k, 2]]
                 for k in range(TILES)]
        image_canvas = mosaic_canvas(crops, canvas, centre, size,
                                     tf.constant(LETTERBOX_PAD_VALUE, tf.uint8))
        image = affine.warp_image(image_canvas, matrix, size, size, "bilinear",
                                  float(LETTERBOX_PAD_VALUE))
        warped = affine.warp_image(_mask_canvas(group["packed"], canvas, centre, source, size),
                                   matrix, size, size, "nearest", 0.0)
        # Unpack only the instances that can show: real ones (padding has class -1) whose box,
        # placed on the canvas and warped, reaches the output. Most of a mosaic's 4K slots
        # are padding or fall outside the S x S crop; the rest are exactly those kept below.
        classes = tf.reshape(group["classes"], [-1])  # [4K]
        shown = tf.cast(tf.where((classes >= 0) & _may_show(group["boxes"], canvas, source,
                                                             matrix, size))[:, 0], tf.int32)
        masks = _unpack_tiles(warped, shown, tf.shape(group["classes"])[1])  # [n, S, S]
        expected = tf.gather(tf.reshape(group["areas"], [-1]), shown)
        sample = {"image": image, "image_id": group["image_id"][0], "masks": masks,
                  "classes": tf.gather(classes, shown)}
        return keep_visible(sample, expected * area_gain(matrix))


def _may_show(boxes: tf.Tensor, canvas: tf.Tensor, source: tf.Tensor, matrix: tf.Tensor,
              size: int, margin: float = 2.0) -> tf.Tensor:
    """Whether each tile instance's box, cut to the tile's shown part, placed on the canvas and
    warped by ``matrix``, overlaps the S x S output (within ``margin`` pixels, so resampling
    at the box edge is covered): a superset of the instances with a visible pixel.

    Args:
        boxes: ``[4, K, 4]`` xyxy in tile pixels (group_samples' padding: zeros).
        canvas, source: ``[4, 4]`` int32 from ``mosaic_layout``.
        matrix: ``[3, 3]`` canvas -> output.

    Returns:
        ``[4K]`` bool.
    """
    source = tf.cast(source, tf.float32)[:, None, :]  # [4, 1, 4]
    offset = tf.cast(canvas[:, :2] - tf.cast(source[:, 0, :2], tf.int32), tf.float32)  # [4, 2]
    cut = tf.concat([tf.maximum(boxes[..., :2], source[..., :2]),
                     tf.minimum(boxes[..., 2:], source[..., 2:])], axis=-1)  # [4, K, 4]
    on_canvas = cut + tf.tile(offset, [1, 2])[:, None, :]  # [4, K, 4]
    nonempty = tf.reduce_all(on_canvas[..., 2:] > on_canvas[..., :2], axis=-1)  # [4, K]
    out = affine.transform_boxes(matrix, tf.reshape(on_canvas, [-1, 4]))  # [4K, 4]
    inside = ((out[:, 2] > -margin) & (out[:, 3] > -margin)
              & (out[:, 0] < size + margin) & (out[:, 1] < size + margin))
    return tf.reshape(nonempty, [-1]) & inside


def single_sample(group: dict, seed, size: int, degrees: float, translate: float, scale: float,
                  shear: float, perspective: float = 0.0) -> dict:
    """The first sample of a group, letterboxed (centred) and warped by the random affine."""
    with tf.name_scope("single"):
        count = tf.reduce_sum(tf.cast(group["classes"][0] >= 0, tf.int32))  # padding is last
        sample = {"image": group["image"][0], "image_id": group["image_id"][0],
                  "packed": group["packed"][0], "areas": group["areas"][0, :count],
                  "boxes": group["boxes"][0, :count], "classes": group["classes"][0, :count]}
        h, w = group["size"][0, 0], group["size"][0, 1]
        placement = affine.translation((size - w) // 2, (size - h) // 2)
        return random_affine(sample, seed, size, degrees, translate, scale, shear, placement,
                             perspective)


def augment_group(group: dict, draw, seed: int, size: int, probability: float,
                  enabled: tf.Variable | None = None, degrees: float = 0.0, translate: float = 0.1,
                  scale: float = 0.5, shear: float = 0.0, perspective: float = 0.0) -> dict:
    """One group (of 4, or of 1 when ``probability`` is 0) -> one S x S sample: a mosaic with
    ``probability`` (while ``enabled``), else its first sample alone; then the random affine.

    Args:
        draw: ``[]`` int64 from ``tf.data.Dataset.random``; with ``seed`` it decides every draw.
        The rest: see apply_mosaic.
    """
    params = dict(size=size, degrees=degrees, translate=translate, scale=scale, shear=shear,
                  perspective=perspective)
    seeds = tf.random.experimental.stateless_split(tf.stack([draw, tf.constant(seed, tf.int64)]), 2)
    if not probability > 0:
        return single_sample(group, seeds[1], **params)
    on = tf.random.stateless_uniform([], seeds[0]) < probability
    if enabled is not None:
        on = on & enabled
    return tf.cond(on, lambda: mosaic_sample(group, seeds[1], **params),
                   lambda: single_sample(group, seeds[1], **params))


def apply_mosaic(groups: tf.data.Dataset, seed: int, size: int, probability: float,
                 enabled: tf.Variable | None = None, degrees: float = 0.0, translate: float = 0.1,
                 scale: float = 0.5, shear: float = 0.0, perspective: float = 0.0) -> tf.data.Dataset:
    """Groups of 4 (from ``group_samples``) -> S x S samples, mosaic with ``probability``.

    Args:
        groups: dataset from ``group_samples``.
        seed: int; each group draws its randomness from ``tf.data.Dataset.random(seed)``.
        probability: chance of a mosaic (YOLO ``mosaic``); 0 leaves the mosaic out of the
            graph (a run without mosaic does not trace it), and the groups may be of one.
        enabled: optional boolean tf.Variable; False turns mosaic off (close mosaic).
        degrees, translate, scale, shear, perspective: the random affine (see
            augment.random_affine_matrix).

    Returns:
        dataset of SAMPLE dicts of size S x S (no is_crowd field: crowds are gone by now).
    """
    def one(group, draw):
        return augment_group(group, draw, seed, size, probability, enabled, degrees, translate,
                             scale, shear, perspective)

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(groups, draws).map(one, num_parallel_calls=tf.data.AUTOTUNE)
