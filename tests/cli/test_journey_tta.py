"""Test-time augmentation as a user runs it: ``tfseg val ... augment=true`` and
``tfseg predict ... augment=true save_json=true`` on the shared tiny run, in a fresh folder."""

from __future__ import annotations

import json
import math

import cv2
import pytest
from pycocotools import mask as mask_utils

from cli_runner import run_tfseg as tfseg


@pytest.mark.slow  # the tiny training run, then two tfseg processes
def test_val_and_predict_with_augment(tiny_run, tmp_path):
    root = tiny_run.copy_into(tmp_path)

    tfseg(root, "val", "weights=runs/train/train", "augment=true")
    report = json.loads((root / "runs/val/val/metrics.json").read_text())
    assert report["settings"]["augment"] is True
    for key in ("box/mAP50-95", "mask/mAP50-95", "box/mAP50", "mask/mAP50"):
        assert 0.0 <= report["metrics"][key] <= 1.0 and math.isfinite(report["metrics"][key])
    assert report["metrics"]["images"] == 4
    scored = json.loads((root / "runs/val/val/predictions.json").read_text())
    truth = json.loads((root / "ds/annotations/instances_val.json").read_text())
    assert scored and {r["image_id"] for r in scored} <= {i["id"] for i in truth["images"]}
    assert {r["category_id"] for r in scored} <= {c["id"] for c in truth["categories"]}

    images = {p.stem: p for p in (root / "ds/images/val").iterdir()}
    predicted = tfseg(root, "predict", "weights=runs/train/train", "source=ds/images/val",
                      "augment=true", "save_json=true", "conf=0.0001", "max_det=5")
    assert "results: " in predicted.stdout
    records = json.loads((root / "runs/predict/predict/predictions.json").read_text())
    assert sorted(r["name"] for r in records) == sorted(images)
    for record in records:
        height, width = cv2.imread(str(images[record["name"]])).shape[:2]
        assert (record["height"], record["width"]) == (height, width)
        detections = record["detections"]
        assert 0 < len(detections) <= 5
        scores = [d["score"] for d in detections]
        assert scores == sorted(scores, reverse=True)
        for d in detections:
            x1, y1, x2, y2 = d["box_xyxy"]
            assert 0 <= x1 <= x2 <= width + 0.01 and 0 <= y1 <= y2 <= height + 0.01
            rle = dict(d["mask_rle"], counts=d["mask_rle"]["counts"].encode())
            assert list(rle["size"]) == [height, width]
            assert int(mask_utils.area(rle)) == d["mask_area"]
