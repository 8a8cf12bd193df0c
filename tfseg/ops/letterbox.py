"""Letterbox: fit an image of any (height, width) into a square S x S input, keeping its aspect.

The map (contracts.LETTERBOX_INFO):

    scale    = min(S / height, S / width)
    resized  = (round(height * scale), round(width * scale))     rounded half to even (tf.round)
    pad_top  = floor((S - resized_height) / 2),  pad_left = floor((S - resized_width) / 2)
    input    = original * scale + (pad_left, pad_top)            for x, y coordinates
    original = (input - (pad_left, pad_top)) / scale

Coordinates are continuous pixel coordinates: pixel (row r, column c) covers [c, c + 1) x
[r, r + 1). The image is resized bilinearly (half-pixel centres, the RESIZE_BILINEAR builtin of
TFLite) and padded with contracts.LETTERBOX_PAD_VALUE; masks are resized and padded with 0.
The resized image spans ``resized`` pixels, which may differ from ``original * scale`` by under
half a pixel on the short side; boxes use the exact ``scale`` of the info vector, so forward and
inverse maps are each other's inverse.

Used by the pipeline (evaluation inputs and the training resize), the post-processing host side
and the SavedModel signature that takes encoded images. Plain TF, no state.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import LETTERBOX_PAD_VALUE


def letterbox_params(height, width, size: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Scale, resized size and padding that fit (height, width) into size x size.

    Args:
        height: ``[]`` original height in pixels (any numeric dtype).
        width: ``[]`` original width in pixels.
        size: S, the square input size.

    Returns:
        scale: ``[]`` float32, min(S / height, S / width).
        resized_height, resized_width: ``[]`` int32, the image size after resizing.
        pad_top, pad_left: ``[]`` int32, rows above and columns left of the resized image.
    """
    with tf.name_scope("letterbox_params"):
        h = tf.cast(height, tf.float32)
        w = tf.cast(width, tf.float32)
        s = tf.constant(float(size), tf.float32)
        scale = tf.minimum(s / h, s / w)
        # Clamp to S: h * (S / h) may land one ulp above S.
        resized_h = tf.minimum(tf.cast(tf.round(h * scale), tf.int32), size)
        resized_w = tf.minimum(tf.cast(tf.round(w * scale), tf.int32), size)
        pad_top = (size - resized_h) // 2
        pad_left = (size - resized_w) // 2
        return scale, resized_h, resized_w, pad_top, pad_left


def letterbox_info(height, width, size: int) -> tf.Tensor:
    """The letterbox info vector of contracts.LETTERBOX_INFO for one image.

    Returns:
        ``[5]`` float32 (orig_height, orig_width, scale, pad_top, pad_left).
    """
    scale, _, _, pad_top, pad_left = letterbox_params(height, width, size)
    return tf.stack([tf.cast(height, tf.float32), tf.cast(width, tf.float32), scale,
                     tf.cast(pad_top, tf.float32), tf.cast(pad_left, tf.float32)])


def _pad_to_square(image: tf.Tensor, pad_top, pad_left, size: int, value) -> tf.Tensor:
    """Pad ``[..., h, w, C]`` (h, w <= size) to ``[..., size, size, C]`` with ``value``."""
    h, w = tf.shape(image)[-3], tf.shape(image)[-2]
    rank = image.shape.rank
    paddings = [[0, 0]] * (rank - 3) + [[pad_top, size - h - pad_top],
                                        [pad_left, size - w - pad_left], [0, 0]]
    return tf.pad(image, paddings, constant_values=tf.cast(value, image.dtype))


def letterbox_image(image: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Resize an image to fit size x size (bilinear, aspect kept) and pad it with grey 114.

    Args:
        image: ``[H, W, 3]`` uint8 or float pixels in 0..255.

    Returns:
        letterboxed: ``[size, size, 3]`` float32 in 0..255 (cast to uint8 with tf.round if
            needed; the pad value 114 is exact).
        info: ``[5]`` float32 letterbox info.
    """
    with tf.name_scope("letterbox_image"):
        height, width = tf.shape(image)[0], tf.shape(image)[1]
        _, resized_h, resized_w, pad_top, pad_left = letterbox_params(height, width, size)
        resized = tf.image.resize(tf.cast(image, tf.float32), tf.stack([resized_h, resized_w]),
                                  method="bilinear")
        padded = _pad_to_square(resized, pad_top, pad_left, size, float(LETTERBOX_PAD_VALUE))
        padded = tf.ensure_shape(padded, [size, size, image.shape[-1]])
        return padded, letterbox_info(height, width, size)


def letterbox_masks(masks: tf.Tensor, size: int, threshold: float = 0.5) -> tf.Tensor:
    """Letterbox 0/1 instance masks like their image: bilinear resize, threshold, pad with 0.

    Args:
        masks: ``[K, H, W]`` uint8 0/1 masks of one image.
        size: S.
        threshold: a resized pixel is on when its bilinear value is >= threshold.

    Returns:
        ``[K, size, size]`` uint8 0/1.
    """
    with tf.name_scope("letterbox_masks"):
        height, width = tf.shape(masks)[1], tf.shape(masks)[2]
        _, resized_h, resized_w, pad_top, pad_left = letterbox_params(height, width, size)
        channels_last = tf.transpose(tf.cast(masks, tf.float32), [1, 2, 0])  # [H, W, K]
        # One spare channel: resize refuses images with no channels (K = 0).
        spare = tf.zeros(tf.concat([tf.shape(channels_last)[:2], [1]], 0), channels_last.dtype)  # [H, W, 1]
        channels_last = tf.concat([channels_last, spare], -1)
        resized = tf.image.resize(channels_last, tf.stack([resized_h, resized_w]), method="bilinear")
        binary = tf.cast(resized[..., :-1] >= threshold, tf.uint8)  # [h, w, K]
        padded = _pad_to_square(binary, pad_top, pad_left, size, 0)  # [S, S, K]
        return tf.ensure_shape(tf.transpose(padded, [2, 0, 1]), [masks.shape[0], size, size])


def _info_fields(info: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """scale ``[..., 1]`` and the xyxy offset ``[..., 1, 4]`` from info ``[..., 5]``."""
    info = tf.cast(info, tf.float32)
    scale = info[..., 2:3]  # [..., 1]
    pad_top, pad_left = info[..., 3], info[..., 4]
    offset = tf.stack([pad_left, pad_top, pad_left, pad_top], axis=-1)  # [..., 4]
    return scale[..., None], offset[..., None, :], info


def letterbox_boxes(boxes: tf.Tensor, info: tf.Tensor) -> tf.Tensor:
    """Original-image xyxy boxes -> letterboxed input pixels.

    Args:
        boxes: ``[..., K, 4]`` float32 xyxy, original pixels.
        info: ``[..., 5]`` letterbox info (leading dims match ``boxes``' leading dims).

    Returns:
        ``[..., K, 4]`` float32 xyxy, input pixels.
    """
    with tf.name_scope("letterbox_boxes"):
        scale, offset, _ = _info_fields(info)
        return tf.cast(boxes, tf.float32) * scale + offset


def letterbox_inverse_boxes(boxes: tf.Tensor, info: tf.Tensor, clip: bool = True) -> tf.Tensor:
    """Letterboxed input-pixel xyxy boxes -> original-image pixels (the inverse map).

    Args:
        boxes: ``[..., N, 4]`` float32 xyxy, input pixels (e.g. detections ``[B, N, 4]``).
        info: ``[..., 5]`` letterbox info (``[B, 5]`` for a batch).
        clip: clip the result to [0, orig_width] x [0, orig_height].

    Returns:
        ``[..., N, 4]`` float32 xyxy, original pixels.
    """
    with tf.name_scope("letterbox_inverse_boxes"):
        scale, offset, info = _info_fields(info)
        original = (tf.cast(boxes, tf.float32) - offset) / scale
        if not clip:
            return original
        height, width = info[..., 0], info[..., 1]
        limit = tf.stack([width, height, width, height], axis=-1)[..., None, :]  # [..., 1, 4]
        return tf.clip_by_value(original, tf.zeros_like(limit), limit)
