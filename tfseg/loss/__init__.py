"""Targets and losses of YOLO-seg training (graph side, fixed shapes, XLA-friendly).

``YoloSegLoss`` is the loss the model's ``compute_loss`` calls for YOLOv8/11 (one head),
``EndToEndSegLoss`` the one for YOLO26's two heads; ``assign`` is the task-aligned assigner
both use.
"""

from tfseg.loss.assigner import Assignment, assign
from tfseg.loss.end_to_end_loss import EndToEndSegLoss
from tfseg.loss.yolo_seg_loss import YoloSegLoss

__all__ = ["Assignment", "EndToEndSegLoss", "YoloSegLoss", "assign"]
