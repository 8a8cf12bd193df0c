"""Mask term: per-instance BCE of (coefficients x prototypes) against the assigned GT mask.

For each positive anchor, the mask logits are its coefficients combined with the image's
prototypes ([P, P], 1/4 of the input). The pixelwise BCE against the assigned GT's mask is
summed inside the GT box (in prototype pixels) and divided by the box area, so small and
large instances weigh alike; the result is averaged over the positive anchors of the batch.

Static shapes: per image, the ``max_anchors`` anchors of highest priority (positives first,
best-aligned first) are gathered and the non-positives among them masked out. When an image
has more positives than ``max_anchors``, only its best-aligned ``max_anchors`` enter the
average (exact otherwise); 0 (the default) covers them all, as the reference does. Below the
cap, K is the smallest of a few static sizes that holds the busiest image's positives (most
batches need far fewer than the cap), or that count itself where shapes may be set at run
time (tfseg/loss/buckets.py). The BCE over the
K masks, most of this term's cost, runs one image at a time (forward and its own gradient),
so memory holds K * P * P floats of one image, not the batch's B * K * P * P.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE
from tfseg.loss.buckets import power_of_two_buckets, switch_on_size
from tfseg.ops.boxes import area
from tfseg.ops.masks import box_inside, combine_prototypes

# Boxes thinner than a prototype pixel would divide a one-pixel loss by a tiny area.
_MIN_AREA = 1.0
# The bound of the positives' count where neither a cap nor the anchor count gives one: run
# time sizes it (the count never exceeds the anchors).
_NO_CAP = 2 ** 31 - 1


def mask_loss(coefficients: tf.Tensor, prototypes: tf.Tensor, gt_masks: tf.Tensor,
              gt_boxes: tf.Tensor, gt_index: tf.Tensor, foreground: tf.Tensor,
              priority: tf.Tensor, max_anchors: int = 0,
              proto_stride: float | tf.Tensor = PROTO_STRIDE,
              static_shapes: bool = True) -> tf.Tensor:
    """Mean over positive anchors of the box-normalized mask BCE.

    Args:
        coefficients: ``[B, A, K]`` float32 mask coefficients per anchor.
        prototypes: ``[B, P, P, K]`` float32 prototypes, NHWC.
        gt_masks: ``[B, M, P, P]`` uint8 0/1 GT masks at prototype resolution.
        gt_boxes: ``[B, M, 4]`` float32 GT boxes, xyxy input pixels.
        gt_index: ``[B, A]`` int32 assigned GT per anchor (from the assigner).
        foreground: ``[B, A]`` bool positive anchors.
        priority: ``[B, A]`` float32 >= 0 (the target-score sum); decides which positives are
            kept when an image has more than ``max_anchors``.
        max_anchors: anchors per image whose masks are made; 0: every positive (at most A).
        proto_stride: input pixels per prototype pixel (a scalar tensor where the batch's
            input size is drawn at run time: multi-scale training).
        static_shapes: K from a few static sizes (XLA), else the positives' count
            (tfseg.loss.buckets.switch_on_size).

    Returns:
        Scalar float32; zero when there is no positive anchor.
    """
    num_anchors = coefficients.shape[1]
    if num_anchors is not None:
        k = num_anchors if max_anchors <= 0 else min(max_anchors, num_anchors)
    elif max_anchors > 0 or not static_shapes:  # an anchor count known at run time only
        k = max_anchors if max_anchors > 0 else _NO_CAP  # (multi-scale training)
    else:
        raise ValueError("mask_loss with static shapes needs max_anchors > 0 when the anchor "
                         "count is not static")
    fg = tf.cast(foreground, tf.float32)  # [B, A]
    # Only as many anchors as the busiest image has positives need masks (or the cap). Each
    # image's positives are all kept whenever they fit in the cap, so the result is the same
    # for every size at least that count.
    needed = tf.reduce_max(tf.reduce_sum(fg, axis=1))  # scalar: most positives in an image
    return switch_on_size(
        power_of_two_buckets(k) if static_shapes else [k], needed,
        lambda size: _mask_loss_top(coefficients, prototypes, gt_masks, gt_boxes, gt_index, fg,
                                    priority, _at_most_anchors(size, coefficients), proto_stride),
        static_shapes)


def _at_most_anchors(size, coefficients: tf.Tensor):
    """``size``, or the anchors there are where the count is a run-time one and may be fewer
    (a small size drawn by multi-scale training)."""
    if coefficients.shape[1] is not None:
        return size
    return tf.minimum(size, tf.shape(coefficients)[1])


def _mask_loss_top(coefficients, prototypes, gt_masks, gt_boxes, gt_index, fg, priority, k,
                   proto_stride):
    """``mask_loss`` over the ``k`` anchors of highest priority per image (k: an int, or a
    scalar int32 tensor)."""
    # Positives rank above every background anchor (1 + priority > 0).
    _, chosen = tf.math.top_k(fg * (1.0 + priority), k=k)  # [B, K]
    used = tf.gather(fg, chosen, batch_dims=1)  # [B, K]
    chosen_gt = tf.gather(gt_index, chosen, batch_dims=1)  # [B, K]

    targets = tf.gather(gt_masks, chosen_gt, batch_dims=1)  # [B, K, P, P] uint8
    boxes = tf.gather(gt_boxes, chosen_gt, batch_dims=1) / tf.cast(proto_stride,
                                                                    tf.float32)  # [B, K, 4]

    per_anchor = box_normalized_bce(tf.gather(coefficients, chosen, batch_dims=1), prototypes,
                                    targets, boxes)  # [B, K]
    return tf.reduce_sum(per_anchor * used) / tf.maximum(tf.reduce_sum(used), 1.0)


def box_normalized_bce(coefficients: tf.Tensor, prototypes: tf.Tensor, targets: tf.Tensor,
                       boxes: tf.Tensor) -> tf.Tensor:
    """Per instance: the BCE of its mask logits summed inside its box, over the box area.

    The mask logits are ``coefficients x prototypes`` (tfseg.ops.masks.combine_prototypes).
    Computed with its own gradient, one image at a time: autodiff would keep several
    ``[B, K, P, Q]`` float tensors (logits, targets, the BCE, the cropped BCE) alive from the
    forward pass to the backward pass, which at COCO density (K up to 256 at P = 160) is
    gigabytes held while the network's own activations are; here only the inputs are kept,
    and the backward pass makes one image's logits again (one einsum) and frees them at once.

    Args:
        coefficients: ``[B, K, C]`` float32 mask coefficients per instance.
        prototypes: ``[B, P, Q, C]`` float32 prototypes, NHWC.
        targets: ``[B, K, P, Q]`` 0/1 masks (any dtype; not differentiated).
        boxes: ``[B, K, 4]`` float32 xyxy in prototype pixels (not differentiated).

    Returns:
        ``[B, K]`` float32: the mean BCE over the box's pixels.
    """
    height, width = prototypes.shape[1], prototypes.shape[2]
    inside_y, inside_x = box_inside(boxes, height, width)  # [B, K, P], [B, K, Q]
    # 1 / area goes on the rows: the sum over the box divided by its area in one weight.
    rows = inside_y / tf.maximum(area(boxes), _MIN_AREA)[..., None]  # [B, K, P]
    return _inside_bce(coefficients, prototypes, targets, rows, inside_x)


@tf.custom_gradient
def _inside_bce(coefficients, prototypes, targets, rows, cols):
    """sum_pq rows[p] cols[q] BCE(logits[p, q], targets[p, q]) per instance, and its gradient
    with respect to the coefficients and prototypes (the weights and targets are constants).

    One image at a time, forward and backward: the ``[K, P, Q]`` float tensors of one image
    exist at once, not the batch's ``[B, K, P, Q]`` (at 640 px, K = 256 and B = 16, each of
    those is 420 MB, and the backward pass needs several).
    """
    # Tensors of this graph: an input may live in an enclosing tf.cond/switch_case branch
    # (the loss's buckets), and a gradient that referred to it there could not be built.
    coefficients, prototypes, targets, rows, cols = (
        tf.identity(t) for t in (coefficients, prototypes, targets, rows, cols))

    def image_loss(inputs):
        coefficient, prototype, target, row, col = inputs  # [K, C], [P, Q, C], [K, P, Q], ...
        logits = combine_prototypes(coefficient[None], prototype[None])[0]  # [K, P, Q]
        # sigmoid_cross_entropy_with_logits as softplus(x) - x z: two ops over [K, P, Q].
        # The targets stay in their own (small) dtype until used.
        bce = tf.nn.softplus(logits) - logits * tf.cast(target, logits.dtype)
        return tf.reduce_sum(tf.linalg.matvec(bce, col) * row, axis=-1)  # [K]

    per_instance = tf.map_fn(image_loss, (coefficients, prototypes, targets, rows, cols),
                             fn_output_signature=coefficients.dtype, parallel_iterations=1)

    def gradient(upstream):  # upstream: [B, K]
        def image_gradient(inputs):
            weight, coefficient, prototype, target, row, col = inputs
            logits = combine_prototypes(coefficient[None], prototype[None])[0]  # again, not kept
            # d BCE / d logit = sigmoid(x) - z, weighted by the box's pixels and 1 / area.
            d_logits = ((tf.sigmoid(logits) - tf.cast(target, logits.dtype))
                        * (weight[:, None] * row)[:, :, None] * col[:, None, :])  # [K, P, Q]
            return (tf.einsum("kpq,pqc->kc", d_logits, prototype),
                    tf.einsum("kpq,kc->pqc", d_logits, coefficient))

        d_coefficients, d_prototypes = tf.map_fn(
            image_gradient, (upstream, coefficients, prototypes, targets, rows, cols),
            fn_output_signature=(coefficients.dtype, prototypes.dtype), parallel_iterations=1)
        return d_coefficients, d_prototypes, None, None, None

    return per_instance, gradient


def semantic_loss(semantic_logits: tf.Tensor, gt_masks: tf.Tensor,
                  gt_classes: tf.Tensor) -> tf.Tensor:
    """YOLO26's auxiliary semantic term: half BCE, half Dice, of per-class logits at stride 8
    against the class map of the GT masks.

    The target of a pixel is the one-hot class of the smallest GT mask covering it (by mask
    area), and all zeros where no mask does; the GT masks (stride 4) are taken at every
    second pixel, the nearest-neighbour halving. BCE is the mean over every pixel and class;
    Dice (smoothing 1) is computed per image and class, and averaged. Zero for a batch
    without instances, as the reference skips it then.

    Args:
        semantic_logits: ``[B, H, W, C]`` float32, H = W = P / 2.
        gt_masks: ``[B, M, P, P]`` uint8 0/1 GT masks.
        gt_classes: ``[B, M]`` int32, -1 for padding.

    Returns:
        Scalar float32.
    """
    num_classes = semantic_logits.shape[-1]
    full = tf.cast(gt_masks, tf.float32) * tf.cast(gt_classes >= 0, tf.float32)[:, :, None, None]
    covers = full[:, :, ::2, ::2] > 0.0  # [B, M, H, W]
    areas = tf.reduce_sum(full, axis=[2, 3])  # [B, M]
    ranked = tf.where(covers, areas[:, :, None, None], tf.float32.max)  # [B, M, H, W]
    smallest = tf.argmin(ranked, axis=1, output_type=tf.int32)  # [B, H, W]
    classes = tf.gather(tf.maximum(gt_classes, 0), smallest, batch_dims=1)  # [B, H, W]
    covered = tf.cast(tf.reduce_any(covers, axis=1), tf.float32)  # [B, H, W]
    target = tf.one_hot(classes, num_classes) * covered[..., None]  # [B, H, W, C]

    bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=target,
                                                                 logits=semantic_logits))
    probabilities = tf.sigmoid(semantic_logits)
    overlap = tf.reduce_sum(probabilities * target, axis=[1, 2])  # [B, C]
    total = tf.reduce_sum(probabilities, axis=[1, 2]) + tf.reduce_sum(target, axis=[1, 2])
    dice = 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)  # [B, C]
    any_instance = tf.cast(tf.reduce_any(gt_classes >= 0), tf.float32)
    return (0.5 * bce + 0.5 * tf.reduce_mean(dice)) * any_instance
