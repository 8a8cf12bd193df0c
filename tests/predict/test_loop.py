"""predict() end to end on files written here, with a deterministic colour-detector backend
(it finds the red object in the letterboxed image) and once with the real Keras model."""

import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tfseg.predict.draw import instance_colour
from tfseg.predict.loop import predict

SIZE = 64
RED_BGR = (30, 30, 220)


class RedObjectBackend:
    """A real backend (image_size, detect) returning the DETECTIONS contract: one detection
    per image, the red pixels' tight box (class 0, score 0.9) with their mask at 1/4."""

    image_size = SIZE

    def detect(self, images):
        batch, p, n = len(images), SIZE // 4, 3
        out = {"boxes": np.zeros((batch, n, 4), np.float32), "scores": np.zeros((batch, n), np.float32),
               "classes": np.zeros((batch, n), np.int32), "masks": np.zeros((batch, n, p, p), np.float32),
               "num_detections": np.zeros(batch, np.int32)}
        for b, image in enumerate(images.astype(int)):
            red = (image[..., 0] > 150) & (image[..., 1] < 100) & (image[..., 2] < 100)
            if not red.any():
                continue
            ys, xs = np.nonzero(red)
            out["boxes"][b, 0] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
            out["masks"][b, 0] = cv2.resize(red.astype(np.float32), (p, p), interpolation=cv2.INTER_AREA)
            out["scores"][b, 0], out["num_detections"][b] = 0.9, 1
        return out


def scene(height, width, rect, grey=False):
    image = np.full((height, width, 3), 90, np.uint8)
    if not grey:
        x1, y1, x2, y2 = rect
        image[y1:y2, x1:x2] = RED_BGR
    return image


# name -> (height, width, object rect x1, y1, x2, y2)
SCENES = {"wide": (60, 120, (20, 10, 70, 40)), "tall": (128, 80, (16, 48, 56, 112)),
          "square": (96, 96, (40, 40, 88, 80))}


@pytest.fixture
def folder(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "wide.jpg"), scene(*SCENES["wide"]), [cv2.IMWRITE_JPEG_QUALITY, 98])
    cv2.imwrite(str(folder / "tall.png"), scene(*SCENES["tall"]))
    rgba = np.concatenate([scene(*SCENES["square"]), np.full((96, 96, 1), 255, np.uint8)], axis=-1)
    cv2.imwrite(str(folder / "square.png"), rgba)
    cv2.imwrite(str(folder / "grey.png"), np.full((40, 40), 90, np.uint8))
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    return folder


def test_images_overlays_cutouts_and_json(folder, tmp_path):
    out = tmp_path / "out"
    summary = predict(RedObjectBackend(), folder, out, ["thing"], conf=0.25, cutouts=True, verbose=False)
    assert summary["frames"] == 4 and summary["detections"] == 3
    assert summary["per_class"] == {"thing": 3}
    assert [p.endswith("broken.png") for p, _ in summary["skipped"]] == [True]
    results = {r["name"]: r for r in json.loads((out / "predictions.json").read_text())}
    assert results["grey"]["detections"] == []
    for name, (height, width, rect) in SCENES.items():
        assert cv2.imread(str(out / f"{name}.jpg")).shape == (height, width, 3)
        (det,) = results[name]["detections"]
        np.testing.assert_allclose(det["box_xyxy"], rect, atol=2.0)  # letterbox rounding
        rle = dict(det["mask_rle"], counts=det["mask_rle"]["counts"].encode())
        mask = mask_utils.decode(rle).astype(bool)
        truth = np.zeros((height, width), bool)
        truth[rect[1]:rect[3], rect[0]:rect[2]] = True
        assert (mask & truth).sum() / (mask | truth).sum() > 0.85, name
        cut = cv2.imread(str(out / "cutouts" / f"{name}_0_thing.png"), cv2.IMREAD_UNCHANGED)
        assert cut.shape[2] == 4 and abs(cut.shape[0] - (rect[3] - rect[1])) <= 2
        alpha = cut[..., 3] > 0
        assert alpha.mean() > 0.8
        # Red where opaque (edge pixels of the upsampled mask may be blended).
        assert np.mean(np.abs(cut[..., :3][alpha][:, 2].astype(int) - 220) < 40) > 0.9
        # The overlay blends the object with instance 0's colour (alpha 0.45); the corner is untouched.
        overlay = cv2.imread(str(out / f"{name}.jpg")).astype(int)
        cy, cx = (rect[1] + rect[3]) // 2, (rect[0] + rect[2]) // 2
        blend = 0.55 * np.array(RED_BGR) + 0.45 * np.array(instance_colour(0)[::-1])  # BGR
        assert np.all(np.abs(overlay[cy, cx] - blend) <= 12), (overlay[cy, cx], blend)
        np.testing.assert_allclose(overlay[2, 2], [90, 90, 90], atol=6)
    assert not (out / "cutouts" / "grey_0_thing.png").exists()


def test_polygon_json_and_black_cutouts(folder, tmp_path):
    out = tmp_path / "out"
    predict(RedObjectBackend(), [folder / "tall.png"], out, ["thing"], cutouts=True,
            cutout_background="black", mask_format="polygon", save_overlays=False, verbose=False)
    (record,) = json.loads((out / "predictions.json").read_text())
    (polygon,) = record["detections"][0]["mask_polygons"]
    xs, ys = polygon[0::2], polygon[1::2]
    assert abs(min(xs) - 16) <= 2 and abs(max(xs) - 55) <= 2 and abs(min(ys) - 48) <= 2
    cut = cv2.imread(str(out / "cutouts" / "tall_0_thing.png"), cv2.IMREAD_UNCHANGED)
    assert cut.ndim == 3 and cut.shape[2] == 3
    assert not list(out.glob("*.jpg"))


def test_video_gives_an_overlay_video_and_one_record_per_frame(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (96, 64))
    for i in range(3):
        writer.write(scene(64, 96, (10 + 20 * i, 20, 40 + 20 * i, 50)))
    writer.release()
    out = tmp_path / "out"
    summary = predict(RedObjectBackend(), path, out, ["thing"], verbose=False)
    assert summary["frames"] == 3 and summary["detections"] == 3
    records = json.loads((out / "predictions.json").read_text())
    assert [r["frame"] for r in records] == [0, 1, 2]
    lefts = [r["detections"][0]["box_xyxy"][0] for r in records]
    np.testing.assert_allclose(lefts, [10, 30, 50], atol=3)
    video = cv2.VideoCapture(str(out / "clip.mp4"))
    assert video.isOpened() and int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    video.release()


def test_real_keras_model_end_to_end(folder, tmp_path):
    from tfseg.model.yolo_seg import build_model

    model = build_model("yolov8-seg-n", num_classes=3, image_size=SIZE)
    out = tmp_path / "out"
    summary = predict(model, folder / "tall.png", out, ["a", "b", "c"], conf=0.0, max_det=5,
                      cutouts=True, image_size=SIZE, verbose=False)
    assert summary["frames"] == 1 and summary["detections"] <= 5
    assert cv2.imread(str(out / "tall.jpg")).shape == (128, 80, 3)
    (record,) = json.loads((out / "predictions.json").read_text())
    assert (record["height"], record["width"]) == (128, 80)
    for det in record["detections"]:
        x1, y1, x2, y2 = det["box_xyxy"]
        assert 0 <= x1 <= x2 <= 80 and 0 <= y1 <= y2 <= 128 and det["class_name"] in "abc"
