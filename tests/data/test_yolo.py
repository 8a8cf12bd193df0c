"""YOLO-seg round trips and the COCO export of prepared records, scored with pycocotools."""

import contextlib
import io
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from tfseg.data.coco import decode_segmentation
from tfseg.data.prepare import load_split, prepare, records_to_coco
from tfseg.data.yolo import coco_to_yolo, join_polygons, mask_to_polygon, yolo_to_coco
from tfseg.errors import DatasetError


def _iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def _coco_ap(gt_file, results):
    """[AP bbox, AP segm] of ``results`` against ``gt_file``, pycocotools' own numbers."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_file)
        dt = gt.loadRes(results)
        out = []
        for kind in ("bbox", "segm"):
            ev = COCOeval(gt, dt, kind)
            ev.evaluate(), ev.accumulate(), ev.summarize()
            out.append(ev.stats[0])
    return out


def _as_results(coco_json):
    anns = json.load(open(coco_json))["annotations"]
    return [dict(a, score=1.0) for a in anns if not a["iscrowd"]]


def test_polygon_of_a_square_with_a_hole_rasterizes_back_exactly():
    mask = np.zeros((20, 20), np.uint8)
    mask[4:16, 3:15] = 1
    mask[8:12, 7:11] = 0
    poly = mask_to_polygon(mask)
    np.testing.assert_array_equal(decode_segmentation([poly.reshape(-1).tolist()], 20, 20), mask)


def test_joined_parts_keep_both_parts():
    a = np.array([[0, 0], [4, 0], [4, 4], [0, 4]], float)
    b = np.array([[10, 10], [14, 10], [14, 14], [10, 14]], float)
    mask = decode_segmentation([join_polygons([a, b]).reshape(-1).tolist()], 16, 16)
    assert mask.sum() == 32 and mask[0:4, 0:4].all() and mask[10:14, 10:14].all()


@pytest.fixture(scope="module")
def yolo_round_trip(shapes_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("yolo")
    export = coco_to_yolo(shapes_dataset["train_images"], shapes_dataset["train_annotations"],
                          str(root), "train")
    back = yolo_to_coco(export["data_yaml"], "train", str(root / "coco_train.json"))
    return export, back


def test_yolo_import_agrees_with_the_original_masks(shapes_dataset, yolo_round_trip):
    export, back = yolo_round_trip
    original = COCO(shapes_dataset["train_annotations"])
    crowds = len(original.getAnnIds(iscrowd=True))
    assert export["crowds_left_out"] == crowds > 0
    assert back["instances"] == len(original.getAnnIds()) - crowds and back["skipped"] == {}
    imported = COCO(back["annotation_file"])
    by_name = {im["file_name"]: im["id"] for im in imported.dataset["images"]}
    ious = []
    for img in original.dataset["images"]:
        orig = original.loadAnns(original.getAnnIds(imgIds=[img["id"]], iscrowd=False))
        new = imported.loadAnns(imported.getAnnIds(imgIds=[by_name[img["file_name"]]]))
        assert [a["category_id"] for a in new] == [a["category_id"] for a in orig]
        ious += [_iou(original.annToMask(a), imported.annToMask(b)) for a, b in zip(orig, new)]
    assert min(ious) > 0.9, min(ious)
    assert [c["id"] for c in imported.dataset["categories"]] == [1, 3, 7]


def test_yolo_import_prepares_into_records_and_scores_at_iou_half(shapes_dataset, yolo_round_trip,
                                                                  tmp_path):
    _, back = yolo_round_trip
    summary = prepare(back["images_dir"], back["annotation_file"], str(tmp_path), splits=["train"],
                      num_workers=0, verbose=False)
    assert summary["splits"]["train"]["images"] == 16
    _, info = load_split(str(tmp_path), "train")
    assert info["category_ids"] == [1, 3, 7]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(shapes_dataset["train_annotations"])
        dt = gt.loadRes([dict(a, score=1.0, image_id=a["image_id"]) for a in
                         _remap_image_ids(back["annotation_file"], gt)])
        ev = COCOeval(gt, dt, "segm")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5: every instance found


def _remap_image_ids(coco_json, gt):
    data = json.load(open(coco_json))
    name_to_gt = {im["file_name"]: im["id"] for im in gt.dataset["images"]}
    id_to_gt = {im["id"]: name_to_gt[im["file_name"]] for im in data["images"]}
    return [dict(a, image_id=id_to_gt[a["image_id"]]) for a in data["annotations"]]


def test_records_exported_to_coco_score_map_one(shapes_dataset, prepared_shapes, tmp_path):
    _, data_dir = prepared_shapes
    out = records_to_coco(data_dir, "train", str(tmp_path / "export.json"))
    original = json.load(open(shapes_dataset["train_annotations"]))
    assert out["instances"] == len(original["annotations"])
    ap_box, ap_segm = _coco_ap(shapes_dataset["train_annotations"], _as_results(out["annotation_file"]))
    assert ap_box == pytest.approx(1.0) and ap_segm == pytest.approx(1.0)


def test_perfect_predictions_minus_one_score_below_one(shapes_dataset, prepared_shapes, tmp_path):
    """The mAP check can fail: dropping one instance lowers it."""
    _, data_dir = prepared_shapes
    out = records_to_coco(data_dir, "train", str(tmp_path / "export.json"))
    results = _as_results(out["annotation_file"])[1:]
    assert _coco_ap(shapes_dataset["train_annotations"], results)[1] < 1.0


def test_bad_label_lines_are_counted_with_file_and_line(tmp_path, shapes_dataset):
    export = coco_to_yolo(shapes_dataset["val_images"], shapes_dataset["val_annotations"],
                          str(tmp_path), "val")
    label = sorted((tmp_path / "labels" / "val").glob("*.txt"))[0]
    label.write_text("0 0.1 0.1 0.5 0.1 0.5 0.5\n9 0.1 0.1 0.5 0.1 0.5 0.5\n"
                     "1 0.1 0.2 0.3 0.4\n2 0.1 0.1 1.5 0.1 0.5 0.5\nx y\n1 0.1 0.1 0.2\n")
    back = yolo_to_coco(export["data_yaml"], "val", str(tmp_path / "val.json"))
    assert {r: v["count"] for r, v in back["skipped"].items()} == {
        "class index out of range": 1, "box-only label (detection, not segmentation)": 1,
        "normalized coordinates outside [0, 1]": 1, "label line is not numbers": 1,
        "polygon with fewer than 3 points": 1}
    assert back["skipped"]["class index out of range"]["examples"] == ["line 2 (class)"]
    with pytest.raises(DatasetError, match="line 2"):
        yolo_to_coco(export["data_yaml"], "val", str(tmp_path / "v2.json"), strict=True)
    assert os.path.isfile(export["data_yaml"])
