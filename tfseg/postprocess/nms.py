"""Non-maximum suppression on ``NonMaxSuppressionV5``, padded to a fixed N (graph side).

V5 with ``pad_to_max_output_size=True`` is the NMS that converts to a TFLite builtin and
returns indices, so the kept rows of any per-anchor tensor (coefficients) can be gathered.
Class-aware NMS offsets every box by ``class * (S + 1)`` so boxes of different classes
never overlap; agnostic NMS does not.
"""

from __future__ import annotations

import tensorflow as tf


def _gather_rows(tensors: tuple[tf.Tensor, ...], indices: tf.Tensor) -> tuple[tf.Tensor, ...]:
    return tuple(tf.gather(t, indices) for t in tensors)


def nms_one_image(boxes: tf.Tensor, scores: tf.Tensor, classes: tf.Tensor,
                  coefficients: tf.Tensor, *, image_size: int, max_detections: int,
                  iou_threshold: float, score_threshold: float, agnostic: bool = False,
                  pre_nms_topk: int = 0) -> dict[str, tf.Tensor]:
    """NMS for one image, returning exactly N rows.

    Args:
        boxes: ``[A, 4]`` float32 xyxy input pixels, inside [0, S].
        scores: ``[A]`` float32 best-class score per anchor.
        classes: ``[A]`` float32 best-class index per anchor.
        coefficients: ``[A, K]`` float32 mask coefficients per anchor.
        image_size: S, used for the class offset.
        max_detections: N, rows of the output.
        iou_threshold: boxes overlapping a kept box by more than this are dropped.
        score_threshold: anchors scoring below this are never kept.
        agnostic: True to suppress across classes.
        pre_nms_topk: if > 0 (and < A), only the best ``pre_nms_topk`` anchors enter NMS.

    Returns:
        dict with boxes ``[N, 4]``, scores ``[N]``, classes ``[N]`` int32,
        coefficients ``[N, K]`` (all zero past the valid rows) and num_detections ``[]`` int32.
    """
    if pre_nms_topk and (boxes.shape[0] is None or pre_nms_topk < boxes.shape[0]):
        scores, top = tf.math.top_k(scores, k=pre_nms_topk, sorted=False)
        boxes, classes, coefficients = _gather_rows((boxes, classes, coefficients), top)
    offset_boxes = boxes
    if not agnostic:
        offset_boxes = boxes + classes[:, None] * float(image_size + 1)  # [A, 4]
    keep, kept_scores, num_valid = tf.raw_ops.NonMaxSuppressionV5(
        boxes=offset_boxes, scores=scores, max_output_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=score_threshold, soft_nms_sigma=0.0,
        pad_to_max_output_size=True)  # keep: [N] int32, padded with 0
    valid = tf.cast(tf.range(max_detections) < num_valid, tf.float32)  # [N]
    kept_boxes, kept_classes, kept_coefficients = _gather_rows(
        (boxes, classes, coefficients), keep)
    return {
        "boxes": kept_boxes * valid[:, None],
        "scores": kept_scores * valid,
        "classes": tf.cast(kept_classes * valid, tf.int32),
        "coefficients": kept_coefficients * valid[:, None],
        "num_detections": tf.cast(num_valid, tf.int32),
    }


def batched_nms(boxes: tf.Tensor, scores: tf.Tensor, classes: tf.Tensor,
                coefficients: tf.Tensor, **kwargs) -> dict[str, tf.Tensor]:
    """:func:`nms_one_image` over a batch (``tf.map_fn``, so B may be dynamic).

    Args:
        boxes: ``[B, A, 4]`` float32 xyxy input pixels.
        scores: ``[B, A]`` float32.
        classes: ``[B, A]`` float32 class index.
        coefficients: ``[B, A, K]`` float32.
        **kwargs: the keyword arguments of :func:`nms_one_image`.

    Returns:
        dict with boxes ``[B, N, 4]``, scores ``[B, N]``, classes ``[B, N]`` int32,
        coefficients ``[B, N, K]`` and num_detections ``[B]`` int32.
    """
    n = kwargs["max_detections"]
    k = coefficients.shape[-1]
    signature = {
        "boxes": tf.TensorSpec([n, 4], tf.float32),
        "scores": tf.TensorSpec([n], tf.float32),
        "classes": tf.TensorSpec([n], tf.int32),
        "coefficients": tf.TensorSpec([n, k], tf.float32),
        "num_detections": tf.TensorSpec([], tf.int32),
    }
    with tf.name_scope("nms"):
        return tf.map_fn(lambda args: nms_one_image(*args, **kwargs),
                         (boxes, scores, classes, coefficients), fn_output_signature=signature)
