"""A user with large images, as they type it: generate a set of large shapes images, predict
on them in tiles, evaluate in tiles (the installed ``tfseg``, three commands, the shared
tiny run's weights)."""

import json

import numpy as np
import pytest
import yaml
from pycocotools import mask as mask_utils

from cli_runner import run_tfseg

SIZE = 600  # "large" next to the tiny run's 64 px input: 12 x 12 tiles of 64 px


@pytest.mark.slow  # the tiny training run, then three tfseg processes
def test_tiled_predict_and_val_on_large_images(tiny_run, tmp_path):
    tiny_run.copy_into(tmp_path)
    run_tfseg(tmp_path, "data", "shapes", "--output", "big", "shapes_train=1", "shapes_val=2",
              f"shapes_min_size={SIZE}", f"shapes_max_size={SIZE}", "shapes_objects=25")
    truth = json.loads((tmp_path / "big/annotations/instances_val.json").read_text())
    assert len(truth["images"]) == 2 and len(truth["annotations"]) >= 30

    # A barely trained model scores low: a low threshold keeps detections to check.
    run_tfseg(tmp_path, "predict", "weights=runs/train/train", "source=big/images/val",
              "tile=64", "tile_overlap=0.2", "save_json=true", "conf=0.001", "max_det=40")
    out = tmp_path / "runs/predict/predict"
    assert yaml.safe_load((out / "config.yaml").read_text())["predict"]["tile"] == 64
    records = json.loads((out / "predictions.json").read_text())
    assert len(records) == 2 and sorted(p.name for p in out.glob("*.jpg")) == ["000000.jpg", "000001.jpg"]
    found = 0
    for record in records:
        assert (record["height"], record["width"]) == (SIZE, SIZE)
        assert len(record["detections"]) <= 40
        for item in record["detections"]:
            x1, y1, x2, y2 = item["box_xyxy"]
            assert 0 <= x1 < x2 <= SIZE and 0 <= y1 < y2 <= SIZE
            mask = mask_utils.decode(item["mask_rle"])
            assert mask.shape == (SIZE, SIZE) and mask.sum() == item["mask_area"]
            rows, cols = np.nonzero(mask)
            if rows.size:  # the mask lies in its box (a merged box is the union of its parts')
                assert x1 - 1 <= cols.min() and cols.max() < x2 + 1
                assert y1 - 1 <= rows.min() and rows.max() < y2 + 1
            found += 1
    assert found > 0

    # The run's config names its own dataset's files: the large set's are given instead.
    shown = run_tfseg(tmp_path, "val", "weights=runs/train/train", "data.root=big",
                      "data.val_images=images/val",
                      "data.val_annotations=annotations/instances_val.json", "tile=64",
                      "tile_overlap=0.25")
    assert "tiles of 64 px" in shown.stdout
    report = json.loads((tmp_path / "runs/val/val/metrics.json").read_text())
    assert report["settings"]["tile"] == 64 and report["settings"]["tile_overlap"] == 0.25
    assert report["metrics"]["images"] == 2.0
    for name in ("box/mAP50-95", "mask/mAP50-95", "mask/mAP_small"):
        assert -1.0 <= report["metrics"][name] <= 1.0
    results = json.loads((tmp_path / "runs/val/val/predictions.json").read_text())
    assert results and {r["image_id"] for r in results} <= {1, 2}
    for r in results:
        x, y, w, h = r["bbox"]
        assert x >= 0 and y >= 0 and x + w <= SIZE + 0.01 and y + h <= SIZE + 0.01
        assert r["segmentation"]["size"] == [SIZE, SIZE]
