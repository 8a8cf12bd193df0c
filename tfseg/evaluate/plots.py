"""Evaluation plots as PNG (OpenCV, no plotting library): PR curves, confusion matrix, grid,
and the training curves of a run (results.png).

Host side: numpy and cv2 only. Box IoU comes from tfseg.ops.boxes (one implementation).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from tfseg.ops.boxes import pairwise_iou

_WHITE, _BLACK, _GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)


def class_colour(index: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per class or instance index (golden-ratio hues)."""
    hue = int((index * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def plot_pr_curves(precision: np.ndarray, class_names: list[str], path: str | Path,
                   title: str) -> Path:
    """Precision-recall curves at IoU 0.5 per class and their mean, as a PNG.

    Args:
        precision: COCOeval ``eval['precision']`` ``[T, 101, K, A, M]`` (-1 where no GT).
        class_names: K names, in the order of COCOeval's catIds.
        path: output PNG.
        title: e.g. "box" or "mask".
    """
    width, height, margin = 720, 520, 60
    canvas = np.full((height, width, 3), 255, np.uint8)
    plot_w, plot_h = width - 2 * margin - 160, height - 2 * margin
    cv2.rectangle(canvas, (margin, margin), (margin + plot_w, margin + plot_h), _BLACK, 1)
    recall = np.linspace(0, 1, precision.shape[1])
    curves = precision[0, :, :, 0, -1].T  # [K, 101] at IoU 0.5, all areas, most detections

    def to_pixels(values):
        xs = margin + recall * plot_w
        ys = margin + (1 - np.clip(values, 0, 1)) * plot_h
        return np.stack([xs, ys], axis=1).astype(np.int32)

    valid = [k for k in range(curves.shape[0]) if np.all(curves[k] > -1)]
    for k in valid:
        cv2.polylines(canvas, [to_pixels(curves[k])], False, class_colour(k), 1, cv2.LINE_AA)
        ap = float(curves[k].mean())
        cv2.putText(canvas, f"{class_names[k]} {ap:.3f}", (margin + plot_w + 10, margin + 16 * (k + 1)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, class_colour(k), 1, cv2.LINE_AA)
    if valid:
        mean = curves[valid].mean(axis=0)
        cv2.polylines(canvas, [to_pixels(mean)], False, (255, 0, 0), 3, cv2.LINE_AA)
        title = f"{title} PR @ IoU 0.5: mAP50 {mean.mean():.3f} (thick: all classes)"
    cv2.putText(canvas, title, (margin, margin - 20), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "recall", (margin + plot_w // 2 - 20, height - 20), cv2.FONT_HERSHEY_SIMPLEX,
                0.5, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(canvas, "precision", (5, margin - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _BLACK, 1, cv2.LINE_AA)
    return _write(path, canvas)


class ConfusionMatrix:
    """Detection confusion matrix by box IoU, with a background row and column.

    Rows: predicted class (last row: background, i.e. missed ground truth); columns: true
    class (last column: background, i.e. a false positive).

    Args:
        num_classes: C.
        score_threshold: detections below it are not counted.
        iou_threshold: a detection matches a ground-truth box at this IoU or more.
    """

    def __init__(self, num_classes: int, score_threshold: float = 0.25, iou_threshold: float = 0.5):
        self.num_classes = num_classes
        self.score_threshold, self.iou_threshold = score_threshold, iou_threshold
        self.matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)

    def update(self, gt_boxes: np.ndarray, gt_classes: np.ndarray, boxes: np.ndarray,
               classes: np.ndarray, scores: np.ndarray) -> None:
        """Add one image. gt_boxes ``[G, 4]`` / boxes ``[D, 4]`` xyxy in the same pixels."""
        keep = scores >= self.score_threshold
        boxes, classes = boxes[keep], classes[keep]
        background = self.num_classes
        if len(gt_boxes) == 0 or len(boxes) == 0:
            for c in gt_classes:
                self.matrix[background, int(c)] += 1
            for c in classes:
                self.matrix[int(c), background] += 1
            return
        iou = pairwise_iou(tf.constant(boxes, tf.float32), tf.constant(gt_boxes, tf.float32)).numpy()
        # Greedy one-to-one matching, highest IoU first.
        pairs = np.argwhere(iou >= self.iou_threshold)
        pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]
        used_d, used_g = set(), set()
        for d, g in pairs:
            if d in used_d or g in used_g:
                continue
            used_d.add(d); used_g.add(g)
            self.matrix[int(classes[d]), int(gt_classes[g])] += 1
        for g in set(range(len(gt_boxes))) - used_g:
            self.matrix[background, int(gt_classes[g])] += 1
        for d in set(range(len(boxes))) - used_d:
            self.matrix[int(classes[d]), background] += 1

    def plot(self, class_names: list[str], path: str | Path) -> Path:
        """Column-normalized heat map with counts, as a PNG."""
        names = list(class_names) + ["background"]
        n, cell, margin = len(names), 56, 110
        canvas = np.full((margin + n * cell + 20, margin + n * cell + 20, 3), 255, np.uint8)
        totals = np.maximum(self.matrix.sum(axis=0, keepdims=True), 1)
        fraction = self.matrix / totals
        for r in range(n):
            for c in range(n):
                shade = int(255 * (1 - fraction[r, c]))
                top_left = (margin + c * cell, margin + r * cell)
                cv2.rectangle(canvas, top_left, (top_left[0] + cell, top_left[1] + cell),
                              (255, shade, shade), -1)
                colour = _WHITE if fraction[r, c] > 0.5 else _BLACK
                cv2.putText(canvas, str(self.matrix[r, c]), (top_left[0] + 6, top_left[1] + cell // 2 + 5),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
        for i, name in enumerate(names):
            cv2.putText(canvas, name[:12], (5, margin + i * cell + cell // 2 + 5),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, _BLACK, 1, cv2.LINE_AA)
            cv2.putText(canvas, name[:7], (margin + i * cell + 2, margin - 8),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, _BLACK, 1, cv2.LINE_AA)
        cv2.putText(canvas, "rows: predicted, columns: true", (5, 20), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, _BLACK, 1, cv2.LINE_AA)
        return _write(path, canvas)


def _input_mask(detections: dict, b: int, i: int, size: int) -> np.ndarray:
    """``[S, S]`` bool mask of detection (b, i) on the letterboxed input, from ``masks``
    (prototype grid) or ``box_masks`` (m x m spanning the box), float or uint8."""
    from tfseg.postprocess.host import box_mask_to_original

    if "box_masks" in detections:
        box = np.asarray(detections["boxes"][b, i], np.float64)
        crop, (x0, y0) = box_mask_to_original(detections["box_masks"][b, i], box, box, size, size)
        full = np.zeros((size, size), bool)
        full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
        return full
    mask = np.asarray(detections["masks"][b, i], np.float32)
    if detections["masks"].dtype == np.uint8:
        mask = mask / 255.0
    return cv2.resize(mask, (size, size)) > 0.5


def plot_prediction_grid(images: np.ndarray, detections: dict, class_names: list[str],
                         path: str | Path, score_threshold: float = 0.25, columns: int = 4) -> Path:
    """Letterboxed input images with their detections (tinted masks, boxes, labels) in a grid.

    Args:
        images: ``[B, S, S, 3]`` float32 RGB in [0, 1] (the evaluation batch).
        detections: DETECTIONS contract as numpy (input pixels, masks at S/4 or box_masks).
    """
    tiles = []
    size = images.shape[1]
    for b in range(len(images)):
        tile = cv2.cvtColor((np.clip(images[b], 0, 1) * 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
        for i in range(int(detections["num_detections"][b])):
            score = float(detections["scores"][b, i])
            if score < score_threshold:
                continue
            cls = int(detections["classes"][b, i])
            colour = np.array(class_colour(cls), np.float32)
            mask = _input_mask(detections, b, i, size)
            tile[mask] = (0.5 * tile[mask] + 0.5 * colour).astype(np.uint8)
            x1, y1, x2, y2 = (int(round(v)) for v in detections["boxes"][b, i])
            cv2.rectangle(tile, (x1, y1), (x2, y2), class_colour(cls), 1)
            cv2.putText(tile, f"{class_names[cls]} {score:.2f}", (x1, max(y1 - 3, 10)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.35, class_colour(cls), 1, cv2.LINE_AA)
        tiles.append(tile)
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 255))
    rows = [np.concatenate(tiles[i:i + columns], axis=1) for i in range(0, len(tiles), columns)]
    return _write(path, np.concatenate(rows, axis=0))


def _write(path: str | Path, canvas: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write {path}")
    return path


# results.png: the columns of results.csv shown, one panel each (losses, then val metrics).
RESULT_PANELS = ("box_loss", "seg_loss", "cls_loss", "dfl_loss",
                 "val_box_mAP50", "val_box_mAP50-95", "val_mask_mAP50", "val_mask_mAP50-95")


def plot_results(results_csv: str | Path, path: str | Path) -> Path:
    """Training curves from a run's results.csv as one PNG: a panel per loss term and per
    main metric against the epoch (metrics only at evaluated epochs; blank cells skipped).

    Args:
        results_csv: the run's results.csv (header row, one row per epoch).
        path: output PNG (``<run>/results.png``).

    Returns:
        ``path``.
    """
    with open(results_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    panel_w, panel_h, cols = 300, 220, 4
    canvas = np.full((panel_h * 2, panel_w * cols, 3), 255, np.uint8)
    for i, column in enumerate(RESULT_PANELS):
        points = [(float(r["epoch"]) + 1, float(r[column])) for r in rows
                  if r.get(column) not in (None, "", "NA") and np.isfinite(float(r[column]))]
        left, top = (i % cols) * panel_w, (i // cols) * panel_h
        _line_panel(canvas[top:top + panel_h, left:left + panel_w], column, points)
    return _write(path, canvas)


def _line_panel(panel: np.ndarray, title: str, points: list[tuple[float, float]]) -> None:
    """Draw one titled curve (with its y range and last value) into ``panel`` in place."""
    height, width = panel.shape[:2]
    x0, y0, x1, y1 = 45, 30, width - 10, height - 25  # plot area
    cv2.rectangle(panel, (x0, y0), (x1, y1), _GREY, 1)
    label = f"{title}: {points[-1][1]:.4g}" if points else f"{title}: -"
    cv2.putText(panel, label, (x0, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.45, _BLACK, 1, cv2.LINE_AA)
    if not points:
        return
    xs, ys = np.array(points, np.float64).T
    lo, hi = float(ys.min()), float(ys.max())
    span_y, span_x = (hi - lo) or 1.0, (xs.max() - xs.min()) or 1.0
    px = x0 + (xs - xs.min()) / span_x * (x1 - x0)
    py = y1 - (ys - lo) / span_y * (y1 - y0)
    line = np.stack([px, py], axis=1).round().astype(np.int32)
    cv2.polylines(panel, [line], False, (200, 80, 0), 2, cv2.LINE_AA)
    for x, y in line:
        cv2.circle(panel, (int(x), int(y)), 2, (200, 80, 0), -1, cv2.LINE_AA)
    for value, y in ((hi, y0 + 8), (lo, y1)):
        cv2.putText(panel, f"{value:.3g}", (2, y), cv2.FONT_HERSHEY_SIMPLEX, 0.33, _BLACK, 1, cv2.LINE_AA)
    cv2.putText(panel, f"epoch {xs.min():.0f}..{xs.max():.0f}", (x0, height - 8),
                cv2.FONT_HERSHEY_SIMPLEX, 0.35, _BLACK, 1, cv2.LINE_AA)
