"""Exported model vs Keras + PostProcess on the same images: matching by IoU and a report.

Detections are compared by matching, not by row: TFLite's NMS orders tied scores
differently from TF's (DESIGN.md), and a score a hair above or below the threshold can add or
drop a row. Each reference detection is matched greedily (highest IoU first) to a candidate of
the same class; the report holds the largest box and score differences over matches, the
smallest mask IoU (masks thresholded at 0.5) and the unmatched counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from tfseg.ops.boxes import pairwise_iou


def match_by_iou(boxes_a: np.ndarray, classes_a: np.ndarray, boxes_b: np.ndarray,
                 classes_b: np.ndarray, min_iou: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of two detection sets, same class only.

    Args:
        boxes_a: ``[n, 4]`` xyxy; classes_a: ``[n]``.
        boxes_b: ``[m, 4]`` xyxy (same units); classes_b: ``[m]``.
        min_iou: pairs below this IoU are never matched.

    Returns:
        ``(i, j)`` pairs, highest IoU first.
    """
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return []
    iou = pairwise_iou(tf.constant(boxes_a, tf.float32), tf.constant(boxes_b, tf.float32)).numpy()
    # Boxes clipped to nothing (a detection in the letterbox padding, mapped to the original
    # image) have no IoU with anything; identical ones still match.
    same = np.abs(np.asarray(boxes_a)[:, None] - np.asarray(boxes_b)[None]).max(-1) < 1e-3
    iou = np.where(same, 1.0, iou)
    iou = np.where(np.asarray(classes_a)[:, None] == np.asarray(classes_b)[None, :], iou, -1.0)
    pairs, used_a, used_b = [], set(), set()
    for flat in np.argsort(-iou, axis=None, kind="stable"):
        i, j = divmod(int(flat), iou.shape[1])
        if iou[i, j] < min_iou:
            break
        if i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def mask_iou(a: np.ndarray, b: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of two probability masks thresholded at ``threshold`` (1.0 if both are empty)."""
    on_a, on_b = a > threshold, b > threshold
    union = np.logical_or(on_a, on_b).sum()
    return 1.0 if union == 0 else float(np.logical_and(on_a, on_b).sum() / union)


@dataclass
class ParityReport:
    """Differences between a reference and a candidate over one or more images."""
    matched: int = 0
    unmatched_reference: int = 0
    unmatched_candidate: int = 0
    max_box_diff: float = 0.0
    max_score_diff: float = 0.0
    min_mask_iou: float = 1.0
    max_mask_diff: float = 0.0
    notes: list[str] = field(default_factory=list)

    def add(self, other: "ParityReport") -> "ParityReport":
        return ParityReport(
            self.matched + other.matched, self.unmatched_reference + other.unmatched_reference,
            self.unmatched_candidate + other.unmatched_candidate,
            max(self.max_box_diff, other.max_box_diff),
            max(self.max_score_diff, other.max_score_diff),
            min(self.min_mask_iou, other.min_mask_iou),
            max(self.max_mask_diff, other.max_mask_diff), self.notes + other.notes)

    def __str__(self) -> str:
        return (f"matched {self.matched}, unmatched ref {self.unmatched_reference} / cand "
                f"{self.unmatched_candidate}, max |box| {self.max_box_diff:.2e}, max |score| "
                f"{self.max_score_diff:.2e}, min mask IoU {self.min_mask_iou:.4f}, max |mask| "
                f"{self.max_mask_diff:.2e}")


def compare_image(reference: dict, candidate: dict, min_iou: float = 0.5,
                  score_margin: float = 0.0) -> ParityReport:
    """Compare the detections of one image.

    Args:
        reference / candidate: dicts of numpy arrays for ONE image, rows already cut to the
            valid count: boxes ``[n, 4]`` (same units in both), scores ``[n]``, classes ``[n]``,
            masks ``[n, P, P]`` (optional: without masks in both, only boxes and scores
            are compared).
        min_iou: IoU needed to match two detections.
        score_margin: unmatched detections scoring below threshold + margin are expected
            (a score on the threshold may fall either side); pass the threshold + margin as
            ``score_margin`` to ignore them, or 0 to count every unmatched row.

    Returns:
        ParityReport of this image.
    """
    pairs = match_by_iou(reference["boxes"], reference["classes"], candidate["boxes"],
                         candidate["classes"], min_iou)
    report = ParityReport(matched=len(pairs))
    matched_ref = {i for i, _ in pairs}
    matched_cand = {j for _, j in pairs}
    report.unmatched_reference = sum(1 for i, s in enumerate(reference["scores"])
                                     if i not in matched_ref and s >= score_margin)
    report.unmatched_candidate = sum(1 for j, s in enumerate(candidate["scores"])
                                     if j not in matched_cand and s >= score_margin)
    for i, j in pairs:
        report.max_box_diff = max(report.max_box_diff, float(np.abs(
            reference["boxes"][i] - candidate["boxes"][j]).max()))
        report.max_score_diff = max(report.max_score_diff, float(abs(
            reference["scores"][i] - candidate["scores"][j])))
        if "masks" not in reference or "masks" not in candidate:
            continue
        report.min_mask_iou = min(report.min_mask_iou, mask_iou(reference["masks"][i],
                                                                candidate["masks"][j]))
        report.max_mask_diff = max(report.max_mask_diff, float(np.abs(
            reference["masks"][i] - candidate["masks"][j]).max()))
    return report


def split_batch(detections: dict, index: int) -> dict:
    """Image ``index`` of a DETECTIONS batch (numpy), cut to its num_detections rows."""
    count = int(np.asarray(detections["num_detections"])[index])
    return {name: np.asarray(detections[name])[index, :count]
            for name in ("boxes", "scores", "classes", "masks")}


def compare_batches(reference: dict, candidate: dict, min_iou: float = 0.5,
                    score_margin: float = 0.0) -> ParityReport:
    """:func:`compare_image` over every image of two DETECTIONS batches (numpy)."""
    report = ParityReport()
    for b in range(len(np.asarray(reference["num_detections"]))):
        report = report.add(compare_image(split_batch(reference, b), split_batch(candidate, b),
                                          min_iou, score_margin))
    return report
