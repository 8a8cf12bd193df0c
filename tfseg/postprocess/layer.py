"""The PostProcess layer: raw model outputs -> the DETECTIONS contract.

The only post-processing in tfseg: evaluation, predict, the SavedModel and the TFLite
graphs all call this layer on the model's raw outputs (composition outside the model).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfseg.contracts import O2O_PREFIX, PROTO_STRIDE
from tfseg.postprocess.decode import best_class, decode_boxes
from tfseg.postprocess.masks import detection_masks
from tfseg.postprocess.nms import batched_nms, multi_label_candidates
from tfseg.postprocess.topk import end_to_end_detections


MAX_CANDIDATES = 30000  # multi-label pairs entering NMS (what the YOLO family's evaluation keeps)


@keras.saving.register_keras_serializable(package="tfseg")
class PostProcess(keras.layers.Layer):
    """Decode, score, NMS and mask assembly, with fixed output shapes.

    Args:
        score_threshold: minimum class score of a detection.
        iou_threshold: NMS IoU threshold.
        max_detections: N, detections per image (outputs are padded to N).
        agnostic: True to suppress across classes (class-agnostic NMS).
        pre_nms_topk: if > 0, only this many best-scoring anchors per image enter NMS.
        multi_label: every (anchor, class) pair scoring above the threshold is a candidate
            (COCO evaluation); False keeps each anchor's best class only (deployment).
        max_candidates: with multi_label, the best-scoring pairs that enter NMS.
        end_to_end: for raw outputs of a one-to-one head (YOLO26, ``o2o_*`` keys): its
            top-k detections, no NMS (tfseg/postprocess/topk.py; only the score threshold
            and N apply). False, or outputs without those keys: one-to-many head + NMS.

    Call args:
        raw_outputs: dict of the RAW_OUTPUTS contract (tfseg/contracts.py):
            box_logits ``[B, A, 4 * reg_max]``, class_logits ``[B, A, C]``,
            mask_coefficients ``[B, A, K]``, prototypes ``[B, P, P, K]``. P must be static.

    Returns:
        dict of the DETECTIONS contract: boxes ``[B, N, 4]`` float32 xyxy input pixels,
        scores ``[B, N]`` float32, classes ``[B, N]`` int32, masks ``[B, N, P, P]`` float32
        probabilities zero outside the box, num_detections ``[B]`` int32.

    Example:
        >>> post = PostProcess(score_threshold=0.25, iou_threshold=0.7, max_detections=100)
        >>> detections = post(model(images))
    """

    def __init__(self, score_threshold: float = 0.25, iou_threshold: float = 0.7,
                 max_detections: int = 300, agnostic: bool = False, pre_nms_topk: int = 0,
                 multi_label: bool = False, max_candidates: int = MAX_CANDIDATES,
                 end_to_end: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.agnostic = bool(agnostic)
        self.pre_nms_topk = int(pre_nms_topk)
        self.multi_label = bool(multi_label)
        self.max_candidates = int(max_candidates)
        self.end_to_end = bool(end_to_end)

    def call(self, raw_outputs):
        if self.end_to_end and O2O_PREFIX + "class_logits" in raw_outputs:
            return end_to_end_detections(raw_outputs, self.score_threshold, self.max_detections)
        prototypes = tf.convert_to_tensor(raw_outputs["prototypes"], tf.float32)
        proto_size = prototypes.shape[1]
        if proto_size is None:
            raise ValueError("PostProcess needs a static prototype size (fixed input size)")
        image_size = int(proto_size) * PROTO_STRIDE
        box_logits = tf.convert_to_tensor(raw_outputs["box_logits"], tf.float32)
        reg_max = int(box_logits.shape[-1]) // 4
        boxes = decode_boxes(box_logits, image_size, reg_max)  # [B, A, 4]
        class_logits = tf.convert_to_tensor(raw_outputs["class_logits"], tf.float32)
        coefficients = tf.convert_to_tensor(raw_outputs["mask_coefficients"], tf.float32)
        if self.multi_label:  # [B, k, ...] candidates, one per (anchor, class) pair
            boxes, scores, classes, coefficients = multi_label_candidates(
                boxes, tf.sigmoid(class_logits), coefficients, self.max_candidates)
        else:
            scores, classes = best_class(class_logits)  # [B, A] each
        kept = batched_nms(
            boxes, scores, classes, coefficients, image_size=image_size,
            max_detections=self.max_detections,
            iou_threshold=self.iou_threshold, score_threshold=self.score_threshold,
            agnostic=self.agnostic, pre_nms_topk=self.pre_nms_topk)
        masks = detection_masks(kept["coefficients"], prototypes, kept["boxes"])
        return {
            "boxes": kept["boxes"],
            "scores": kept["scores"],
            "classes": kept["classes"],
            "masks": masks,
            "num_detections": kept["num_detections"],
        }

    def compute_output_spec(self, raw_outputs):
        batch = raw_outputs["prototypes"].shape[0]
        proto = raw_outputs["prototypes"].shape[1]
        n = self.max_detections
        return {
            "boxes": keras.KerasTensor((batch, n, 4), "float32"),
            "scores": keras.KerasTensor((batch, n), "float32"),
            "classes": keras.KerasTensor((batch, n), "int32"),
            "masks": keras.KerasTensor((batch, n, proto, proto), "float32"),
            "num_detections": keras.KerasTensor((batch,), "int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                      max_detections=self.max_detections, agnostic=self.agnostic,
                      pre_nms_topk=self.pre_nms_topk, multi_label=self.multi_label,
                      max_candidates=self.max_candidates, end_to_end=self.end_to_end)
        return config
