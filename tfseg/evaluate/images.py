"""evaluate_images(): COCO metrics of a detector run on a split's ORIGINAL image files.

The tf.data evaluation (tfseg.evaluate.loop) scores the letterboxed batches of the records.
Tiled inference needs the image at its own resolution, so this loop reads each image of the
ground truth from its folder, hands it to ``detect`` (any ``[H, W, 3]`` uint8 RGB ->
ImageDetections function: ``tfseg val tile=...`` passes tfseg.predict.tiles.detect_tiled
bound to its backend) and scores what comes back with the same COCOEvaluator, tables and
files as the tf.data evaluation.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from tfseg.errors import DatasetError
from tfseg.evaluate.coco import COCOEvaluator
from tfseg.evaluate.loop import finish
from tfseg.evaluate.plots import ConfusionMatrix
from tfseg.postprocess.host import ImageDetections


def read_rgb(path: Path) -> np.ndarray:
    """An image file as ``[H, W, 3]`` uint8 RGB; DatasetError naming the file otherwise."""
    data = np.fromfile(str(path), np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DatasetError("image missing or unreadable", file=str(path))
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _ground_truth_boxes(evaluator: COCOEvaluator, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-crowd ground truth of one image: boxes ``[G, 4]`` xyxy pixels, class indices ``[G]``."""
    gt = evaluator.gt
    annotations = gt.loadAnns(gt.getAnnIds(imgIds=[image_id], iscrowd=False))
    annotations = [a for a in annotations if a["category_id"] in evaluator.category_ids]
    boxes = np.array([a["bbox"] for a in annotations], np.float32).reshape(-1, 4)
    boxes[:, 2:] += boxes[:, :2]  # COCO xywh -> xyxy
    classes = np.array([evaluator.category_ids.index(a["category_id"]) for a in annotations],
                       np.int32)
    return boxes, classes


def evaluate_images(detect: Callable[[np.ndarray], ImageDetections], ground_truth: str | Path,
                    image_dir: str | Path, category_ids: list[int],
                    class_names: list[str] | None = None, output_dir: str | Path | None = None,
                    settings: dict | None = None, plots: bool = True,
                    verbose: bool = True) -> dict:
    """COCO box and mask metrics of ``detect`` on every image of the ground truth.

    Args:
        detect: ``[H, W, 3]`` uint8 RGB -> ImageDetections in that image's pixels.
        ground_truth: the split's COCO annotation JSON (original category ids).
        image_dir: the folder its ``file_name`` entries are relative to.
        category_ids: source category id per class index.
        class_names: name per class index (default: the ground truth's category names).
        output_dir: if given, writes metrics.json (``settings`` recorded in it), metrics.txt,
            predictions.json and, with ``plots``, PR curves and the confusion matrix.
        verbose: progress lines and the summary table.

    Returns:
        The flat metrics dict of tfseg.evaluate.loop.evaluate (``box/mAP50-95`` ...,
        ``images``, ``seconds``).
    """
    start = time.perf_counter()
    evaluator = COCOEvaluator(ground_truth, category_ids, class_names)
    confusion = ConfusionMatrix(len(evaluator.class_names))
    image_ids = sorted(evaluator.gt.imgs)
    for count, image_id in enumerate(image_ids, 1):
        record = evaluator.gt.imgs[image_id]
        detections = detect(read_rgb(Path(image_dir) / record["file_name"]))
        evaluator.add(image_id, detections)
        confusion.update(*_ground_truth_boxes(evaluator, image_id), detections.boxes,
                         detections.classes, detections.scores)
        if verbose and (count % 10 == 0 or count == len(image_ids)):
            print(f"val: {count}/{len(image_ids)} images", flush=True)
    return finish(evaluator, confusion, start, output_dir, None, plots, settings or {}, verbose)
