"""Masks of the kept detections: sigmoid(coefficients x prototypes), cropped to the box.

Made at prototype resolution (S/4) only: full-resolution masks are made on the host for
the kept detections alone (see :mod:`tfseg.postprocess.host`).
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE
from tfseg.ops.masks import combine_prototypes, crop_to_boxes


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
