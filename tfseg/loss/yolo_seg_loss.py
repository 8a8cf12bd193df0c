"""The YOLO-seg training loss: task-aligned assignment, then box, DFL, class and mask terms.

Input contracts (tfseg/contracts.py): ``y_true`` is TRAIN_TARGETS (boxes, classes, masks),
``y_pred`` is RAW_OUTPUTS (box_logits, class_logits, mask_coefficients, prototypes).

Scale: like the YOLOv8 reference, the returned total is the sum of the gained terms times the
batch size (the reference recipe's learning rates and weight decay are tuned for that scale);
the per-term values for the logs are the gained terms without that factor.

Cost follows the instances in use, not M: targets arrive padded to a fixed M (100 for COCO) and
the assigner works on ``[B, M, A]``, but a batch rarely holds more than a few dozen instances
per image. The loss runs on the targets cut to the smallest of a few static sizes (16, 32, 64,
..., M) that holds the batch's busiest image; the instances left out are padding (class -1),
which never becomes a candidate, so the values equal the fully padded computation's
(tests/loss/test_yolo_seg_loss.py compares them).

Plain ``tf`` (not ``keras.ops``) throughout, because every step composes ``tfseg.ops``
functions, which are TF; the class works from ``keras.Model.compute_loss`` on the TF backend.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE, REG_MAX
from tfseg.loss.assigner import assign
from tfseg.loss.buckets import power_of_two_buckets, switch_on_size
from tfseg.loss.box_loss import ciou_loss, distribution_focal_loss
from tfseg.ops.boxes import boxes_to_distances, distances_to_boxes
from tfseg.ops.dfl import dfl_expectation
from tfseg.loss.mask_loss import mask_loss
from tfseg.ops.anchors import anchor_points


class YoloSegLoss:
    """Total loss and per-term values from training targets and raw model outputs.

    Args:
        image_size: square input size S in pixels.
        num_classes: C.
        reg_max: DFL bins per box side.
        box_gain: weight of the CIoU term (reference 7.5).
        cls_gain: weight of the class BCE term (reference 0.5).
        dfl_gain: weight of the DFL term (reference 1.5).
        seg_gain: weight of the mask term; None uses ``box_gain``, as the reference does.
        topk: positives per GT in the assigner (reference 10).
        alpha: class-score exponent of the alignment metric (reference 0.5).
        beta: IoU exponent of the alignment metric (reference 6.0).
        max_mask_anchors: positives per image whose masks are made (memory bound; see
            tfseg/loss/mask_loss.py).

    Example:
        loss_fn = YoloSegLoss(image_size=320, num_classes=80)
        total, terms = loss_fn(targets, raw_outputs)  # terms: box, seg, cls, dfl
    """

    def __init__(self, image_size: int, num_classes: int, reg_max: int = REG_MAX,
                 box_gain: float = 7.5, cls_gain: float = 0.5, dfl_gain: float = 1.5,
                 seg_gain: float | None = None, topk: int = 10, alpha: float = 0.5,
                 beta: float = 6.0, max_mask_anchors: int = 256):
        self.image_size = int(image_size)
        self.num_classes = int(num_classes)
        self.reg_max = int(reg_max)
        self.gains = {"box": float(box_gain), "cls": float(cls_gain), "dfl": float(dfl_gain),
                      "seg": float(box_gain if seg_gain is None else seg_gain)}
        self.topk, self.alpha, self.beta = int(topk), float(alpha), float(beta)
        self.max_mask_anchors = int(max_mask_anchors)

    def __call__(self, y_true: dict, y_pred: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """Compute the loss.

        Args:
            y_true: TRAIN_TARGETS: boxes ``[B, M, 4]`` float32 xyxy input pixels, classes
                ``[B, M]`` int32 (-1 padding), masks ``[B, M, P, P]`` uint8.
            y_pred: RAW_OUTPUTS: box_logits ``[B, A, 4 * reg_max]``, class_logits ``[B, A, C]``,
                mask_coefficients ``[B, A, 32]``, prototypes ``[B, P, P, 32]``.

        Returns:
            total: scalar float32, sum of gained terms times B.
            terms: dict box, seg, cls, dfl of scalar float32, each already multiplied by its gain.
        """
        with tf.name_scope("yolo_seg_loss"):
            raw = {name: tf.cast(value, tf.float32) for name, value in y_pred.items()}
            gt_classes = tf.cast(y_true["classes"], tf.int32)  # [B, M]
            max_instances = gt_classes.shape[-1]
            if max_instances is None:
                return self._loss(y_true, raw)
            return switch_on_size(
                power_of_two_buckets(max_instances), instances_in_use(gt_classes),
                lambda size: self._loss({key: y_true[key][:, :size]
                                         for key in ("boxes", "classes", "masks")}, raw))

    def _loss(self, y_true: dict, raw: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """The loss on targets of any instance count (float32 raw outputs)."""
        gt_boxes = tf.cast(y_true["boxes"], tf.float32)  # [B, m, 4]
        gt_classes = tf.cast(y_true["classes"], tf.int32)  # [B, m]
        points, strides = anchor_points(self.image_size)  # [A, 2], [A, 1]

        distances = dfl_expectation(raw["box_logits"], self.reg_max)  # [B, A, 4] strides
        pred_boxes = distances_to_boxes(points, distances * strides)  # [B, A, 4] pixels
        target = assign(tf.sigmoid(raw["class_logits"]), pred_boxes, points, gt_boxes,
                        gt_classes, self.topk, self.alpha, self.beta)

        score_sum = tf.maximum(tf.reduce_sum(target.scores), 1.0)  # the reference's clamp
        fg = tf.cast(target.foreground, tf.float32)  # [B, A]
        weights = tf.reduce_sum(target.scores, axis=-1) * fg  # [B, A]
        # Background anchors carry weight 0; give them their own (detached) box as target so
        # that nothing undefined enters the gradient through the zero weight.
        target_boxes = tf.where(target.foreground[..., None], target.boxes,
                                tf.stop_gradient(pred_boxes))  # [B, A, 4]

        terms = {
            "box": ciou_loss(pred_boxes, target_boxes, weights, score_sum),
            "seg": mask_loss(raw["mask_coefficients"], raw["prototypes"], y_true["masks"],
                             gt_boxes, target.gt_index, target.foreground, weights,
                             self.max_mask_anchors, PROTO_STRIDE),
            "cls": tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=target.scores, logits=raw["class_logits"])) / score_sum,
            "dfl": distribution_focal_loss(
                raw["box_logits"], boxes_to_distances(points, target_boxes) / strides,
                weights, score_sum, self.reg_max),
        }
        terms = {name: value * self.gains[name] for name, value in terms.items()}
        batch = tf.cast(tf.shape(gt_boxes)[0], tf.float32)
        total = tf.add_n(list(terms.values())) * batch
        return total, terms

    def get_config(self) -> dict:
        """Constructor arguments, so a model can serialize the loss it was compiled with."""
        return {"image_size": self.image_size, "num_classes": self.num_classes,
                "reg_max": self.reg_max, "box_gain": self.gains["box"],
                "cls_gain": self.gains["cls"], "dfl_gain": self.gains["dfl"],
                "seg_gain": self.gains["seg"], "topk": self.topk, "alpha": self.alpha,
                "beta": self.beta, "max_mask_anchors": self.max_mask_anchors}


def instances_in_use(classes: tf.Tensor) -> tf.Tensor:
    """How many leading instance slots the busiest image uses: 1 + the last non-padding index
    (class >= 0) of any image -> scalar int32; 0 for a batch of padding only.

    Args:
        classes: ``[B, M]`` int32, -1 for padding.
    """
    slots = tf.range(1, tf.shape(classes)[1] + 1)[None, :]  # [1, M]
    return tf.reduce_max(tf.where(classes >= 0, slots, 0))
