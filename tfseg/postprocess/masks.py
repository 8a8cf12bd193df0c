"""Masks of the kept detections: sigmoid(coefficients x prototypes), cropped to the box.

Made at prototype resolution (S/4) by default: full-resolution masks are made on the host
for the kept detections alone (see :mod:`tfseg.postprocess.host`). The exports may instead
return box-aligned masks (``mask_size`` m > 0): each detection's cropped mask resampled
onto an m x m grid spanning its box, so an app only resizes m x m to the box's size.

Box-aligned grid convention (every export, the host paste and examples/tflite_app.py):
cell (i, j) of the m x m mask of box (x1, y1, x2, y2) is the mask's value at the point

    x = x1 + (j + 0.5) * (x2 - x1) / m,    y = y1 + (i + 0.5) * (y2 - y1) / m

sampled bilinearly from the prototype-resolution mask (prototype pixel q's centre at input
pixel 4 q + 2), the same samples the host paste takes at original-pixel centres. The
resampling is separable, so it is two batched matrix products with interpolation matrices
built from the box coordinates (``Wy @ mask @ Wx^T``): no GATHER, no crop_and_resize (a
Flex op in TFLite), only elementwise ops and BATCH_MATMUL.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE
from tfseg.ops.masks import combine_prototypes, crop_to_boxes

MASK_DTYPES = ("float32", "uint8")


def detection_masks(coefficients: tf.Tensor, prototypes: tf.Tensor, boxes: tf.Tensor,
                    proto_stride: int = PROTO_STRIDE) -> tf.Tensor:
    """Mask probabilities of the kept detections, zero outside their boxes.

    Args:
        coefficients: ``[B, N, K]`` float32 coefficients of the kept detections
            (rows past num_detections are zero).
        prototypes: ``[B, P, P, K]`` float32 prototypes, NHWC.
        boxes: ``[B, N, 4]`` float32 xyxy input pixels (zero rows past num_detections,
            which crop their masks to nothing).
        proto_stride: input pixels per prototype pixel.

    Returns:
        ``[B, N, P, P]`` float32 probabilities in [0, 1], zero outside the box.
    """
    with tf.name_scope("detection_masks"):
        probabilities = tf.sigmoid(combine_prototypes(coefficients, prototypes))  # [B, N, P, P]
        return crop_to_boxes(probabilities, boxes / float(proto_stride))


def interpolation_weights(starts: tf.Tensor, ends: tf.Tensor, grid_start, grid_end,
                          grid_size: int, size: int) -> tf.Tensor:
    """Bilinear weights taking ``size`` samples evenly over [starts, ends) from a grid.

    The grid has ``grid_size`` cells evenly covering [grid_start, grid_end) (cell g's
    centre at grid_start + (g + 0.5) * cell width). Sample k sits at the centre of the
    k-th of ``size`` equal cells of [starts, ends); a sample beyond the outermost grid
    centres takes the edge cell's value.

    Args:
        starts, ends: ``[..., 1]`` float32 sample range, in the grid's units.
        grid_start, grid_end: float or ``[..., 1]`` float32, the range the grid covers.
        grid_size: G, cells of the grid along this axis.
        size: m, samples.

    Returns:
        ``[..., m, G]`` float32; row k holds the (at most two) weights of sample k, summing to 1.
    """
    cells = (tf.range(size, dtype=tf.float32) + 0.5) * (1.0 / size)  # [m]
    points = starts + (ends - starts) * cells  # [..., m]
    coords = (points - grid_start) * (grid_size / (grid_end - grid_start)) - 0.5  # grid units
    coords = tf.clip_by_value(coords, 0.0, float(grid_size - 1))
    grid = tf.range(grid_size, dtype=tf.float32)  # [G]
    return tf.nn.relu(1.0 - tf.abs(coords[..., None] - grid))  # [..., m, G] tent weights


def resample_to_boxes(grids: tf.Tensor, grid_boxes: tf.Tensor, boxes: tf.Tensor,
                      size: int) -> tf.Tensor:
    """Resample each grid onto an m x m grid spanning its box (the convention above).

    Args:
        grids: ``[B, N, H, W]`` float32 values on grids covering ``grid_boxes``.
        grid_boxes: ``[B, N, 4]`` (or broadcastable, e.g. ``[4]``) xyxy region each grid covers.
        boxes: ``[B, N, 4]`` xyxy boxes to sample, same units as ``grid_boxes``.
        size: m.

    Returns:
        ``[B, N, m, m]`` float32.
    """
    height, width = int(grids.shape[-2]), int(grids.shape[-1])
    grid_boxes = tf.broadcast_to(tf.cast(grid_boxes, tf.float32), tf.shape(boxes))
    # split, not boxes[..., i]: see tfseg.ops.masks.crop_to_boxes
    x1, y1, x2, y2 = tf.split(tf.cast(boxes, tf.float32), 4, axis=-1)  # each [B, N, 1]
    gx1, gy1, gx2, gy2 = tf.split(grid_boxes, 4, axis=-1)  # each [B, N, 1]
    rows = interpolation_weights(y1, y2, gy1, gy2, height, size)  # [B, N, m, H]
    cols = interpolation_weights(x1, x2, gx1, gx2, width, size)  # [B, N, m, W]
    return tf.matmul(tf.matmul(rows, grids), cols, transpose_b=True)  # [B, N, m, m]


def box_aligned_masks(masks: tf.Tensor, boxes: tf.Tensor, size: int,
                      proto_stride: int = PROTO_STRIDE) -> tf.Tensor:
    """Prototype-resolution masks -> m x m masks spanning their boxes.

    Args:
        masks: ``[B, N, P, P]`` float32 probabilities zero outside the box
            (:func:`detection_masks`).
        boxes: ``[B, N, 4]`` float32 xyxy input pixels (zero rows give zero masks).
        size: m.
        proto_stride: input pixels per prototype pixel.

    Returns:
        ``[B, N, m, m]`` float32 probabilities; cell (i, j) as in the module docstring.
    """
    with tf.name_scope("box_aligned_masks"):
        extent = float(int(masks.shape[-1]) * proto_stride)  # S: the prototypes cover the input
        return resample_to_boxes(masks, tf.constant([0.0, 0.0, extent, extent]), boxes, size)


def encode_masks(masks: tf.Tensor, dtype: str) -> tf.Tensor:
    """Probabilities -> the exported mask dtype.

    Args:
        masks: float32 probabilities in [0, 1].
        dtype: ``"float32"`` (unchanged) or ``"uint8"`` (round(255 p): 128 and above is
            the 0.5 threshold; 0 and 255 where the mask is certain).

    Returns:
        The masks in ``dtype``.
    """
    if dtype == "float32":
        return masks
    if dtype != "uint8":
        raise ValueError(f"mask dtype {dtype!r}: expected one of {MASK_DTYPES}")
    return tf.cast(tf.floor(tf.clip_by_value(masks, 0.0, 1.0) * 255.0 + 0.5), tf.uint8)


def decode_masks(masks: tf.Tensor) -> tf.Tensor:
    """The inverse of :func:`encode_masks`: float32 probabilities from either dtype."""
    if masks.dtype == tf.uint8:
        return tf.cast(masks, tf.float32) * (1.0 / 255.0)
    return tf.cast(masks, tf.float32)
