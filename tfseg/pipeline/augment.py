"""Random geometric and colour augmentation, each a function (sample, seed) -> sample.

Seeds are ``[2]`` int tensors for TF's stateless random ops, so a sample's augmentation
depends only on its seed: deterministic under tf.data parallelism.

The parameters follow the YOLO training recipe: ``degrees`` (rotation range +/-), ``translate``
(+/- fraction of the output size), ``scale`` (gain drawn in 1 +/- scale), ``shear`` (+/-
degrees), ``perspective`` (+/- the projective row's terms), ``fliplr`` / ``flipud``
(probabilities), ``hsv_h`` (hue shift, +/- fraction of the hue circle), ``hsv_s`` / ``hsv_v``
(saturation / value gain drawn in 1 +/- the value). Mixing two samples (mixup, cutmix,
copy-paste) lives in mixing.py and copy_paste.py.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import LETTERBOX_PAD_VALUE
from tfseg.ops import affine
from tfseg.pipeline.targets import mask_areas, mask_boxes, select_instances

MIN_VISIBLE = 0.01  # an instance keeping under 1% of its expected area after the warp is dropped
# (the reference keeps segment instances down to 1% of their box area; visible slivers stay labelled)


def _uniform(seed, low, high) -> tf.Tensor:
    return tf.random.stateless_uniform([], seed, minval=low, maxval=high)


def random_affine_matrix(seed, source_height, source_width, size: int, degrees: float,
                         translate: float, scale: float, shear: float,
                         perspective: float = 0.0) -> tf.Tensor:
    """The YOLO random affine: centre the source on the origin, tilt (perspective), rotate and
    scale, shear, then move the origin to a random point near the centre of the size x size
    output.

    ``degrees``, ``translate``, ``scale``, ``shear`` and ``perspective`` are Python numbers (the
    recipe's settings): a zero ``degrees``, ``shear`` or ``perspective`` leaves that factor out
    of the graph. ``perspective`` p draws the bottom row (a, b, 1), a and b in [-p, p], so a
    source point at (x, y) from the centre is divided by 1 + a x + b y: keep p at 0.001 or
    below, where that stays positive over a 2S mosaic canvas.

    Args:
        seed: ``[2]`` int stateless seed.
        source_height, source_width: the source canvas (``[]`` numbers or tensors).
        size: S, the output side.

    Returns:
        ``[3, 3]`` float32 source -> output pixels.
    """
    seeds = tf.random.experimental.stateless_split(seed, 6)
    centre = affine.translation(-tf.cast(source_width, tf.float32) / 2.0,
                                -tf.cast(source_height, tf.float32) / 2.0)
    # Without rotation or shear the matrix stays exactly axis-aligned (a draw in [0, 1e-9]
    # degrees would not), so warps take affine.warp_image's fast separable path.
    turn = affine.rotation(_uniform(seeds[0], -degrees, degrees + 1e-9)) if degrees else tf.eye(3)
    gain = affine.scaling(_uniform(seeds[1], 1.0 - scale, 1.0 + scale + 1e-9))
    skew = (affine.shearing(_uniform(seeds[2], -shear, shear + 1e-9),
                            _uniform(seeds[3], -shear, shear + 1e-9)) if shear else tf.eye(3))
    move = affine.translation(_uniform(seeds[4], 0.5 - translate, 0.5 + translate + 1e-9) * size,
                              _uniform(seeds[5], 0.5 - translate, 0.5 + translate + 1e-9) * size)
    return move @ skew @ gain @ turn @ _random_tilt(seed, perspective) @ centre


def _random_tilt(seed, perspective: float) -> tf.Tensor:
    """``[3, 3]`` projective term, bottom row (a, b, 1); the identity when ``perspective`` is 0.

    Its seed is folded from the affine's, so the other factors draw as without it.
    """
    if not perspective:
        return tf.eye(3)
    a, b = tf.unstack(tf.random.stateless_uniform(
        [2], tf.random.experimental.stateless_fold_in(seed, 7), -perspective, perspective))
    return tf.stack([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], tf.stack([a, b, 1.0])])


def area_gain(matrix: tf.Tensor) -> tf.Tensor:
    """How much ``matrix`` ``[3, 3]`` scales areas: |det|, exact for an affine matrix; for a
    projective one (``perspective``) the gain at the source centre, where the tilt's w is 1."""
    return tf.abs(tf.linalg.det(matrix))


def pack_masks(masks: tf.Tensor) -> tf.Tensor:
    """``[K, H, W]`` uint8 0/1 -> ``[H, W, C]`` uint8 with mask k in bit k % 8 of channel k // 8.

    ``C = max(ceil(K / 8), 1)``. A nearest-neighbour warp copies whole pixel values, so warping
    the packed masks moves 8 masks per channel at once with exactly the same sampling as
    warping each mask alone (the warp costs per channel).
    """
    count, height, width = tf.unstack(tf.shape(masks))
    channels = tf.maximum((count + 7) // 8, 1)
    padded = tf.pad(masks, [[0, channels * 8 - count], [0, 0], [0, 0]])  # [8C, H, W]
    bits = tf.reshape(padded, tf.stack([channels, 8, height, width]))  # [C, 8, H, W]
    weights = tf.constant([1, 2, 4, 8, 16, 32, 64, 128], tf.uint8)[:, None, None]
    packed = tf.reduce_sum(bits * weights, axis=1)  # [C, H, W]; distinct bits never carry
    # Reduce and transpose on the side with C channels, not K masks: several times faster.
    return tf.transpose(packed, [1, 2, 0])


def unpack_masks(packed: tf.Tensor, channels: tf.Tensor, bits: tf.Tensor) -> tf.Tensor:
    """Masks out of packed channels: mask i is bit ``bits[i]`` of channel ``channels[i]``.

    Args:
        packed: ``[H, W, C]`` uint8 from ``pack_masks`` (possibly warped or tiled).
        channels, bits: ``[K]`` int32.

    Returns:
        ``[K, H, W]`` uint8 0/1.
    """
    planes = tf.gather(tf.transpose(packed, [2, 0, 1]), channels)  # [K, H, W]
    shifts = tf.cast(bits, tf.uint8)[:, None, None]
    return tf.bitwise.bitwise_and(tf.bitwise.right_shift(planes, shifts), tf.constant(1, tf.uint8))


def packed_layout(count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(channels, bits) ``[K]`` int32 of ``pack_masks``' layout for ``count`` masks."""
    index = tf.range(count)
    return index // 8, index % 8


def warp_masks(masks: tf.Tensor, matrix: tf.Tensor, size: int) -> tf.Tensor:
    """``[K, H, W]`` uint8 0/1 -> ``[K, size, size]`` under ``matrix`` (nearest, so 0/1 stays
    0/1; the masks travel bit-packed, 8 to a channel)."""
    warped = affine.warp_image(pack_masks(masks), matrix, size, size, "nearest", 0.0)
    return unpack_masks(warped, *packed_layout(tf.shape(masks)[0]))


def keep_visible(sample: dict, expected: tf.Tensor) -> dict:
    """Keep the instances of a warped sample still visible; boxes become the tight boxes of
    the warped masks.

    An instance is kept when its mask keeps at least MIN_VISIBLE of ``expected`` ``[K]``, its
    area before the warp times the warp's area gain |det| (so instances pushed out of the
    frame, or cut to a sliver, go).
    """
    visible = mask_areas(sample["masks"])
    keep = (visible > 0) & (visible >= MIN_VISIBLE * expected)
    return select_instances(dict(sample, boxes=mask_boxes(sample["masks"])), keep)


def random_affine(sample: dict, seed, size: int, degrees: float = 0.0, translate: float = 0.1,
                  scale: float = 0.5, shear: float = 0.0, placement: tf.Tensor | None = None,
                  perspective: float = 0.0) -> dict:
    """Warp image, masks and boxes of a sample by one random affine into a size x size output.

    Args:
        sample: SAMPLE dict of any image size; its masks either ``masks`` ``[K, H, W]``, or
            already bit-packed: ``packed`` ``[H, W, max(ceil(K / 8), 1)]`` (``pack_masks``) with
            ``areas`` ``[K]`` (their pixel counts).
        seed: ``[2]`` stateless seed.
        size: S.
        placement: optional ``[3, 3]`` applied before the random affine, whose source canvas
            is then size x size (used to centre a top-left-aligned letterbox).
        perspective: the projective term (see random_affine_matrix).

    Returns:
        SAMPLE dict with image ``[S, S, 3]`` uint8 (grey 114 where nothing maps), masks
        ``[K', S, S]``, boxes the tight boxes of those masks; invisible instances dropped.
    """
    with tf.name_scope("random_affine"):
        if placement is None:
            height, width = tf.shape(sample["image"])[0], tf.shape(sample["image"])[1]
            placement = tf.eye(3)
        else:
            height = width = size
        matrix = random_affine_matrix(seed, height, width, size, degrees, translate, scale,
                                      shear, perspective) @ placement
        image = affine.warp_image(sample["image"], matrix, size, size, "bilinear",
                                  float(LETTERBOX_PAD_VALUE))
        if "packed" in sample:
            packed, areas = sample["packed"], sample["areas"]
        else:
            packed, areas = pack_masks(sample["masks"]), mask_areas(sample["masks"])
        warped = affine.warp_image(packed, matrix, size, size, "nearest", 0.0)
        masks = unpack_masks(warped, *packed_layout(tf.shape(areas)[0]))
        out = {key: value for key, value in sample.items() if key not in ("packed", "areas")}
        return keep_visible(dict(out, image=image, masks=masks),
                            areas * area_gain(matrix))


def flip_sample(sample: dict, vertical: bool = False) -> dict:
    """Mirror image, masks and boxes left-right (or, ``vertical``, top-bottom)."""
    height, width = tf.shape(sample["image"])[0], tf.shape(sample["image"])[1]
    if vertical:  # y -> height - y, as horizontal_flip does x -> width - x
        mirror = affine.translation(0, height) @ affine.scaling(1, -1)
    else:
        mirror = affine.horizontal_flip(width)
    return dict(sample, image=tf.reverse(sample["image"], [1 - int(vertical)]),
                masks=tf.reverse(sample["masks"], [2 - int(vertical)]),
                boxes=affine.transform_boxes(mirror, sample["boxes"]))


def random_flip(sample: dict, seed, probability: float = 0.5, vertical: bool = False) -> dict:
    """Mirror image, masks and boxes left-right (``vertical``: top-bottom) with ``probability``."""
    with tf.name_scope("random_flip"):
        return tf.cond(_uniform(seed, 0.0, 1.0) < probability,
                       lambda: flip_sample(sample, vertical), lambda: dict(sample))


def random_hsv(sample: dict, seed, hsv_h: float = 0.015, hsv_s: float = 0.7,
               hsv_v: float = 0.4) -> dict:
    """Colour jitter in HSV: hue += r_h (fraction of the circle, wrapped), saturation *= 1 + r_s,
    value *= 1 + r_v (clipped), with r_x uniform in [-hsv_x, hsv_x]."""
    with tf.name_scope("random_hsv"):
        gains = tf.random.stateless_uniform([3], seed, -1.0, 1.0) * tf.constant([hsv_h, hsv_s, hsv_v])
        hsv = tf.image.rgb_to_hsv(tf.cast(sample["image"], tf.float32) / 255.0)  # [H, W, 3]
        hue = tf.math.floormod(hsv[..., 0] + gains[0], 1.0)
        saturation = tf.clip_by_value(hsv[..., 1] * (1.0 + gains[1]), 0.0, 1.0)
        value = tf.clip_by_value(hsv[..., 2] * (1.0 + gains[2]), 0.0, 1.0)
        rgb = tf.image.hsv_to_rgb(tf.stack([hue, saturation, value], axis=-1))
        image = tf.cast(tf.round(tf.clip_by_value(rgb * 255.0, 0.0, 255.0)), tf.uint8)
        return dict(sample, image=image)
