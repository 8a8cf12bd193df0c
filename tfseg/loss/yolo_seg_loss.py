"""The YOLO-seg training loss: task-aligned assignment, then box, DFL, class and mask terms.

Input contracts (tfseg/contracts.py): ``y_true`` is TRAIN_TARGETS (boxes, classes, masks),
``y_pred`` is RAW_OUTPUTS (box_logits, class_logits, mask_coefficients, prototypes).

YOLO26 (``reg_max`` 1, no bins) trains its distances with an L1 term in place of DFL (the
``l1`` term, under the DFL gain as the reference does), and adds the ``sem`` term on its
semantic logits when ``semantic`` is set. One instance of this class scores one head: the
one-to-one head of YOLO26 is read through ``head_prefix`` "o2o_" (tfseg/loss/end_to_end_loss.py
combines the two).

Scale: like the YOLOv8 reference, the returned total is the sum of the gained terms times the
batch size (the reference recipe's learning rates and weight decay are tuned for that scale);
the per-term values for the logs are the gained terms without that factor.

Cost follows the instances in use, not M: targets arrive padded to a fixed M (100 for COCO) and
the assigner works on ``[B, M, A]``, but a batch rarely holds more than a few dozen instances
per image. The loss runs on the targets cut to the instances the batch's busiest image uses:
to that count itself, or under XLA (``static_shapes``) to the smallest of a few static sizes
(16, 32, 64, ..., M) that holds it; the instances left out are padding (class -1),
which never becomes a candidate, so the values equal the fully padded computation's
(tests/loss/test_yolo_seg_loss.py compares them).

Plain ``tf`` (not ``keras.ops``) throughout, because every step composes ``tfseg.ops``
functions, which are TF; the class works from ``keras.Model.compute_loss`` on the TF backend.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE, REG_MAX
from tfseg.loss.assigner import assign
from tfseg.loss.box_loss import ciou_loss, distribution_focal_loss, l1_distance_loss
from tfseg.loss.buckets import power_of_two_buckets, switch_on_size
from tfseg.loss.mask_loss import mask_loss, semantic_loss
from tfseg.ops.anchors import anchor_points
from tfseg.ops.boxes import boxes_to_distances, distances_to_boxes
from tfseg.ops.dfl import dfl_expectation

HEAD_KEYS = ("box_logits", "class_logits", "mask_coefficients")  # a head's own raw outputs


class YoloSegLoss:
    """Total loss and per-term values from training targets and raw model outputs.

    Args:
        image_size: square input size S in pixels.
        num_classes: C.
        reg_max: DFL bins per box side; 1: plain distances, trained with L1 instead of DFL.
        box_gain: weight of the CIoU term (reference 7.5).
        cls_gain: weight of the class BCE term (reference 0.5).
        dfl_gain: weight of the DFL term, or of the L1 term with ``reg_max`` 1 (reference 1.5).
        seg_gain: weight of the mask term; None uses ``box_gain``, as the reference does.
        topk: positives per GT in the assigner (reference 10).
        alpha: class-score exponent of the alignment metric (reference 0.5).
        beta: IoU exponent of the alignment metric (reference 6.0).
        max_mask_anchors: positives per image whose masks are made; 0: all of them, as the
            reference does (a memory bound otherwise; see tfseg/loss/mask_loss.py).
        topk2: one-to-one assignment: positives kept per GT after conflicts (see assign).
        head_prefix: which head's outputs to score: "" (one-to-many) or "o2o_".
        detach_prototypes: no gradient through the prototypes and semantic logits (the
            one-to-one head's loss, as the reference detaches them there).
        semantic: add the ``sem`` term on ``semantic_logits`` (YOLO26), under the box gain.
        static_shapes: size the work on instances and mask positives from a few static sizes
            (True; what XLA and TPUs need), or by the run-time counts themselves (False; one
            copy of the loss to trace, see tfseg/loss/buckets.py); the assigner measures
            overlaps on all (GT, anchor) pairs (True) or on the candidate pairs only (False).
            Same values either way.

    Example:
        loss_fn = YoloSegLoss(image_size=320, num_classes=80)
        total, terms = loss_fn(targets, raw_outputs)  # terms: box, seg, cls, dfl
    """

    def __init__(self, image_size: int, num_classes: int, reg_max: int = REG_MAX,
                 box_gain: float = 7.5, cls_gain: float = 0.5, dfl_gain: float = 1.5,
                 seg_gain: float | None = None, topk: int = 10, alpha: float = 0.5,
                 beta: float = 6.0, max_mask_anchors: int = 0, topk2: int | None = None,
                 head_prefix: str = "", detach_prototypes: bool = False, semantic: bool = False,
                 static_shapes: bool = True):
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.reg_max = int(reg_max)
        self.gains = {"box": float(box_gain), "cls": float(cls_gain), "dfl": float(dfl_gain),
                      "seg": float(box_gain if seg_gain is None else seg_gain)}
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)
        self.max_mask_anchors = int(max_mask_anchors)
        self.topk2 = None if topk2 is None else int(topk2)
        self.head_prefix, self.detach_prototypes = str(head_prefix), bool(detach_prototypes)
        self.semantic = bool(semantic)
        self.static_shapes = bool(static_shapes)
        self.gains["l1"] = self.gains["dfl"]
        self.gains["sem"] = self.gains["box"]

    @property
    def term_names(self) -> tuple[str, ...]:
        """The keys of the terms dict, in the order the logs list them."""
        distance = "dfl" if self.reg_max > 1 else "l1"
        return ("box", "seg", "cls", distance) + (("sem",) if self.semantic else ())

    def __call__(self, y_true: dict, y_pred: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Compute the loss.

        Args:
            y_true: TRAIN_TARGETS: boxes ``[B, M, 4]`` float32 xyxy input pixels, classes
                ``[B, M]`` int32 (-1 padding), masks ``[B, M, P, P]`` uint8.
            y_pred: RAW_OUTPUTS: box_logits ``[B, A, 4 * reg_max]``, class_logits ``[B, A, C]``,
                mask_coefficients ``[B, A, 32]``, prototypes ``[B, P, P, 32]``.

        Returns:
            total: scalar float32, sum of gained terms times B.
            terms: dict of ``term_names`` (box, seg, cls, dfl or l1, and sem) of scalar
                float32, each already multiplied by its gain.
        """
        with tf.name_scope("yolo_seg_loss"):
            return on_instances_in_use(self.loss_on, y_true, y_pred, self.static_shapes)

    def loss_on(self, y_true: dict, raw: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The loss on targets of any instance count (float32 raw outputs; ``__call__``
        cuts the targets to the instances in use first)."""
        gt_boxes = tf.cast(y_true["boxes"], tf.float32)  # [B, m, 4]
        gt_classes = tf.cast(y_true["classes"], tf.int32)  # [B, m]
        size = input_size(raw["prototypes"])
        points, strides = anchor_points(size)  # [A, 2], [A, 1]
        raw = {**raw, **{key: raw[self.head_prefix + key] for key in HEAD_KEYS}}
        if self.detach_prototypes:
            raw.update({key: tf.stop_gradient(raw[key]) for key in ("prototypes", "semantic_logits")
                        if key in raw})

        distances = dfl_expectation(raw["box_logits"], self.reg_max) * strides  # [B, A, 4] px
        pred_boxes = distances_to_boxes(points, distances)  # [B, A, 4] pixels
        target = assign(tf.sigmoid(raw["class_logits"]), pred_boxes, points, gt_boxes,
                        gt_classes, self.topk, self.alpha, self.beta, topk2=self.topk2,
                        sparse=not self.static_shapes)  # tf.where's run-time size: not XLA

        score_sum = tf.maximum(tf.reduce_sum(target.scores), 1.0)  # the reference's clamp
        fg = tf.cast(target.foreground, tf.float32)  # [B, A]
        weights = tf.reduce_sum(target.scores, axis=-1) * fg  # [B, A]
        # Background anchors carry weight 0; give them their own (detached) box as target so
        # that nothing undefined enters the gradient through the zero weight.
        target_boxes = tf.where(target.foreground[..., None], target.boxes,
                                tf.stop_gradient(pred_boxes))  # [B, A, 4]

        grid = _side(y_true["masks"])  # the GT masks' grid: S / 4 of the model's own S
        prototypes, mask_stride = on_mask_grid(raw["prototypes"], grid, size)
        terms = {
            "box": ciou_loss(pred_boxes, target_boxes, weights, score_sum),
            "seg": mask_loss(raw["mask_coefficients"], prototypes, y_true["masks"],
                             gt_boxes, target.gt_index, target.foreground, weights,
                             self._mask_anchor_cap(gt_classes.shape[1]), mask_stride,
                             self.static_shapes),
            "cls": tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=target.scores, logits=raw["class_logits"])) / score_sum,
        }
        target_distances = boxes_to_distances(points, target_boxes)  # [B, A, 4] pixels
        if self.reg_max > 1:
            terms["dfl"] = distribution_focal_loss(raw["box_logits"], target_distances / strides,
                                                   weights, score_sum, self.reg_max)
        else:
            terms["l1"] = l1_distance_loss(distances, target_distances, weights, score_sum, size)
        if self.semantic:  # its logits at stride 8 against the masks taken at every second pixel
            semantic, _ = on_mask_grid(raw["semantic_logits"], grid // 2, size)
            terms["sem"] = semantic_loss(semantic, y_true["masks"], gt_classes)
        terms = {name: value * self.gains[name] for name, value in terms.items()}
        batch = tf.cast(tf.shape(gt_boxes)[0], tf.float32)
        total = tf.add_n(list(terms.values())) * batch
        return total, terms

    def _mask_anchor_cap(self, num_gts: int | None) -> int:
        """``max_mask_anchors`` (0: all), or less where the targets' static instance count
        bounds the positives of an image (each GT has at most topk2, else topk): fewer and
        smaller mask buckets to build, same value (every positive still fits). 0 where
        neither bounds them (mask_loss then sizes for every anchor)."""
        bounds = [self.max_mask_anchors] if self.max_mask_anchors > 0 else []
        if num_gts is not None:
            bounds.append(max(1, num_gts * (self.topk2 or self.topk)))
        return min(bounds, default=0)

    def get_config(self) -> dict:
        """Constructor arguments, so a model can serialize the loss it was compiled with."""
        return {"image_size": self.image_size, "num_classes": self.num_classes,
                "reg_max": self.reg_max, "box_gain": self.gains["box"],
                "cls_gain": self.gains["cls"], "dfl_gain": self.gains["dfl"],
                "seg_gain": self.gains["seg"], "topk": self.topk, "alpha": self.alpha,
                "beta": self.beta, "max_mask_anchors": self.max_mask_anchors,
                "topk2": self.topk2, "head_prefix": self.head_prefix,
                "detach_prototypes": self.detach_prototypes, "semantic": self.semantic,
                "static_shapes": self.static_shapes}


def _side(maps: tf.Tensor, axis: int = -1) -> int | tf.Tensor:
    """A square map's side: an int where the shape is static, else a scalar int32 tensor."""
    side = maps.shape[axis]
    return tf.shape(maps)[axis] if side is None else side


def input_size(prototypes: tf.Tensor) -> int | tf.Tensor:
    """The batch's input size S, read from its prototypes (at S / 4): the model's own size,
    or the one multi-scale training drew for the batch (tfseg/pipeline/multiscale.py)."""
    return _side(prototypes, 1) * PROTO_STRIDE


def on_mask_grid(maps: tf.Tensor, grid: int | tf.Tensor,
                 size: int | tf.Tensor) -> tuple[tf.Tensor, int | tf.Tensor]:
    """Per-pixel outputs (prototypes, semantic logits) on the GT masks' grid, and the input
    pixels per pixel of that grid.

    The masks stay on the grid of the nominal size when a batch is drawn at another
    (multi-scale training); there the maps are resized to it, bilinear, as the reference
    resizes its prototypes, so every GT mask is compared as it was made.

    Args:
        maps: ``[B, H, W, K]`` float32 at the batch's input size ``size``.
        grid: P, the side of the grid to compare on.
        size: the batch's input size S (input_size).

    Returns:
        (maps ``[B, P, P, K]``, S / P): the maps themselves, and their stride, when they are
        on the grid already.
    """
    if isinstance(grid, int) and isinstance(size, int) and maps.shape[1] == grid:
        return maps, size // grid
    resized = tf.image.resize(maps, [grid, grid], method="bilinear")
    return resized, tf.cast(size, tf.float32) / tf.cast(grid, tf.float32)


def on_instances_in_use(loss_on, y_true: dict, y_pred: dict, static_shapes: bool = True):
    """``loss_on(targets, raw)`` with the targets cut to the instances the batch's busiest
    image uses (see the module docstring), raw outputs as float32.

    Args:
        loss_on: ``(y_true, raw) -> (total, terms)`` on targets of any instance count.
        y_true: TRAIN_TARGETS (boxes, classes, masks; other keys are not passed on).
        y_pred: raw-output dict.
        static_shapes: cut to the smallest of a few static counts that holds them (a
            ``tf.switch_case``, for XLA), else to the count itself (tfseg/loss/buckets.py).

    Returns:
        What ``loss_on`` returns.
    """
    raw = {name: tf.cast(value, tf.float32) for name, value in y_pred.items()}
    gt_classes = tf.cast(y_true["classes"], tf.int32)  # [B, M]
    max_instances = gt_classes.shape[-1]
    if max_instances is None:
        return loss_on(y_true, raw)
    return switch_on_size(
        power_of_two_buckets(max_instances), instances_in_use(gt_classes),
        lambda size: loss_on({key: y_true[key][:, :size]
                              for key in ("boxes", "classes", "masks")}, raw),
        static_shapes)


def instances_in_use(classes: tf.Tensor) -> tf.Tensor:
    """How many leading instance slots the busiest image uses: 1 + the last non-padding index
    (class >= 0) of any image -> scalar int32; 0 for a batch of padding only.

    Args:
        classes: ``[B, M]`` int32, -1 for padding.
    """
    slots = tf.range(1, tf.shape(classes)[1] + 1)[None, :]  # [1, M]
    return tf.reduce_max(tf.where(classes >= 0, slots, 0))
