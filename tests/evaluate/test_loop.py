"""evaluate(): pipeline batches -> PostProcess -> host -> COCOeval, files written.

A fixed-output Keras model (its raw outputs decode to known boxes and masks, whatever the
image) plays a perfect detector; the ground truth is written to match it.
"""

import json

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfseg.contracts import num_anchors, proto_size
from tfseg.evaluate.loop import evaluate
from tfseg.pipeline.dataset import build_dataset

SIZE, CLASSES, REG_MAX = 64, 2, 16
CATEGORY_IDS = [5, 9]


class FixedOutputs(keras.Model):
    """Returns the same raw outputs for every image: one confident class-1 detection whose
    box is (4, 4, 20, 28) in input pixels (anchor 0, DFL distances 0, 0, 2, 3 bins) and whose
    mask fills that box."""

    def __init__(self):
        super().__init__()
        a, p = num_anchors(SIZE), proto_size(SIZE)
        box = np.zeros((1, a, 4, REG_MAX), np.float32)
        box[0, :, :, 0] = 60.0  # zero distance everywhere...
        box[0, 0] = 0.0
        box[0, 0, np.arange(4), [0, 0, 2, 3]] = 60.0  # ...except anchor 0
        cls = np.full((1, a, CLASSES), -10.0, np.float32)
        cls[0, 0, 1] = 6.0
        coef = np.zeros((1, a, 32), np.float32)
        coef[0, 0, 0] = 1.0
        protos = np.zeros((1, p, p, 32), np.float32)
        protos[..., 0] = 10.0
        self.raw = {"box_logits": box.reshape(1, a, -1), "class_logits": cls,
                    "mask_coefficients": coef, "prototypes": protos}

    def call(self, images, training=False):
        batch = tf.shape(images)[0]
        return {k: tf.tile(tf.constant(v), [batch] + [1] * (v.ndim - 1)) for k, v in self.raw.items()}


def record(image_id, size, rect):
    image = np.full((size, size, 3), 40, np.uint8)
    mask = np.zeros((1, size, size, 1), np.uint8)
    x1, y1, x2, y2 = rect
    image[y1:y2, x1:x2] = 200
    mask[0, y1:y2, x1:x2] = 1
    return {"image": image, "image_id": np.int64(image_id),
            "objects": {"class": np.array([1], np.int64), "bbox": np.array([rect], np.float32),
                        "is_crowd": np.array([False]), "mask": mask}}


# Image 1 is 64 x 64 (identity letterbox); image 2 is 128 x 128 (scale 0.5), so the same
# input box (4, 4, 20, 28) is (8, 8, 40, 56) in its original pixels.
RECORDS = [record(1, 64, (4, 4, 20, 28)), record(2, 128, (8, 8, 40, 56))]


@pytest.fixture(scope="module")
def ground_truth(tmp_path_factory):
    anns = []
    for r in RECORDS:
        x1, y1, x2, y2 = (float(v) for v in r["objects"]["bbox"][0])
        anns.append({"id": int(r["image_id"]), "image_id": int(r["image_id"]), "category_id": 9,
                     "iscrowd": 0, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1),
                     "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]})
    data = {"images": [{"id": int(r["image_id"]), "height": r["image"].shape[0],
                        "width": r["image"].shape[1], "file_name": f"{int(r['image_id'])}.png"} for r in RECORDS],
            "categories": [{"id": 5, "name": "circle"}, {"id": 9, "name": "square"}],
            "annotations": anns}
    path = tmp_path_factory.mktemp("gt") / "val.json"
    path.write_text(json.dumps(data))
    return path


def dataset(batch_size):
    signature = {"image": tf.TensorSpec([None, None, 3], tf.uint8), "image_id": tf.TensorSpec([], tf.int64),
                 "objects": {"class": tf.TensorSpec([None], tf.int64), "bbox": tf.TensorSpec([None, 4], tf.float32),
                             "is_crowd": tf.TensorSpec([None], tf.bool),
                             "mask": tf.TensorSpec([None, None, None, 1], tf.uint8)}}
    records = tf.data.Dataset.from_generator(lambda: iter(RECORDS), output_signature=signature)
    return build_dataset(records, "val", SIZE, batch_size, max_instances=4, training=False)


def test_perfect_detector_scores_one_and_writes_files(ground_truth, tmp_path):
    # Batch 4 with 2 images: filler elements (image id -1) must be skipped.
    metrics = evaluate(FixedOutputs(), dataset(4), ground_truth, CATEGORY_IDS,
                       output_dir=tmp_path, verbose=False)
    assert metrics["images"] == 2
    # The box is exact; the mask loses its corner pixels to bilinear upsampling
    # (IoU 380 / 384 at 64 px, above 0.95), so every threshold still matches.
    for name in ("box/mAP50-95", "box/mAP50", "mask/mAP50-95", "mask/mAP75"):
        assert metrics[name] == pytest.approx(1.0), name
    assert metrics["box/mAP_large"] == -1.0  # no large ground truth: COCO's "absent"
    predictions = json.loads((tmp_path / "predictions.json").read_text())
    assert sorted(p["image_id"] for p in predictions) == [1, 2]
    assert {p["category_id"] for p in predictions} == {9}
    boxes = {p["image_id"]: p["bbox"] for p in predictions}
    np.testing.assert_allclose(boxes[2], [8, 8, 32, 48], atol=1e-3)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["per_class"]["square"]["mask/AP50-95"] == pytest.approx(1.0)
    assert saved["per_class"]["circle"]["box/AP50"] is None  # no ground truth for it
    assert "square" in (tmp_path / "metrics.txt").read_text()
    for png in ("pr_curve_box.png", "pr_curve_mask.png", "confusion_matrix.png", "predictions_grid.png"):
        assert cv2.imread(str(tmp_path / png)) is not None, png
    grid = cv2.imread(str(tmp_path / "predictions_grid.png"))
    assert grid.shape == (SIZE, 4 * SIZE, 3)


@pytest.mark.slow  # a real network traced and evaluated
def test_real_model_runs_end_to_end(ground_truth):
    from tfseg.model.yolo_seg import build_model

    model = build_model("yolov8-seg-n", num_classes=CLASSES, image_size=SIZE)
    metrics = evaluate(model, dataset(2), ground_truth, CATEGORY_IDS, conf=0.001, max_det=20,
                       verbose=False)
    assert metrics["images"] == 2
    for key, value in metrics.items():
        assert np.isfinite(value) and (key in ("images", "seconds") or -1.0 <= value <= 1.0)


class PixelBackend:
    """An exported model's interface (tfseg.predict.backends): uint8 letterboxed pixels in,
    DETECTIONS out, thresholds fixed; runs the same raw outputs through PostProcess."""

    image_size = SIZE

    def __init__(self):
        from tfseg.postprocess import PostProcess

        self.model, self.post, self.inputs = FixedOutputs(), PostProcess(0.001, 0.7, 10), []

    def detect(self, images):
        self.inputs.append(images)
        return {k: v.numpy() for k, v in self.post(self.model(tf.constant(images))).items()}


def test_an_exported_backend_is_scored_on_uint8_pixels_like_the_keras_model(ground_truth):
    backend = PixelBackend()
    metrics = evaluate(backend, dataset(2), ground_truth, CATEGORY_IDS, plots=False, verbose=False)
    assert metrics["images"] == 2
    assert metrics["box/mAP50-95"] == pytest.approx(1.0)
    assert metrics["mask/mAP50-95"] == pytest.approx(1.0)
    pixels = backend.inputs[0]
    assert pixels.dtype == np.uint8 and pixels.shape == (2, SIZE, SIZE, 3)
    assert pixels.max() == 200  # the records' bright square, back in 0..255
