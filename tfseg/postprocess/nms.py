"""Non-maximum suppression on ``NonMaxSuppressionV5``, padded to a fixed N (graph side).

V5 with ``pad_to_max_output_size=True`` is the NMS that converts to a TFLite builtin and
returns indices, so the kept rows of any per-anchor tensor (coefficients) can be gathered.
Class-aware NMS offsets every box by ``class * (S + 1)`` so boxes of different classes
never overlap; agnostic NMS does not.

Thresholds and the number of rows to fill may be given at run time as per-image tensors
(:func:`per_image_option`): NonMaxSuppressionV5 takes its thresholds as tensors, so the
TFLite graph keeps the builtin op and the output shapes stay N.
"""

from __future__ import annotations

import tensorflow as tf


def _gather_rows(tensors: tuple[tf.Tensor, ...], indices: tf.Tensor) -> tuple[tf.Tensor, ...]:
    return tuple(tf.gather(t, indices) for t in tensors)


def nms_one_image(boxes: tf.Tensor, scores: tf.Tensor, classes: tf.Tensor,
                  coefficients: tf.Tensor, *, image_size: int, max_detections: int,
                  iou_threshold: float | tf.Tensor, score_threshold: float | tf.Tensor,
                  agnostic: bool = False, pre_nms_topk: int = 0,
                  max_keep: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """NMS for one image, returning exactly N rows.

    Args:
        boxes: ``[A, 4]`` float32 xyxy input pixels, inside [0, S].
        scores: ``[A]`` float32 best-class score per anchor.
        classes: ``[A]`` float32 best-class index per anchor.
        coefficients: ``[A, K]`` float32 mask coefficients per anchor.
        image_size: S, used for the class offset.
        max_detections: N, rows of the output.
        iou_threshold: boxes overlapping a kept box by more than this are dropped (a float
            or a scalar float32 tensor in [0, 1]).
        score_threshold: anchors scoring below this are never kept (float or scalar tensor).
        agnostic: True to suppress across classes.
        pre_nms_topk: if > 0 (and < A), only the best ``pre_nms_topk`` anchors enter NMS.
        max_keep: None, or a scalar int32 tensor: at most this many of the N rows are filled
            (the best-scoring ones, as NMS with N = max_keep would keep); negative counts as 0.

    Returns:
        dict with boxes ``[N, 4]``, scores ``[N]``, classes ``[N]`` int32,
        coefficients ``[N, K]`` (all zero past the valid rows) and num_detections ``[]`` int32.
    """
    if pre_nms_topk and (boxes.shape[0] is None or pre_nms_topk < boxes.shape[0]):
        scores, top = tf.math.top_k(scores, k=pre_nms_topk, sorted=False)
        boxes, classes, coefficients = _gather_rows((boxes, classes, coefficients), top)
    offset_boxes = boxes
    if not agnostic:
        # A reshape, not classes[:, None]: that lowers to a STRIDED_SLICE of a rank-2 tensor.
        offset_boxes = boxes + tf.reshape(classes, [-1, 1]) * float(image_size + 1)  # [A, 4]
    keep, kept_scores, num_valid = tf.raw_ops.NonMaxSuppressionV5(
        boxes=offset_boxes, scores=scores, max_output_size=max_detections,
        iou_threshold=iou_threshold, score_threshold=score_threshold, soft_nms_sigma=0.0,
        pad_to_max_output_size=True)  # keep: [N] int32, padded with 0
    if max_keep is not None:  # NMS keeps in score order: the first max_keep rows are the same
        num_valid = tf.minimum(num_valid, tf.maximum(max_keep, 0))
    valid = tf.cast(tf.range(max_detections) < num_valid, tf.float32)  # [N]
    valid_rows = tf.reshape(valid, [-1, 1])  # [N, 1]; valid[:, None] is a rank-2 STRIDED_SLICE
    kept_boxes, kept_classes, kept_coefficients = _gather_rows(
        (boxes, classes, coefficients), keep)
    return {
        "boxes": kept_boxes * valid_rows,
        "scores": kept_scores * valid,
        "classes": tf.cast(kept_classes * valid, tf.int32),
        "coefficients": kept_coefficients * valid_rows,
        "num_detections": tf.cast(num_valid, tf.int32),
    }


def multi_label_candidates(boxes: tf.Tensor, probabilities: tf.Tensor, coefficients: tf.Tensor,
                           max_candidates: int) -> tuple[tf.Tensor, ...]:
    """Every (anchor, class) pair as a candidate of its own, the best ``max_candidates`` kept.

    Multi-label NMS (what COCO evaluation of the YOLO family uses): an anchor whose box fits
    two classes can be kept once for each, where the best-class path keeps it once. The
    candidates then go through class-aware NMS like best-class ones.

    Args:
        boxes: ``[B, A, 4]`` float32 xyxy; probabilities: ``[B, A, C]`` float32 class scores;
        coefficients: ``[B, A, K]`` float32. A and C must be static.
        max_candidates: k, at most ``A * C``.

    Returns:
        boxes ``[B, k, 4]``, scores ``[B, k]``, classes ``[B, k]`` float32 class index,
        coefficients ``[B, k, K]``: rows of the best-scoring pairs (in no particular order).
    """
    num_anchors, num_classes = int(probabilities.shape[1]), int(probabilities.shape[2])
    flat = tf.reshape(probabilities, [-1, num_anchors * num_classes])  # [B, A*C]
    scores, pairs = tf.math.top_k(flat, k=min(max_candidates, num_anchors * num_classes),
                                  sorted=False)  # [B, k]
    anchors = pairs // num_classes
    classes = tf.cast(pairs % num_classes, tf.float32)
    return (tf.gather(boxes, anchors, batch_dims=1), scores, classes,
            tf.gather(coefficients, anchors, batch_dims=1))


# Options of nms_one_image that may be per-image [B] tensors (run-time thresholds).
PER_IMAGE_OPTIONS = ("score_threshold", "iou_threshold", "max_keep")


def per_image_option(value, default: float | int, batch: int | tf.Tensor,
                     dtype: tf.DType = tf.float32) -> tf.Tensor:
    """A run-time NMS option as one value per image; negative entries take ``default``.

    Args:
        value: a scalar, ``[1]`` or ``[B]`` tensor (or number).
        default: the value a negative entry stands for (the export's own).
        batch: B, an int or a scalar int32 tensor.
        dtype: tf.float32 for thresholds, tf.int32 for a count.

    Returns:
        ``[B]`` tensor of ``dtype``.
    """
    value = tf.reshape(tf.cast(value, dtype), [-1])  # [1] or [B]
    if not (isinstance(batch, int) and value.shape[0] == batch):
        value = tf.broadcast_to(value, [batch])  # a scalar or [1] applies to every image
    return tf.where(value < 0, tf.constant(default, dtype), value)


def batched_nms(boxes: tf.Tensor, scores: tf.Tensor, classes: tf.Tensor,
                coefficients: tf.Tensor, **kwargs) -> dict[str, tf.Tensor]:
    """:func:`nms_one_image` over a batch.

    With a static batch size B the loop is unrolled: each image is split off with
    ``tf.split`` + ``tf.reshape`` (SPLIT / RESHAPE, which the GPU delegate runs; ``x[i]`` or
    ``tf.unstack`` would give shrink-axis STRIDED_SLICE / UNPACK) and the results are
    concatenated. ``tf.map_fn`` would lower to a TFLite WHILE loop, which the GPU delegate
    does not run and TF 2.21's int8 calibrator crashes on. Only a dynamic B (the SavedModel
    signature over encoded bytes) keeps ``tf.map_fn``.

    Args:
        boxes: ``[B, A, 4]`` float32 xyxy input pixels.
        scores: ``[B, A]`` float32.
        classes: ``[B, A]`` float32 class index.
        coefficients: ``[B, A, K]`` float32.
        **kwargs: the keyword arguments of :func:`nms_one_image`; those of
            ``PER_IMAGE_OPTIONS`` may be ``[B]`` tensors (see :func:`per_image_option`).

    Returns:
        dict with boxes ``[B, N, 4]``, scores ``[B, N]``, classes ``[B, N]`` int32,
        coefficients ``[B, N, K]`` and num_detections ``[B]`` int32.
    """
    inputs = (boxes, scores, classes, coefficients)
    per_image = {key: kwargs.pop(key) for key in PER_IMAGE_OPTIONS
                 if isinstance(kwargs.get(key), tf.Tensor)}
    with tf.name_scope("nms"):
        if boxes.shape[0] is None:
            return _nms_map_fn(inputs, per_image, kwargs)
        return _nms_unrolled(inputs, per_image, int(boxes.shape[0]), kwargs)


def _nms_unrolled(inputs: tuple[tf.Tensor, ...], per_image: dict[str, tf.Tensor], batch: int,
                  kwargs: dict) -> dict[str, tf.Tensor]:
    """One :func:`nms_one_image` per image of a static batch, concatenated on axis 0."""
    per_input = [tf.split(t, batch, axis=0) for t in inputs]  # each: B x [1, A, ...]
    # [B] -> B scalars: SQUEEZE each [1] piece (a RESHAPE to [] needs an empty shape
    # constant, which export/structure.py does not see as a constant).
    options = {key: [tf.squeeze(v, axis=0) for v in tf.split(value, batch)]
               for key, value in per_image.items()}
    results = []
    for i, image in enumerate(zip(*per_input)):
        # [1, A, ...] -> [A, ...]: a RESHAPE drops the batch axis (trailing dims are static).
        args = [tf.reshape(t, [-1, *t.shape[2:]]) for t in image]
        own = {key: values[i] for key, values in options.items()}
        results.append(nms_one_image(*args, **own, **kwargs))
    # Each [N, ...] -> [1, N, ...] (a RESHAPE, not EXPAND_DIMS), then [B, N, ...].
    return {key: tf.concat([tf.reshape(r[key], [1, *r[key].shape]) for r in results], axis=0)
            for key in results[0]}


def _nms_map_fn(inputs: tuple[tf.Tensor, ...], per_image: dict[str, tf.Tensor],
                kwargs: dict) -> dict[str, tf.Tensor]:
    """:func:`nms_one_image` over a dynamic batch with ``tf.map_fn``."""
    n = kwargs["max_detections"]
    k = inputs[3].shape[-1]
    signature = {
        "boxes": tf.TensorSpec([n, 4], tf.float32),
        "scores": tf.TensorSpec([n], tf.float32),
        "classes": tf.TensorSpec([n], tf.int32),
        "coefficients": tf.TensorSpec([n, k], tf.float32),
        "num_detections": tf.TensorSpec([], tf.int32),
    }
    return tf.map_fn(lambda args: nms_one_image(*args[0], **args[1], **kwargs),
                     (inputs, per_image), fn_output_signature=signature)
