"""Test-time augmentation: several views of each image in one batch, one merged detection set.

Views, in this order, each a full S x S input so the network runs all of them as one batch
of V x B images (view-major: the B images of view 0, then those of view 1, ...):

    0   the letterboxed image itself;
    1   its horizontal mirror (``flip``);
    2.. the image shrunk by each of ``scales`` (0.83 and 0.67 by default) to a side rounded to
        a multiple of the prototype stride (4), placed at the top-left corner and padded
        right and below with the letterbox grey, back to S.

Merging happens before NMS, on the candidates of every view, with the decoding PostProcess
uses (:mod:`tfseg.postprocess.decode`, :mod:`tfseg.postprocess.nms`,
:mod:`tfseg.postprocess.masks`): each view's boxes are decoded in its own frame and mapped
back to view 0's (un-mirrored: x -> S - x; un-scaled: divided by the view's ratio r), the
candidates of all views are concatenated along the anchor axis, and one NMS keeps N.

Masks are merged in the same frame without assembling a mask per candidate: each view's
prototypes are mapped into view 0's prototype grid (mirrored back, or resampled bilinearly,
:func:`tfseg.postprocess.masks.interpolation_weights`) and stacked along the channel axis,
K channels per view; a candidate's coefficients sit in its own view's K slots (zeros in the
others). Mask logits are linear in the prototypes, so resampling the prototypes is
resampling every candidate's mask logits, at a cost of K channels per view instead of N
masks per image. After NMS each kept detection's coefficients are replaced by the
score-weighted mean of those of the candidates merged into it (:func:`averaged_coefficients`:
its own, and those it suppressed), so ``detection_masks`` (coefficients x stacked
prototypes) gives it the score-weighted mean of their mask logits, in the common frame. On
the shapes validation set this averaging raised mask mAP50-95 by 0.02 over keeping the kept
candidate's own mask (docs/tta.md).

A one-to-one head (YOLO26, ``end_to_end``) gives one box per object per view, so the views
duplicate each other: its top-k pairs over all views (``V x N``) go through the same
class-aware NMS. Graph side, TF ops only; not exported (the exports are fixed single-view
graphs).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfseg.contracts import LETTERBOX_PAD_VALUE, O2O_PREFIX, PROTO_STRIDE
from tfseg.ops import boxes as box_ops
from tfseg.ops.boxes import pairwise_iou
from tfseg.postprocess.decode import best_class, decode_boxes
from tfseg.postprocess.layer import PostProcess
from tfseg.postprocess.masks import detection_masks, interpolation_weights
from tfseg.postprocess.nms import multi_label_candidates
from tfseg.postprocess.topk import gather_rows, topk_pairs

DEFAULT_SCALES = (0.83, 0.67)  # the two extra scales of the YOLO family's augmented inference
AVERAGED_CANDIDATES = 4096  # best-scoring candidates per image whose masks may be averaged


def view_plan(image_size: int, scales=DEFAULT_SCALES, flip: bool = True) -> list[tuple[int, bool]]:
    """The views as (side in pixels, mirrored): the image, its mirror, then each scale.

    A scaled side is ``S * scale`` rounded to a multiple of the prototype stride, so the
    view's content covers whole prototype cells; its ratio to view 0 is ``side / S``.
    """
    plan = [(image_size, False)] + ([(image_size, True)] if flip else [])
    for scale in scales:
        side = int(round(image_size * float(scale) / PROTO_STRIDE)) * PROTO_STRIDE
        if not PROTO_STRIDE <= side <= image_size:
            raise ValueError(f"TTA scale {scale} at {image_size} px gives a {side} px view: "
                             f"scales must lie in (0, 1]")
        plan.append((side, False))
    return plan


def augmented_views(images: tf.Tensor, plan: list[tuple[int, bool]]) -> tf.Tensor:
    """The network's input batch of every view.

    Args:
        images: ``[B, S, S, 3]`` float32 in [0, 1], letterboxed (S static).
        plan: :func:`view_plan` of S.

    Returns:
        ``[V * B, S, S, 3]`` float32, view-major.
    """
    with tf.name_scope("tta_views"):
        size = int(images.shape[1])
        views = []
        for side, mirrored in plan:
            view = tf.reverse(images, axis=[2]) if mirrored else images
            if side != size:  # shrink (bilinear, as the letterbox resizes), pad right and below
                view = tf.image.resize(view, [side, side], method="bilinear")
                view = tf.pad(view, [[0, 0], [0, size - side], [0, size - side], [0, 0]],
                              constant_values=LETTERBOX_PAD_VALUE / 255.0)
            views.append(view)
        return tf.concat(views, axis=0)


def boxes_to_first_view(boxes: tf.Tensor, side: int, mirrored: bool, image_size: int) -> tf.Tensor:
    """Boxes of one view -> view 0's frame.

    Args:
        boxes: ``[..., 4]`` float32 xyxy pixels of the view.
        side, mirrored: the view (:func:`view_plan`); its content is view 0 scaled by
            ``side / S`` (or mirrored: x -> S - x, which swaps x1 and x2).
        image_size: S.

    Returns:
        ``[..., 4]`` xyxy pixels of view 0, clipped to [0, S].
    """
    x1, y1, x2, y2 = tf.split(boxes, 4, axis=-1)  # each [..., 1]
    if mirrored:
        x1, x2 = image_size - x2, image_size - x1
    boxes = tf.concat([x1, y1, x2, y2], axis=-1)  # [..., 4]
    if side != image_size:
        boxes = box_ops.clip(boxes * (image_size / side), image_size, image_size)
    return boxes


def prototypes_to_first_view(prototypes: tf.Tensor, side: int, mirrored: bool) -> tf.Tensor:
    """One view's prototypes on view 0's prototype grid.

    Cell q of view 0 (centre at input pixel 4 q + 2) is read at that point's place in the
    view: mirrored (cell P - 1 - q, exact), or at ``(4 q + 2) * side / S`` (bilinear).

    Args:
        prototypes: ``[B, P, P, K]`` float32 of the view.
        side, mirrored: the view (:func:`view_plan`).

    Returns:
        ``[B, P, P, K]`` float32.
    """
    if mirrored:
        return tf.reverse(prototypes, axis=[2])
    grid = int(prototypes.shape[1])
    size = grid * PROTO_STRIDE
    if side == size:
        return prototypes
    # The view's grid spans S * S / side of view 0's pixels (it continues into the padding).
    weights = interpolation_weights(tf.constant([0.0]), tf.constant([float(size)]), 0.0,
                                    size * size / side, grid, grid)  # [P, P]
    return tf.einsum("ip,bpqk,jq->bijk", weights, prototypes, weights)  # [B, P, P, K]


def merged_candidates(raw_outputs: dict, plan: list[tuple[int, bool]], prefix: str = ""
                      ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """The candidates of every view, in view 0's frame, as one set of V x A anchors.

    Args:
        raw_outputs: RAW_OUTPUTS of the ``[V * B, S, S, 3]`` views (view-major).
        plan: the views (:func:`view_plan`).
        prefix: ``""`` for the one-to-many head, ``O2O_PREFIX`` for the one-to-one head.

    Returns:
        boxes ``[B, V * A, 4]`` xyxy pixels, class_logits ``[B, V * A, C]``, coefficients
        ``[B, V * A, V * K]`` (each in its view's K slots), prototypes ``[B, P, P, V * K]``.
    """
    count = len(plan)

    def views_of(key):  # V x [B, ...]
        return tf.split(tf.convert_to_tensor(raw_outputs[key], tf.float32), count, axis=0)

    prototypes = views_of("prototypes")
    image_size = int(prototypes[0].shape[1]) * PROTO_STRIDE
    box_logits = views_of(prefix + "box_logits")
    reg_max = int(box_logits[0].shape[-1]) // 4
    coefficients = views_of(prefix + "mask_coefficients")
    depth = int(coefficients[0].shape[-1])
    boxes, slotted, mapped = [], [], []
    for v, (side, mirrored) in enumerate(plan):
        decoded = decode_boxes(box_logits[v], image_size, reg_max)  # [B, A, 4] view pixels
        boxes.append(boxes_to_first_view(decoded, side, mirrored, image_size))
        slots = [[0, 0], [0, 0], [v * depth, (count - 1 - v) * depth]]
        slotted.append(tf.pad(coefficients[v], slots))  # [B, A, V * K]
        mapped.append(prototypes_to_first_view(prototypes[v], side, mirrored))
    return (tf.concat(boxes, axis=1), tf.concat(views_of(prefix + "class_logits"), axis=1),
            tf.concat(slotted, axis=1), tf.concat(mapped, axis=-1))


def averaged_coefficients(kept: dict, candidates: tuple, iou_threshold, score_threshold,
                          agnostic: bool, limit: int = AVERAGED_CANDIDATES) -> tf.Tensor:
    """Each kept detection's coefficients as the score-weighted mean over the candidates
    NMS merged into it.

    A candidate counts for a kept detection when it scores at least the score threshold, has
    its class (any class with ``agnostic``) and overlaps its box by more than the IoU
    threshold: the kept candidate itself and those it suppressed. Only the ``limit``
    best-scoring candidates of an image are looked at (the rest weigh little, and the
    overlaps are ``[B, N, limit]``).

    Args:
        kept: batched_nms's result (boxes ``[B, N, 4]``, classes ``[B, N]`` int32,
            coefficients ``[B, N, D]``).
        candidates: (boxes ``[B, M, 4]``, scores ``[B, M]``, classes ``[B, M]`` float,
            coefficients ``[B, M, D]``), what entered NMS.
        iou_threshold, score_threshold: floats or per-image ``[B]`` tensors.
        agnostic: merge across classes, as agnostic NMS suppresses.
        limit: candidates looked at per image.

    Returns:
        ``[B, N, D]`` float32; rows without candidates (padding) keep their coefficients.
    """
    boxes, scores, classes, coefficients = candidates
    scores, best = tf.math.top_k(scores, k=min(limit, int(scores.shape[1])))  # [B, k]
    boxes, classes, coefficients = (tf.gather(t, best, batch_dims=1)
                                    for t in (boxes, classes, coefficients))
    overlaps = pairwise_iou(kept["boxes"], boxes)  # [B, N, k]
    iou_threshold = tf.reshape(tf.cast(iou_threshold, tf.float32), [-1, 1, 1])
    score_threshold = tf.reshape(tf.cast(score_threshold, tf.float32), [-1, 1, 1])
    scores = scores[:, None, :]  # [B, 1, k]
    weights = scores * tf.cast((overlaps > iou_threshold) & (scores >= score_threshold),
                               tf.float32)  # [B, N, k]
    if not agnostic:
        same = tf.cast(kept["classes"], tf.float32)[:, :, None] == classes[:, None, :]
        weights *= tf.cast(same, tf.float32)
    total = tf.reduce_sum(weights, axis=-1, keepdims=True)  # [B, N, 1]
    mean = tf.matmul(weights, coefficients) / tf.maximum(total, 1e-12)  # [B, N, D]
    return tf.where(total > 0.0, mean, kept["coefficients"])


@keras.saving.register_keras_serializable(package="tfseg")
class AugmentedPostProcess(PostProcess):
    """PostProcess over the views of :func:`augmented_views`: one detection set per image.

    Args:
        scales: the extra views' scales, each in (0, 1].
        flip: add the mirrored view.
        average_masks: a kept detection's mask is the score-weighted mean of those of the
            candidates merged into it (:func:`averaged_coefficients`); False keeps its own.
        **kwargs: PostProcess's (thresholds, N, agnostic, multi_label, end_to_end, masks).

    Call args:
        raw_outputs: RAW_OUTPUTS of ``views(images)``, ``[V * B, ...]``.
        score_threshold, iou_threshold, max_detections: as PostProcess (per image: ``[B]``).

    Returns:
        the DETECTIONS contract of the B images, as PostProcess returns it.

    Example:
        >>> post = AugmentedPostProcess(score_threshold=0.25, iou_threshold=0.7)
        >>> detections = post(model(post.views(images)))
    """

    def __init__(self, scales=DEFAULT_SCALES, flip: bool = True, average_masks: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.scales = tuple(float(s) for s in scales)
        self.flip = bool(flip)
        self.average_masks = bool(average_masks)

    def views(self, images: tf.Tensor) -> tf.Tensor:
        """``[B, S, S, 3]`` float32 in [0, 1] -> the network's ``[V * B, S, S, 3]`` batch."""
        return augmented_views(images, view_plan(int(images.shape[1]), self.scales, self.flip))

    def call(self, raw_outputs, score_threshold=None, iou_threshold=None, max_detections=None):
        image_size = int(raw_outputs["prototypes"].shape[1]) * PROTO_STRIDE
        plan = view_plan(image_size, self.scales, self.flip)
        one_to_one = self.end_to_end and O2O_PREFIX + "class_logits" in raw_outputs
        boxes, logits, coefficients, prototypes = merged_candidates(
            raw_outputs, plan, O2O_PREFIX if one_to_one else "")
        if one_to_one:  # each view's best pairs; NMS removes the views' duplicates
            k = min(len(plan) * self.max_detections, int(logits.shape[1]))
            scores, anchors, classes = topk_pairs(tf.sigmoid(logits), k)  # [B, k] each
            boxes, coefficients = gather_rows(boxes, anchors), gather_rows(coefficients, anchors)
            classes = tf.cast(classes, tf.float32)
        elif self.multi_label:
            boxes, scores, classes, coefficients = multi_label_candidates(
                boxes, tf.sigmoid(logits), coefficients, self.max_candidates)
        else:
            scores, classes = best_class(logits)  # [B, V * A] each
        candidates = (boxes, scores, classes, coefficients)
        options = self._runtime_options(boxes, score_threshold, iou_threshold, max_detections)
        kept = self._nms(candidates, image_size, options)
        if self.average_masks:
            kept["coefficients"] = averaged_coefficients(
                kept, candidates, options["iou_threshold"], options["score_threshold"],
                self.agnostic)
        return self._with_masks(kept, detection_masks(kept["coefficients"], prototypes,
                                                      kept["boxes"]))

    def compute_output_spec(self, raw_outputs, score_threshold=None, iou_threshold=None,
                            max_detections=None):
        spec = super().compute_output_spec(raw_outputs)
        batch = raw_outputs["prototypes"].shape[0]
        if batch is None:
            return spec
        count = len(self.scales) + 1 + int(self.flip)
        return {k: keras.KerasTensor((batch // count, *v.shape[1:]), v.dtype)
                for k, v in spec.items()}

    def get_config(self):
        config = super().get_config()
        config.update(scales=list(self.scales), flip=self.flip,
                      average_masks=self.average_masks)
        return config
