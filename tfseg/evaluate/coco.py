"""COCO metrics through pycocotools: box and mask mAP, per-class AP, results JSON.

Predictions are added per image in original pixels (tfseg.postprocess.host.ImageDetections)
and written in the COCO results format with the dataset's ORIGINAL category ids and RLE
masks; pycocotools' COCOeval does all the matching (crowd regions included).
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tfseg.errors import DatasetError
from tfseg.postprocess.host import ImageDetections, encode_rle

IOU_TYPES = {"bbox": "box", "segm": "mask"}
# Index into COCOeval.stats -> our metric name.
STAT_NAMES = {0: "mAP50-95", 1: "mAP50", 2: "mAP75", 3: "mAP_small", 4: "mAP_medium",
              5: "mAP_large", 8: "AR100"}


def load_ground_truth(path: str | Path) -> COCO:
    """Load a COCO annotation file quietly; a missing or invalid file raises DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError("ground-truth annotation file not found", file=str(path))
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return COCO(str(path))
    except (ValueError, KeyError, TypeError) as error:
        raise DatasetError(f"not a COCO annotation file ({error})", file=str(path)) from error


def detection_results(image_id: int, detections: ImageDetections,
                      category_ids: list[int]) -> list[dict]:
    """COCO results entries (bbox xywh, score, RLE segmentation) of one image."""
    rles = encode_rle(detections)
    results = []
    for i, rle in enumerate(rles):
        x1, y1, x2, y2 = (float(v) for v in detections.boxes[i])
        results.append({
            "image_id": int(image_id),
            "category_id": int(category_ids[int(detections.classes[i])]),
            "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
            "score": round(float(detections.scores[i]), 5),
            "segmentation": rle,
        })
    return results


class COCOEvaluator:
    """Accumulates detections per image and computes COCO box and mask metrics.

    Args:
        ground_truth: path of the COCO annotation JSON of the evaluated split.
        category_ids: source category id of each contiguous class index (index order).
        class_names: name of each class index (for per-class AP); defaults to the
            category names of the ground truth.

    Example:
        >>> evaluator = COCOEvaluator("val.json", category_ids=[1, 3])
        >>> evaluator.add(image_id, image_detections)
        >>> metrics = evaluator.result()
    """

    def __init__(self, ground_truth: str | Path, category_ids: list[int],
                 class_names: list[str] | None = None):
        self.gt = load_ground_truth(ground_truth)
        self.ground_truth_path = str(ground_truth)
        self.category_ids = [int(c) for c in category_ids]
        missing = [c for c in self.category_ids if c not in self.gt.cats]
        if missing:
            raise DatasetError(f"category ids {missing} are not in the ground truth",
                               file=self.ground_truth_path, field="categories")
        self.class_names = list(class_names) if class_names else [
            self.gt.cats[c]["name"] for c in self.category_ids]
        self.reset()

    def reset(self) -> None:
        """Forget every detection added so far."""
        self.results: list[dict] = []
        self.image_ids: set[int] = set()
        self.evals: dict[str, COCOeval] = {}
        self.summary_text = ""

    def add(self, image_id: int, detections: ImageDetections) -> None:
        """Add the detections of one image (original pixels)."""
        if int(image_id) not in self.gt.imgs:
            raise DatasetError(f"image id {image_id} is not in the ground truth",
                               file=self.ground_truth_path, record=f"image id {image_id}")
        self.image_ids.add(int(image_id))
        self.results.extend(detection_results(image_id, detections, self.category_ids))

    def result(self) -> dict[str, float]:
        """Run COCOeval (bbox and segm) on the images added; flat dict of metrics.

        Returns:
            ``{"box/mAP50-95": ..., "box/mAP50": ..., "mask/mAP50-95": ..., ...}``: COCO
            stats (-1 where no ground truth falls in the area range); zeros when there are
            no detections at all.
        """
        metrics, summaries = {}, []
        for iou_type, prefix in IOU_TYPES.items():
            stats = self._run(iou_type, summaries)
            for index, name in STAT_NAMES.items():
                metrics[f"{prefix}/{name}"] = float(stats[index])
        self.summary_text = "\n".join(summaries)
        return metrics

    def _run(self, iou_type: str, summaries: list[str]) -> np.ndarray:
        if not self.results:
            self.evals.pop(iou_type, None)
            return np.zeros(12)
        with contextlib.redirect_stdout(io.StringIO()) as captured:
            detections = self.gt.loadRes(self._results_for(iou_type))
            coco_eval = COCOeval(self.gt, detections, iou_type)
            coco_eval.params.imgIds = sorted(self.image_ids)
            coco_eval.params.catIds = sorted(self.category_ids)
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        summaries.append(f"{IOU_TYPES[iou_type]} ({iou_type}):\n{captured.getvalue().strip()}")
        self.evals[iou_type] = coco_eval
        return coco_eval.stats

    def _results_for(self, iou_type: str) -> list[dict]:
        # COCOeval derives areas from the bbox for "bbox" and from the RLE for "segm".
        if iou_type == "bbox":
            return [{k: v for k, v in r.items() if k != "segmentation"} for r in self.results]
        return [dict(r) for r in self.results]

    def per_class(self) -> dict[str, dict[str, float | None]]:
        """AP50-95 and AP50 per class (box and mask), after :meth:`result`; None without GT."""
        table = {}
        for index, name in enumerate(self.class_names):
            row = {}
            for iou_type, prefix in IOU_TYPES.items():
                coco_eval = self.evals.get(iou_type)
                row[f"{prefix}/AP50-95"] = self._class_ap(coco_eval, index, None)
                row[f"{prefix}/AP50"] = self._class_ap(coco_eval, index, 0)
            table[name] = row
        return table

    def _class_ap(self, coco_eval: COCOeval | None, index: int, iou_index: int | None):
        if coco_eval is None:
            return 0.0
        k = coco_eval.params.catIds.index(self.category_ids[index])
        # precision: [T iou thresholds, R recall points, K classes, A areas, M max dets];
        # area "all" is 0, maxDets 100 is the last; -1 marks "no ground truth".
        precision = coco_eval.eval["precision"][:, :, k, 0, -1]
        if iou_index is not None:
            precision = precision[iou_index]
        valid = precision[precision > -1]
        return float(valid.mean()) if valid.size else None

    def write_results(self, path: str | Path) -> Path:
        """Write the COCO results JSON (all detections added) to ``path``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.results))
        return path
