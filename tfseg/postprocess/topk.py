"""End-to-end post-processing of a one-to-one head (YOLO26): decode, top-k, masks; no NMS.

The one-to-one head is trained to give one box per object, so its detections are simply
the best (anchor, class) pairs. As the published end-to-end head selects them: the
``k = min(N, A)`` anchors with the best top class first, then the k best (anchor, class)
pairs among those anchors' class scores (an anchor may appear once per class). Scores come
out sorted, so the pairs at or above the score threshold are the first ``num_detections``
rows; the rest are zeroed, and the outputs are padded to N when A < N.

Graph side, TF ops only, for every export: TOPK_V2 (int32 indices), FLOOR_DIV / FLOOR_MOD
on int32, and GATHER of rows of a 2-D tensor along axis 0 (per-image rows are addressed by
offsetting the indices by ``image * A``, so there is no GATHER_ND and no batch_dims gather).
Nothing here produces int64.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import O2O_PREFIX, PROTO_STRIDE
from tfseg.postprocess.decode import decode_boxes
from tfseg.postprocess.masks import detection_masks


def _gather_flat(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """``[B, R, D]`` rows at ``[B, k]`` int32 indices, as ``[B * k, D]`` (one plain GATHER)."""
    rows, depth = int(values.shape[1]), int(values.shape[2])
    batch = values.shape[0] if values.shape[0] is not None else tf.shape(values)[0]
    offsets = tf.reshape(tf.range(batch, dtype=tf.int32) * rows, [-1, 1])  # [B, 1]
    flat = tf.reshape(values, [-1, depth])  # [B * R, D]
    return tf.gather(flat, tf.reshape(index + offsets, [-1]))  # [B * k, D]


def gather_rows(values: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Per-image rows of ``values`` at ``index``, with one plain GATHER.

    Args:
        values: ``[B, R, D]`` (R and D static).
        index: ``[B, k]`` int32 row indices into each image's R rows (k static).

    Returns:
        ``[B, k, D]``: ``values[b, index[b, j]]``.
    """
    k, depth = int(index.shape[1]), int(values.shape[2])
    return tf.reshape(_gather_flat(values, index), [-1, k, depth])  # [B, k, D]


def topk_pairs(probabilities: tf.Tensor, k: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """The k best (anchor, class) pairs among the k anchors with the best top class.

    Args:
        probabilities: ``[B, A, C]`` float32 class scores (A and C static).
        k: pairs per image, at most A.

    Returns:
        scores ``[B, k]`` float32 in descending order, anchors ``[B, k]`` int32,
        classes ``[B, k]`` int32.
    """
    num_classes = int(probabilities.shape[2])
    _, anchors = tf.math.top_k(tf.reduce_max(probabilities, axis=-1), k=k)  # [B, k] int32
    # one RESHAPE from the gathered rows: two merged reshapes get a fused tensor name that
    # the int8 quantizer's denylist misses, and TOPK_V2 would then run on int8 scores
    candidates = _gather_flat(probabilities, anchors)  # [B * k, C]
    flat = tf.reshape(candidates, [-1, k * num_classes])  # [B, k * C]
    _, pairs = tf.math.top_k(flat, k=k)  # [B, k], descending scores
    # The scores are read back from the float candidates by index, not taken from TOPK_V2's
    # values: with its values unused, the int8 quantizer leaves TOPK_V2 (and so the scores)
    # float, as it does the first TOPK_V2, whose values are unused too.
    flat_rows = tf.reshape(flat, [-1, k * num_classes, 1])  # [B, k * C, 1]
    scores = tf.reshape(_gather_flat(flat_rows, pairs), [-1, k])  # [B, k]
    rank = tf.math.floordiv(pairs, num_classes)  # [B, k] which of the k anchors
    classes = tf.math.floormod(pairs, num_classes)  # [B, k]
    anchor_rows = tf.reshape(tf.cast(anchors, tf.float32), [-1, k, 1])  # [B, k, 1]
    # float: the anchor index is exact in float32 (A < 2^24), and a float GATHER keeps one
    # gather kind in the graph
    chosen = tf.reshape(gather_rows(anchor_rows, rank), [-1, k])  # [B, k]
    return scores, tf.cast(chosen, tf.int32), classes


def _pad_rows(tensor: tf.Tensor, rows: int) -> tf.Tensor:
    """Zero rows appended on axis 1 up to ``rows`` (no-op when already there)."""
    missing = rows - int(tensor.shape[1])
    if missing <= 0:
        return tensor
    paddings = [[0, 0], [0, missing]] + [[0, 0]] * (len(tensor.shape) - 2)
    return tf.pad(tensor, paddings)


def end_to_end_detections(raw_outputs: dict, score_threshold, max_detections: int,
                          max_keep: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """The one-to-one head's outputs -> the DETECTIONS contract, without NMS.

    Args:
        raw_outputs: dict with the one-to-one keys (``o2o_box_logits`` ``[B, A, 4 * reg_max]``,
            ``o2o_class_logits`` ``[B, A, C]``, ``o2o_mask_coefficients`` ``[B, A, K]``) and
            ``prototypes`` ``[B, P, P, K]`` (P static).
        score_threshold: pairs scoring below it are not detections: a float, or ``[B]``
            float32, one per image (run-time thresholds).
        max_detections: N.
        max_keep: None, or ``[B]`` int32: at most this many rows are filled per image.

    Returns:
        boxes ``[B, N, 4]`` xyxy input pixels, scores ``[B, N]``, classes ``[B, N]`` int32,
        masks ``[B, N, P, P]``, num_detections ``[B]`` int32; rows past num_detections zero.
    """
    with tf.name_scope("topk"):
        prototypes = tf.convert_to_tensor(raw_outputs["prototypes"], tf.float32)
        image_size = int(prototypes.shape[1]) * PROTO_STRIDE
        box_logits = tf.convert_to_tensor(raw_outputs[O2O_PREFIX + "box_logits"], tf.float32)
        reg_max = int(box_logits.shape[-1]) // 4
        boxes = decode_boxes(box_logits, image_size, reg_max)  # [B, A, 4]
        probabilities = tf.sigmoid(tf.convert_to_tensor(
            raw_outputs[O2O_PREFIX + "class_logits"], tf.float32))  # [B, A, C]
        coefficients = tf.convert_to_tensor(
            raw_outputs[O2O_PREFIX + "mask_coefficients"], tf.float32)  # [B, A, K]
        k = min(int(max_detections), int(probabilities.shape[1]))
        scores, anchors, classes = topk_pairs(probabilities, k)  # [B, k] each
        if isinstance(score_threshold, (int, float)):
            passed = scores >= score_threshold  # [B, k], a prefix (sorted)
        else:
            passed = scores >= tf.reshape(tf.cast(score_threshold, tf.float32), [-1, 1])
        if max_keep is not None:  # still a prefix
            passed &= tf.range(k)[None, :] < tf.reshape(max_keep, [-1, 1])
        valid = tf.cast(passed, tf.float32)  # [B, k]
        rows = tf.reshape(valid, [-1, k, 1])  # [B, k, 1]
        kept_boxes = _pad_rows(gather_rows(boxes, anchors) * rows, max_detections)
        kept_coefficients = _pad_rows(gather_rows(coefficients, anchors) * rows, max_detections)
        return {
            "boxes": kept_boxes,
            "scores": _pad_rows(scores * valid, max_detections),
            "classes": _pad_rows(classes * tf.cast(valid, tf.int32), max_detections),
            "masks": detection_masks(kept_coefficients, prototypes, kept_boxes),
            "num_detections": tf.cast(tf.reduce_sum(valid, axis=1), tf.int32),
        }
