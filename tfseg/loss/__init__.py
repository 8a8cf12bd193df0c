"""Targets and losses of YOLO-seg training (graph side, fixed shapes, XLA-friendly).

``YoloSegLoss`` is the entry the model's ``compute_loss`` calls; ``assign`` is the
task-aligned assigner it uses.
"""

from tfseg.loss.assigner import Assignment, assign
from tfseg.loss.yolo_seg_loss import YoloSegLoss

__all__ = ["Assignment", "YoloSegLoss", "assign"]
