"""The PostProcess layer: raw model outputs -> the DETECTIONS contract.

The only post-processing in tfseg: evaluation, predict, the SavedModel and the TFLite
graphs all call this layer on the model's raw outputs (composition outside the model).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfseg.contracts import O2O_PREFIX, PROTO_STRIDE
from tfseg.postprocess.decode import best_class, decode_boxes
from tfseg.postprocess.masks import (MASK_DTYPES, box_aligned_masks, detection_masks,
                                     encode_masks)
from tfseg.postprocess.nms import batched_nms, multi_label_candidates, per_image_option
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
        mask_size: 0 returns ``masks`` at prototype resolution (the DETECTIONS contract);
            m > 0 returns ``box_masks`` ``[B, N, m, m]`` instead, each mask resampled onto
            an m x m grid spanning its box (tfseg.postprocess.masks; exports only).
        mask_dtype: ``"float32"`` probabilities or ``"uint8"`` round(255 p) (exports only).
        end_to_end: for raw outputs of a one-to-one head (YOLO26, ``o2o_*`` keys): its
            top-k detections, no NMS (tfseg/postprocess/topk.py; only the score threshold
            and N apply). False, or outputs without those keys: one-to-many head + NMS.

    Call args:
        raw_outputs: dict of the RAW_OUTPUTS contract (tfseg/contracts.py):
            box_logits ``[B, A, 4 * reg_max]``, class_logits ``[B, A, C]``,
            mask_coefficients ``[B, A, K]``, prototypes ``[B, P, P, K]``. P must be static.
        score_threshold, iou_threshold: optional run-time thresholds, float32 scalars or
            per-image ``[B]`` tensors; None or a negative entry uses the constructor's value.
        max_detections: optional int32 scalar or ``[B]``: at most this many of the N rows are
            filled (``num_detections = min(found, max_detections)``, rows past it zero); None
            or a negative entry means N. The output shapes stay N: the constructor's
            max_detections is the capacity. The result equals that of a PostProcess built
            with these values (its first rows, when max_detections < N).

    Returns:
        dict of the DETECTIONS contract: boxes ``[B, N, 4]`` float32 xyxy input pixels,
        scores ``[B, N]`` float32, classes ``[B, N]`` int32, masks ``[B, N, P, P]`` float32
        probabilities zero outside the box, num_detections ``[B]`` int32. With
        ``mask_size`` m > 0, ``box_masks`` ``[B, N, m, m]`` replaces ``masks``.

    Example:
        >>> post = PostProcess(score_threshold=0.25, iou_threshold=0.7, max_detections=100)
        >>> detections = post(model(images))
    """

    def __init__(self, score_threshold: float = 0.25, iou_threshold: float = 0.7,
                 max_detections: int = 300, agnostic: bool = False, pre_nms_topk: int = 0,
                 multi_label: bool = False, max_candidates: int = MAX_CANDIDATES,
                 mask_size: int = 0, mask_dtype: str = "float32", end_to_end: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        if int(mask_size) < 0 or mask_dtype not in MASK_DTYPES:
            raise ValueError(f"mask_size must be >= 0 (got {mask_size}) and mask_dtype one of "
                             f"{MASK_DTYPES} (got {mask_dtype!r})")
        self.score_threshold = float(score_threshold)
        self.iou_threshold = float(iou_threshold)
        self.max_detections = int(max_detections)
        self.agnostic = bool(agnostic)
        self.pre_nms_topk = int(pre_nms_topk)
        self.multi_label = bool(multi_label)
        self.max_candidates = int(max_candidates)
        self.mask_size = int(mask_size)
        self.mask_dtype = str(mask_dtype)
        self.end_to_end = bool(end_to_end)

    def call(self, raw_outputs, score_threshold=None, iou_threshold=None, max_detections=None):
        if self.end_to_end and O2O_PREFIX + "class_logits" in raw_outputs:
            # No NMS: the IoU threshold has nothing to act on.
            options = self._runtime_options(raw_outputs["prototypes"], score_threshold, None,
                                            max_detections)
            kept = end_to_end_detections(raw_outputs, options["score_threshold"],
                                         self.max_detections, options.get("max_keep"))
            return self._with_masks(kept, kept.pop("masks"))
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
        kept = self._nms((boxes, scores, classes, coefficients), image_size,
                         self._runtime_options(boxes, score_threshold, iou_threshold,
                                               max_detections))
        return self._with_masks(kept, detection_masks(kept["coefficients"], prototypes,
                                                      kept["boxes"]))

    def _nms(self, candidates: tuple, image_size: int, options: dict) -> dict:
        """batched_nms of candidates (boxes ``[B, A, 4]``, scores and float classes ``[B, A]``,
        coefficients ``[B, A, K]``) with this layer's settings and a call's ``options``
        (:meth:`_runtime_options`)."""
        return batched_nms(*candidates, image_size=image_size,
                           max_detections=self.max_detections, agnostic=self.agnostic,
                           pre_nms_topk=self.pre_nms_topk, **options)

    def _with_masks(self, kept: dict, masks: tf.Tensor) -> dict:
        """DETECTIONS from the kept rows and their ``[B, N, P, P]`` masks, in the mask
        options' form (box-aligned m x m when mask_size > 0; float32 or uint8)."""
        if self.mask_size:
            masks = box_aligned_masks(masks, kept["boxes"], self.mask_size)
        return {
            "boxes": kept["boxes"],
            "scores": kept["scores"],
            "classes": kept["classes"],
            self._mask_key(): encode_masks(masks, self.mask_dtype),
            "num_detections": kept["num_detections"],
        }

    def _runtime_options(self, boxes, score_threshold, iou_threshold, max_detections) -> dict:
        """The run-time options of a call, for batched_nms or the top-k path: the constructor's
        numbers, or per-image ``[B]`` tensors where run-time values are given (negatives ->
        defaults). ``boxes``: any tensor whose first axis is the batch."""
        batch = boxes.shape[0] if boxes.shape[0] is not None else tf.shape(boxes)[0]
        options = {"score_threshold": self.score_threshold, "iou_threshold": self.iou_threshold}
        if score_threshold is not None:
            options["score_threshold"] = per_image_option(score_threshold,
                                                          self.score_threshold, batch)
        if iou_threshold is not None:
            options["iou_threshold"] = per_image_option(iou_threshold, self.iou_threshold, batch)
        if max_detections is not None:
            options["max_keep"] = per_image_option(max_detections, self.max_detections, batch,
                                                   tf.int32)
        return options

    def _mask_key(self) -> str:
        return "box_masks" if self.mask_size else "masks"

    def compute_output_spec(self, raw_outputs, score_threshold=None, iou_threshold=None,
                            max_detections=None):
        batch = raw_outputs["prototypes"].shape[0]
        proto = raw_outputs["prototypes"].shape[1]
        n = self.max_detections
        side = self.mask_size or proto
        return {
            "boxes": keras.KerasTensor((batch, n, 4), "float32"),
            "scores": keras.KerasTensor((batch, n), "float32"),
            "classes": keras.KerasTensor((batch, n), "int32"),
            self._mask_key(): keras.KerasTensor((batch, n, side, side), self.mask_dtype),
            "num_detections": keras.KerasTensor((batch,), "int32"),
        }

    def get_config(self):
        config = super().get_config()
        config.update(score_threshold=self.score_threshold, iou_threshold=self.iou_threshold,
                      max_detections=self.max_detections, agnostic=self.agnostic,
                      pre_nms_topk=self.pre_nms_topk, multi_label=self.multi_label,
                      max_candidates=self.max_candidates, mask_size=self.mask_size,
                      mask_dtype=self.mask_dtype, end_to_end=self.end_to_end)
        return config
