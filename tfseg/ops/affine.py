"""3x3 affine matrices on pixel coordinates and their application to points, boxes and images.

A matrix maps a column vector (x, y, 1) of the source image to the destination; compose with
``A @ B`` (B first). Coordinates are continuous pixel coordinates: pixel (row r, column c)
covers [c, c + 1) x [r, r + 1), its centre is (c + 0.5, r + 0.5); y points down.

Every parameter may be a Python number or a scalar tensor (e.g. a random draw), so the same
functions serve fixed tests and the augmentation graph. Plain TF, no state.
"""

from __future__ import annotations

import math

import tensorflow as tf


def _f32(value) -> tf.Tensor:
    return tf.cast(value, tf.float32)


def _matrix(rows) -> tf.Tensor:
    """``[3, 3]`` float32 from nested rows of scalars (numbers or tensors)."""
    return tf.stack([tf.stack([_f32(v) for v in row]) for row in rows])


def translation(tx, ty) -> tf.Tensor:
    """``[3, 3]``: (x, y) -> (x + tx, y + ty)."""
    return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scaling(sx, sy=None) -> tf.Tensor:
    """``[3, 3]``: (x, y) -> (sx x, sy y) about the origin; ``sy`` defaults to ``sx``."""
    sy = sx if sy is None else sy
    return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotation(degrees) -> tf.Tensor:
    """``[3, 3]`` rotation about the origin; positive is counter-clockwise on screen (y down).

    (x, y) -> (cos a x + sin a y, -sin a x + cos a y): at 90 degrees the point (1, 0), right
    of the origin, goes to (0, -1), above it. The same convention as cv2.getRotationMatrix2D.
    """
    radians = _f32(degrees) * (math.pi / 180.0)
    c, s = tf.cos(radians), tf.sin(radians)
    return _matrix([[c, s, 0], [-s, c, 0], [0, 0, 1]])


def shearing(x_degrees, y_degrees) -> tf.Tensor:
    """``[3, 3]``: (x, y) -> (x + tan(x_degrees) y, y + tan(y_degrees) x)."""
    tx = tf.tan(_f32(x_degrees) * (math.pi / 180.0))
    ty = tf.tan(_f32(y_degrees) * (math.pi / 180.0))
    return _matrix([[1, tx, 0], [ty, 1, 0], [0, 0, 1]])


def horizontal_flip(width) -> tf.Tensor:
    """``[3, 3]`` mirror of an image ``width`` pixels wide: x -> width - x.

    Pixel column c (centre c + 0.5) lands on column width - 1 - c.
    """
    return _matrix([[-1, 0, width], [0, 1, 0], [0, 0, 1]])


def transform_points(matrix: tf.Tensor, points: tf.Tensor) -> tf.Tensor:
    """Apply ``matrix`` to points.

    Args:
        matrix: ``[3, 3]`` float32.
        points: ``[..., 2]`` (x, y).

    Returns:
        ``[..., 2]`` float32 transformed points (divided by the homogeneous coordinate).
    """
    points = _f32(points)
    ones = tf.ones_like(points[..., :1])
    homogeneous = tf.concat([points, ones], axis=-1)  # [..., 3]
    moved = tf.linalg.matvec(matrix, homogeneous)  # [..., 3]
    return moved[..., :2] / moved[..., 2:]


def transform_boxes(matrix: tf.Tensor, boxes: tf.Tensor) -> tf.Tensor:
    """The axis-aligned box around each transformed box's 4 corners.

    Under rotation or shear this box is loose; where a mask exists, prefer the tight box of
    the transformed mask (``tfseg.pipeline.targets`` does so).

    Args:
        matrix: ``[3, 3]`` float32.
        boxes: ``[K, 4]`` xyxy.

    Returns:
        ``[K, 4]`` float32 xyxy.
    """
    boxes = _f32(boxes)
    x1, y1, x2, y2 = tf.unstack(boxes, 4, axis=-1)  # each [K]
    corners = tf.stack([tf.stack([x1, y1], -1), tf.stack([x2, y1], -1),
                        tf.stack([x1, y2], -1), tf.stack([x2, y2], -1)], axis=-2)  # [K, 4, 2]
    moved = transform_points(matrix, corners)  # [K, 4, 2]
    return tf.concat([tf.reduce_min(moved, axis=-2), tf.reduce_max(moved, axis=-2)], axis=-1)


def warp_image(image: tf.Tensor, matrix: tf.Tensor, height: int, width: int,
               interpolation: str = "bilinear", fill_value: float = 0.0) -> tf.Tensor:
    """Resample ``image`` so that source point p lands on destination point ``matrix @ p``.

    Sampling follows TF's ``ImageProjectiveTransformV3`` (constant fill). A nearest warp whose
    matrix has no rotation or shear (scale and translation only, the YOLO recipe's default)
    takes a separable path that gathers rows, then columns: the same samples, 4 to 6 times
    faster on bit-packed masks (8 or more channels), because the kernel recomputes the
    projection for every pixel and channel. Bilinear warps of images (3 channels) keep the
    kernel, which is as fast there.

    Args:
        image: ``[H, W, C]`` (uint8 or float; C may be any number, e.g. K stacked masks).
        matrix: ``[3, 3]`` float32 source -> destination.
        height, width: destination size.
        interpolation: "bilinear" or "nearest".
        fill_value: value of destination pixels whose source lies outside the image.

    Returns:
        ``[height, width, C]`` of the dtype of ``image``.
    """
    with tf.name_scope("warp_image"):
        # Both paths want destination -> source on integer pixel indices, whose centres sit at
        # +0.5 in our continuous coordinates.
        to_source = translation(-0.5, -0.5) @ tf.linalg.inv(matrix) @ translation(0.5, 0.5)
        to_source = to_source / to_source[2, 2]

        def general():
            return _warp_projective(image, to_source, height, width, interpolation, fill_value)

        if interpolation != "nearest":
            return general()
        axis_aligned = tf.reduce_all(tf.stack([to_source[0, 1], to_source[1, 0],
                                               to_source[2, 0], to_source[2, 1]]) == 0.0)
        return tf.cond(axis_aligned,
                       lambda: _warp_nearest_axis_aligned(image, to_source, height, width,
                                                          fill_value),
                       general)


def _warp_projective(image, to_source, height, width, interpolation, fill_value) -> tf.Tensor:
    """The general warp: TF's kernel, one projection per output pixel and channel."""
    params = tf.reshape(to_source, [9])[:8][None, :]  # [1, 8]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None], transforms=params, output_shape=tf.stack([height, width]),
        fill_value=tf.constant(fill_value, tf.float32), interpolation=interpolation.upper(),
        fill_mode="CONSTANT")
    return warped[0]


def _round_half_away(x: tf.Tensor) -> tf.Tensor:
    """std::round (halves away from zero), as the kernel's nearest sampling rounds;
    ``tf.round`` rounds halves to even."""
    magnitude = tf.abs(x)
    whole = tf.floor(magnitude)
    return tf.sign(x) * (whole + tf.cast(magnitude - whole >= 0.5, x.dtype))


def _warp_nearest_axis_aligned(image, to_source, height, width, fill_value) -> tf.Tensor:
    """The nearest warp for ``to_source`` = scale and translation: output row r samples source
    row ``round(to_source[1, 1] * r + to_source[1, 2])`` and column c source column
    ``round(to_source[0, 0] * c + to_source[0, 2])``, so rows and columns are gathered apart.

    The image gets a one-pixel border of ``fill_value`` and every index is clamped into it:
    a sample outside the image reads the fill, as in the kernel's constant mode.
    """
    in_h, in_w = tf.shape(image)[0], tf.shape(image)[1]
    padded = tf.pad(image, [[1, 1], [1, 1], [0, 0]],
                    constant_values=tf.cast(fill_value, image.dtype))  # [H + 2, W + 2, C]
    # The kernel's float expressions: the other axis's term multiplies 0 and adds nothing.
    xs = to_source[0, 0] * tf.range(width, dtype=tf.float32) + to_source[0, 2]  # [width]
    ys = to_source[1, 1] * tf.range(height, dtype=tf.float32) + to_source[1, 2]  # [height]

    def index(coords, size):  # rounded source index -> padded index; -1 and size: the border
        rounded = _round_half_away(coords)
        return tf.cast(tf.clip_by_value(rounded, -1.0, tf.cast(size, tf.float32)), tf.int32) + 1

    rows = tf.gather(padded, index(ys, in_h), axis=0)  # [height, W + 2, C]
    return tf.gather(rows, index(xs, in_w), axis=1)
