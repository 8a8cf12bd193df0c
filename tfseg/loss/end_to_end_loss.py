"""YOLO26-seg's training loss: both heads scored, with weights that move from one to the other.

YOLO26 has two heads over the same features (tfseg/model/head26.py). The one-to-many head is
trained like YOLOv8's (up to ``topk`` = 10 positives per ground truth); it gives the features
a rich signal. The one-to-one head, the one inference uses, must give one box per object, so
its assignment keeps one positive per ground truth: the top 7 by the alignment metric, then,
after conflicts between ground truths are resolved, the single best of those (``topk2`` = 1).
Both are YoloSegLoss with ``reg_max`` 1 (the L1 distance term instead of DFL) and the semantic
term; the one-to-one loss reads the ``o2o_`` outputs and no gradient reaches the shared
prototypes through it (the reference detaches them there, as the head detaches the features).

The total is ``w * one_to_many + (1 - w) * one_to_one``. The weight ``w`` falls linearly from
0.8 in the first epoch to 0.1 in the last (the reference's E2ELoss), so training shifts from
the dense signal to the head that is deployed. It lives in a tf.Variable that the training
loop sets at each epoch's start from the epoch number (tfseg/train/callbacks.py,
OneToManyWeight), so a resumed run continues with the right weight.

Logged terms: each term (box, seg, cls, l1, sem) as the same weighted sum of the two heads'
values, so the terms add up to the optimized total / B, and ``o2m`` / ``o2o``, each head's own
total / B, to follow the deployed head's loss.
"""

from __future__ import annotations

import tensorflow as tf

from tfseg.contracts import O2O_PREFIX
from tfseg.loss.yolo_seg_loss import YoloSegLoss, on_instances_in_use

O2M_FIRST, O2M_LAST = 0.8, 0.1  # the one-to-many weight in the first and in the last epoch
O2O_TOPK, O2O_TOPK2 = 7, 1  # one-to-one assignment: candidates kept, then positives per GT


def one_to_many_weight(epoch: int, epochs: int) -> float:
    """The one-to-many weight during ``epoch`` (0-based) of a run of ``epochs``: linear from
    O2M_FIRST at epoch 0 to O2M_LAST at the last epoch, and O2M_LAST after it.

    Args:
        epoch: 0-based epoch number.
        epochs: total epochs of the run.

    Returns:
        The weight in [O2M_LAST, O2M_FIRST].
    """
    remaining = max(1.0 - epoch / max(epochs - 1, 1), 0.0)
    return remaining * (O2M_FIRST - O2M_LAST) + O2M_LAST


class EndToEndSegLoss:
    """The dual-head loss of YOLO26-seg.

    Args: those of YoloSegLoss shared by both heads (``topk`` is the one-to-many head's; the
    one-to-one head uses O2O_TOPK then O2O_TOPK2). ``reg_max`` is YOLO26's 1.

    Call: ``(y_true, y_pred) -> (total, terms)`` like YoloSegLoss, ``y_pred`` holding the
    one-to-many keys, the ``o2o_`` keys, ``prototypes`` and ``semantic_logits``.

    Example:
        loss_fn = EndToEndSegLoss(image_size=640, num_classes=80)
        loss_fn.set_epoch(epoch, epochs)  # at each epoch's start
        total, terms = loss_fn(targets, raw_outputs)
    """

    def __init__(self, image_size: int, num_classes: int, reg_max: int = 1, topk: int = 10,
                 **shared):
        common = dict(image_size=image_size, num_classes=num_classes, reg_max=reg_max,
                      semantic=True, **shared)
        self.one_to_many = YoloSegLoss(topk=topk, **common)
        self.one_to_one = YoloSegLoss(topk=O2O_TOPK, topk2=O2O_TOPK2, head_prefix=O2O_PREFIX,
                                      detach_prototypes=True, **common)
        self.o2m_weight = tf.Variable(O2M_FIRST, trainable=False, dtype=tf.float32,
                                      name="o2m_weight")
        self._config = dict(image_size=image_size, num_classes=num_classes, reg_max=reg_max,
                            topk=topk, **shared)

    @property
    def term_names(self) -> tuple[str, ...]:
        """The per-term keys of the terms dict, then each head's total."""
        return self.one_to_many.term_names + ("o2m", "o2o")

    def set_epoch(self, epoch: int, epochs: int) -> float:
        """Set the one-to-many weight for ``epoch`` of ``epochs``; returns it."""
        weight = one_to_many_weight(epoch, epochs)
        self.o2m_weight.assign(weight)
        return weight

    def __call__(self, y_true: dict, y_pred: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        """total: scalar float32, the weighted sum of both heads' totals (each summed over the
        batch); terms: dict of ``term_names`` of scalar float32."""
        with tf.name_scope("end_to_end_seg_loss"):
            return on_instances_in_use(self._loss_on, y_true, y_pred,
                                       self.one_to_many.static_shapes)

    def _loss_on(self, y_true: dict, raw: dict) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
        many_total, many = self.one_to_many.loss_on(y_true, raw)
        one_total, one = self.one_to_one.loss_on(y_true, raw)
        w = tf.cast(self.o2m_weight, tf.float32)
        terms = {name: w * many[name] + (1.0 - w) * one[name] for name in many}
        terms["o2m"], terms["o2o"] = tf.add_n(list(many.values())), tf.add_n(list(one.values()))
        return w * many_total + (1.0 - w) * one_total, terms

    def get_config(self) -> dict:
        """Constructor arguments."""
        return dict(self._config)
