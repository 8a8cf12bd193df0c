"""COCOEvaluator against hand-worked COCO answers and pycocotools itself on the same JSON."""

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tfseg.errors import DatasetError
from tfseg.evaluate.coco import COCOEvaluator
from tfseg.postprocess.host import ImageDetections

CATEGORY_IDS = [3, 7]  # class index 0 -> category 3 ("disc"), 1 -> category 7 ("star")
ONE_CLASS_MISSING = 51 / 101  # precision 1 up to recall 0.5, then nothing: 51 of 101 recall points
# image id -> (height, width); annotation id -> (image, category, x1, y1, x2, y2)
IMAGES = {11: (160, 160), 12: (80, 100)}
OBJECTS = {
    1: (11, 3, 10, 20, 130, 120),   # large (12000 px)
    2: (11, 7, 140, 140, 155, 155),  # small (225 px)
    3: (12, 3, 10, 10, 50, 50),      # medium (1600 px)
    4: (12, 7, 60, 20, 90, 60),      # medium (1200 px)
}
CROWD = (12, 3, 0, 60, 20, 80)


def uncompressed_rle(mask):
    """COCO uncompressed RLE: run lengths of the column-major pixels, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"size": list(mask.shape), "counts": np.diff(np.concatenate([[0], changes])).tolist()}


@pytest.fixture(scope="module")
def gt_path(tmp_path_factory):
    annotations = []
    for ann_id, (image, cat, x1, y1, x2, y2) in OBJECTS.items():
        annotations.append({"id": ann_id, "image_id": image, "category_id": cat, "iscrowd": 0,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                            "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
    image, cat, x1, y1, x2, y2 = CROWD
    crowd = np.zeros(IMAGES[image], np.uint8)
    crowd[y1:y2, x1:x2] = 1
    annotations.append({"id": 99, "image_id": image, "category_id": cat, "iscrowd": 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1], "area": int(crowd.sum()),
                        "segmentation": uncompressed_rle(crowd)})
    data = {"images": [{"id": i, "height": h, "width": w, "file_name": f"{i}.png"}
                       for i, (h, w) in IMAGES.items()],
            "categories": [{"id": 3, "name": "disc"}, {"id": 7, "name": "star"}],
            "annotations": annotations}
    path = tmp_path_factory.mktemp("gt") / "instances.json"
    path.write_text(json.dumps(data))
    return path


def detections(gt, image, entries):
    """ImageDetections from (annotation id, score, dx) entries: the GT mask and box, shifted by dx."""
    height, width = IMAGES[image]
    boxes, scores, classes, crops = [], [], [], []
    for ann_id, score, dx in entries:
        ann = gt.anns[ann_id]
        x, y, w, h = ann["bbox"]
        boxes.append([x + dx, y, x + w + dx, y + h])
        scores.append(score)
        classes.append(CATEGORY_IDS.index(ann["category_id"]))
        crops.append(np.roll(gt.annToMask(ann).astype(bool), dx, axis=1))
    return ImageDetections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                           np.array(classes, np.int32), crops, np.zeros((len(crops), 2), np.int32),
                           height, width)


def evaluate(gt_path, per_image):
    evaluator = COCOEvaluator(gt_path, CATEGORY_IDS)
    for image, entries in per_image.items():
        evaluator.add(image, detections(evaluator.gt, image, entries))
    return evaluator, evaluator.result()


def pycocotools_stats(gt_path, results_path, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        coco_eval = COCOeval(gt, gt.loadRes(str(results_path)), iou_type)
        coco_eval.evaluate(); coco_eval.accumulate(); coco_eval.summarize()
    return coco_eval.stats


def test_perfect_predictions_score_one_everywhere(gt_path, tmp_path):
    evaluator, metrics = evaluate(gt_path, {11: [(1, 1.0, 0), (2, 1.0, 0)], 12: [(3, 1.0, 0), (4, 1.0, 0)]})
    assert len(metrics) == 14
    for name, value in metrics.items():
        assert value == pytest.approx(1.0), name
    assert evaluator.per_class() == {n: {"box/AP50-95": 1.0, "box/AP50": 1.0, "mask/AP50-95": 1.0,
                                         "mask/AP50": 1.0} for n in ("disc", "star")}
    results = json.loads(evaluator.write_results(tmp_path / "pred.json").read_text())
    assert sorted(r["category_id"] for r in results) == [3, 3, 7, 7]  # original ids
    assert {"size", "counts"} <= set(results[0]["segmentation"])


def test_dropped_prediction_halves_that_class(gt_path, tmp_path):
    evaluator, metrics = evaluate(gt_path, {11: [(1, 1.0, 0), (2, 1.0, 0)], 12: [(3, 1.0, 0)]})
    for prefix in ("box", "mask"):
        assert metrics[f"{prefix}/mAP50-95"] == pytest.approx((1 + ONE_CLASS_MISSING) / 2)
        assert metrics[f"{prefix}/mAP_small"] == pytest.approx(1.0)
        assert metrics[f"{prefix}/mAP_medium"] == pytest.approx(0.5)  # star's medium GT missed
        assert metrics[f"{prefix}/mAP_large"] == pytest.approx(1.0)
    assert evaluator.per_class()["star"]["box/AP50"] == pytest.approx(ONE_CLASS_MISSING)


def test_shifted_prediction_matches_only_low_iou_thresholds(gt_path, tmp_path):
    # Large disc shifted 28 px: box IoU 92 / 148 = 0.62, a match at thresholds 0.50, 0.55, 0.60.
    evaluator, metrics = evaluate(gt_path, {11: [(1, 0.5, 28), (2, 1.0, 0)], 12: [(3, 1.0, 0), (4, 1.0, 0)]})
    disc = (3 * 1.0 + 7 * ONE_CLASS_MISSING) / 10
    assert metrics["box/mAP50-95"] == pytest.approx((disc + 1) / 2)
    assert metrics["box/mAP50"] == pytest.approx(1.0)
    assert metrics["box/mAP75"] == pytest.approx((ONE_CLASS_MISSING + 1) / 2)
    assert metrics["box/mAP_large"] == pytest.approx(0.3)  # only the disc is large
    # The same numbers as pycocotools on our results JSON, for boxes and masks.
    results = evaluator.write_results(tmp_path / "pred.json")
    for iou_type, prefix in (("bbox", "box"), ("segm", "mask")):
        stats = pycocotools_stats(gt_path, results, iou_type)
        assert metrics[f"{prefix}/mAP50-95"] == pytest.approx(stats[0])
        assert metrics[f"{prefix}/mAP75"] == pytest.approx(stats[2])
    assert metrics["mask/mAP50-95"] < 1.0


def test_detection_on_a_crowd_region_is_ignored_but_elsewhere_is_a_false_positive(gt_path):
    on_crowd = _extra(CROWD[2:])
    elsewhere = _extra((70, 62, 90, 78))
    for extra, disc_ap50 in ((on_crowd, 1.0), (elsewhere, 2 / 3)):
        evaluator = COCOEvaluator(gt_path, CATEGORY_IDS)
        evaluator.add(11, detections(evaluator.gt, 11, [(1, 0.9, 0), (2, 0.9, 0)]))
        image = detections(evaluator.gt, 12, [(3, 0.9, 0), (4, 0.9, 0)])
        image.boxes = np.concatenate([image.boxes, [extra[0]]]).astype(np.float32)
        image.scores = np.append(image.scores, 1.0).astype(np.float32)
        image.classes = np.append(image.classes, 0).astype(np.int32)
        image.mask_crops.append(extra[1])
        image.mask_origins = np.zeros((3, 2), np.int32)
        evaluator.add(12, image)
        metrics = evaluator.result()
        # Disc: the extra detection ranks first; as a false positive precision is 2/3 at
        # every recall level; on the crowd region COCOeval ignores it.
        for prefix in ("box", "mask"):
            assert metrics[f"{prefix}/mAP50"] == pytest.approx((disc_ap50 + 1) / 2), prefix


def _extra(box):
    x1, y1, x2, y2 = box
    mask = np.zeros(IMAGES[12], bool)
    mask[y1:y2, x1:x2] = True
    return [x1, y1, x2, y2], mask


def test_no_detections_give_zero_and_bad_inputs_raise(gt_path, tmp_path):
    evaluator = COCOEvaluator(gt_path, CATEGORY_IDS)
    evaluator.add(11, detections(evaluator.gt, 11, []))
    assert set(evaluator.result().values()) == {0.0}
    with pytest.raises(DatasetError, match="image id 5"):
        evaluator.add(5, detections(evaluator.gt, 11, []))
    with pytest.raises(DatasetError, match="category ids"):
        COCOEvaluator(gt_path, [3, 8])
    with pytest.raises(DatasetError, match="not found"):
        COCOEvaluator(tmp_path / "missing.json", CATEGORY_IDS)
