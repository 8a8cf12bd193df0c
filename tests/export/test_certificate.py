"""The parity certificate measures real accuracy: a faithful file keeps the Keras model's
mAP, a badly quantized one loses it and the check refuses it.

The validation ground truth here is the network's own detections on the shapes val images
(written as COCO annotations), so the Keras model scores near the top (box mAP50-95 1.0,
mask 0.955) and every point a file loses is its own doing. The int8 file is calibrated on black images only: its
activation ranges are far too narrow for real ones.
"""

import json

import numpy as np
import pytest

from tfseg.errors import ExportError

pytestmark = pytest.mark.slow  # exports each file it scores


@pytest.fixture(scope="module")
def check(network, shapes, settings, tmp_path_factory):
    """A ParityCheck on the val records, scored against the network's own detections."""
    from pycocotools import mask as mask_utils

    from tfseg.data.prepare import prepare
    from tfseg.evaluate.loop import evaluate
    from tfseg.export.certificate import ParityCheck
    from tfseg.pipeline.dataset import build_dataset
    from tfseg.predict.backends import KerasBackend

    root = tmp_path_factory.mktemp("certificate")
    summary = prepare(shapes["val_images"], [shapes["val_annotations"]], str(root / "records"),
                      splits=["val"], num_workers=0, verbose=False)
    ids = summary["category_ids"]
    dataset = build_dataset(str(root / "records"), "val", settings.size, 1, training=False)
    keras = KerasBackend(network, settings.conf, settings.iou, settings.max_det)
    evaluate(keras, dataset, shapes["val_annotations"], ids, output_dir=root / "keras",
             plots=False, verbose=False)
    results = json.loads((root / "keras" / "predictions.json").read_text())
    assert len(results) >= 4  # enough detections for the mAP to mean something
    truth = json.loads(open(shapes["val_annotations"]).read())
    truth["annotations"] = [
        {"id": i + 1, "image_id": r["image_id"], "category_id": r["category_id"],
         "bbox": r["bbox"], "segmentation": r["segmentation"], "iscrowd": 0,
         "area": float(mask_utils.area(r["segmentation"]))} for i, r in enumerate(results)]
    path = root / "own_detections.json"
    path.write_text(json.dumps(truth))
    return ParityCheck(str(root / "records"), str(path), ids, images=4, max_drop=1.0)


def _thresholds(settings) -> dict:
    return {"score_threshold": settings.conf, "iou_threshold": settings.iou,
            "max_detections": settings.max_det, "agnostic": False}


def test_float32_files_keep_the_keras_map_and_pass(network, exported, check, settings,
                                                   tmp_path):
    from tfseg.export.certificate import certify, enforce

    # The folder's shared export (tests/export/conftest.py), made with these thresholds.
    written = {key: exported[key] for key in ("tflite_float32", "tflite_raw_float32")}
    certificate = certify(network, written, check, _thresholds(settings))
    # Its own detections as ground truth: box mAP 1.0 and mask mAP 0.955 as measured here (why
    # mask falls short of 1 was not looked into; the bound only needs a model that detects).
    assert certificate["keras"]["mask_mAP50-95"] > 0.9
    for key in ("tflite_float32", "tflite_raw_float32"):
        entry = certificate["artifacts"][key]
        assert entry["passed"] and abs(entry["mask_drop_points"]) < 0.5, entry
    assert max(certificate["artifacts"]["tflite_raw_float32"]["max_abs_raw_diff"].values()) < 1e-3
    assert certificate["artifacts"]["tflite_float32"]["max_box_diff_px"] < 1e-2
    enforce(certificate, tmp_path)  # passes: no exception


def test_badly_calibrated_int8_loses_map_and_fails_the_export(network, check, settings,
                                                              tmp_path):
    from tfseg.export import export
    from tfseg.export.certificate import certify, enforce, record
    from tfseg.export.metadata import read_tflite_metadata

    def black():
        return (np.zeros((settings.size, settings.size, 3), np.uint8) for _ in range(2))

    written = export(tmp_path, model=network, image_size=settings.size, formats=["tflite"],
                     tflite_modes=["int8"], raw=False, calibration=black,
                     score_threshold=settings.conf, iou_threshold=settings.iou,
                     max_detections=settings.max_det)
    certificate = certify(network, written, check, _thresholds(settings))
    entry = certificate["artifacts"]["tflite_int8"]
    assert entry["mask_drop_points"] > 1.0 and not entry["passed"], entry
    record(certificate, written)
    assert read_tflite_metadata(written["tflite_int8"])["parity"]["passed"] is False
    assert written["tflite_int8"].read_bytes().count(b'"model_name"') == 1  # rewritten, not added
    with pytest.raises(ExportError, match=r"int8\.tflite has mask mAP50-95 .* against the "
                                          r"Keras model's .* at most 1 point\(s\) allowed"):
        enforce(certificate, tmp_path)


def test_a_boxes_only_file_is_listed_not_scored(network, check, settings,
                                               tmp_path_factory):
    # A standard-outputs file (the object detectors' four outputs) has no masks to score: it
    # is listed as not scored, and the export is not failed for it.
    from shared_exports import shared_export
    from tfseg.export.certificate import certify, format_table

    standard = shared_export(tmp_path_factory, "standard-outputs", network)
    certificate = certify(network, standard, check, _thresholds(settings))
    assert "no masks" in certificate["artifacts"]["tflite_float32"]["skipped"]
    assert certificate["passed"]
    assert "not scored" in format_table(certificate)
