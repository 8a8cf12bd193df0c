"""The TFLite exports in MediaPipe Tasks (PyPI mediapipe 1.2.3), against tfseg's own predict.

MediaPipe runs in its own venv (.ci/install-mediapipe makes .venv-mediapipe: mediapipe
brings opencv-contrib-python, whose ``cv2`` package is the one the test venv's
opencv-python-headless installs, so the two cannot share a venv); tests/clients/
mediapipe_runner.py runs there on the files as ``tfseg export`` leaves them on disk and
writes what MediaPipe returned.

MediaPipe stretches an image to the model's S x S input; these models expect the letterbox
their metadata describes, so the app letterboxes (as a phone app does, examples/
tflite_app.py) and maps results back. Here the val images are letterboxed by tfseg
(tfseg.predict.loop.letterbox_frame, written as PNG) and MediaPipe's results mapped back to
original pixels with the letterbox info:

* ``vision.ObjectDetector`` on the standard-outputs file: the same detections as
  tfseg.predict (KerasBackend + host post-processing) above the export's score threshold,
  the same class names (read by MediaPipe from the file's labels.txt), scores within 1e-4,
  boxes within 1 px plus MediaPipe's integer rounding (it returns integer origin and size in
  letterboxed pixels: up to 2 px there, 2 / scale px in the original image).
* ``vision.ImageSegmenter`` on the tflite_segmenter file: labels background + class names;
  the category mask is the channel with the largest confidence; per class, the confidence
  mask above 0.5 (mapped to the original image) against the union of tfseg's masks of that
  class (predict's own full-size masks): IoU above MASK_IOU for every class tfseg found.

Skipped when .venv-mediapipe is missing; failed when CI is set.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from shared_exports import CLASS_NAMES, CONF, IOU, MAX_DET, SIZE

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).resolve().parent / "mediapipe_runner.py"
PYTHON = REPO / ".venv-mediapipe" / "bin" / "python"
# Per-class IoU bound: MediaPipe's masks are resized twice (prototype grid -> S in the file,
# S -> original here) where tfseg.predict samples the prototype grid once at each original
# pixel; on this network's noisy masks that moves the 0.5 contour (measured 0.89-0.98).
MASK_IOU = 0.85

pytestmark = pytest.mark.slow  # .tflite exports and MediaPipe subprocesses


def _run(task: str, model: Path, output: Path, images: list[Path]) -> None:
    result = subprocess.run([str(PYTHON), str(RUNNER), task, str(model), str(output),
                             *map(str, images)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


@pytest.fixture(scope="module")
def mediapipe():
    """The MediaPipe venv's python, checked to import mediapipe."""
    found = PYTHON.is_file() and subprocess.run(
        [str(PYTHON), "-c", "import mediapipe.tasks.python.vision"],
        capture_output=True).returncode == 0
    if not found:
        message = f"{PYTHON.relative_to(REPO)} with mediapipe missing (.ci/install-mediapipe)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return PYTHON


@pytest.fixture(scope="module")
def network():
    """The export tests' network (tests/shared_exports.py), whose detections vary per image."""
    from shared_exports import detecting_network

    return detecting_network(SIZE)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(original RGB image, letterbox info, letterboxed PNG path) per shapes val image."""
    import cv2

    from tfseg.data.shapes import write_shapes
    from tfseg.predict.loop import letterbox_frame
    from tfseg.predict.sources import read_image

    root = tmp_path_factory.mktemp("shapes")
    shapes = write_shapes(str(root), num_train=4, num_val=4, min_size=64, max_size=200,
                          num_classes=len(CLASS_NAMES), seed=3)
    out = []
    for path in sorted(Path(shapes["val_images"]).iterdir()):
        image = read_image(path)
        boxed, info = letterbox_frame(image, SIZE)
        png = root / f"letterboxed_{path.stem}.png"
        cv2.imwrite(str(png), cv2.cvtColor(boxed, cv2.COLOR_RGB2BGR))
        out.append((image, info, png))
    assert len(out) >= 3
    return out


@pytest.fixture(scope="module")
def predictions(network, images):
    """tfseg's own predict (Keras network, PostProcess, host masks) per original image."""
    from tfseg.predict.backends import KerasBackend
    from tfseg.predict.loop import detect_image

    backend = KerasBackend(network, conf=CONF, iou=IOU, max_det=MAX_DET)
    found = [detect_image(backend, image, CONF) for image, _, _ in images]
    assert sum(len(d) for d in found) > 0
    return found


def _export(network, folder: Path, **options) -> dict:
    """Export, then write the certificate into the files: what ``tfseg export`` leaves."""
    from tfseg.export import certificate, export

    written = export(folder, model=network, model_name="yolov8-seg-n",
                     num_classes=len(CLASS_NAMES), image_size=SIZE, class_names=CLASS_NAMES,
                     category_ids=[1, 3, 7], tflite_modes=["float32"], raw=False,
                     score_threshold=CONF, iou_threshold=IOU, max_detections=MAX_DET,
                     **options)
    certificate.record(certificate.not_measured("no dataset in this test"), written)
    return written


def _to_original(box: list[float], info: np.ndarray) -> np.ndarray:
    """xyxy letterboxed pixels -> xyxy original pixels, clipped."""
    height, width, scale, pad_top, pad_left = (float(v) for v in info)
    x1, y1, x2, y2 = box
    out = np.array([(x1 - pad_left) / scale, (y1 - pad_top) / scale,
                    (x2 - pad_left) / scale, (y2 - pad_top) / scale])
    return np.clip(out, 0, [width, height, width, height])


def test_object_detector_matches_tfseg_predict(mediapipe, network, images, predictions,
                                               tmp_path, tmp_path_factory):
    from shared_exports import shared_export  # the export tests' file, made once

    model = shared_export(tmp_path_factory, "standard-outputs", network)["tflite_float32"]
    _run("detector", model, tmp_path / "detections.json", [png for _, _, png in images])
    results = json.loads((tmp_path / "detections.json").read_text())["images"]
    matched, worst = 0, 0.0
    for (image, info, _), ours, theirs in zip(images, predictions, results):
        assert (theirs["width"], theirs["height"]) == (SIZE, SIZE)
        kept = [d for d in theirs["detections"] if d["score"] >= CONF]
        boxes = np.array([_to_original(d["box"], info) for d in kept]).reshape(-1, 4)
        # As predict does, drop what lies in the padding only (an empty box in the image).
        inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        kept, boxes = [d for d, keep in zip(kept, inside) if keep], boxes[inside]
        assert len(kept) == len(ours), theirs["file"]
        tolerance = 2.0 / float(info[2])  # MediaPipe's integer pixels of the letterbox
        for i in range(len(ours)):
            distance = np.abs(boxes - ours.boxes[i]).max(axis=1)
            j = int(distance.argmin())
            assert distance[j] <= tolerance, (theirs["file"], i, distance[j], tolerance)
            assert kept[j]["name"] == CLASS_NAMES[int(ours.classes[i])]
            assert abs(kept[j]["score"] - float(ours.scores[i])) < 1e-4
            matched += 1
            worst = max(worst, float(distance[j]))
    print(f"\nMediaPipe ObjectDetector: {matched} detections on {len(images)} images matched "
          f"tfseg predict (names, scores within 1e-4); largest box difference {worst:.2f} px "
          "of the original images")
    assert matched > 0


def _original_masks(confidence: np.ndarray, info: np.ndarray) -> np.ndarray:
    """``[K, S, S]`` masks on the letterboxed input -> ``[K, H, W]`` on the original image
    (bilinear, each original pixel's centre mapped through the letterbox)."""
    import cv2

    height, width, scale, pad_top, pad_left = (float(v) for v in info)
    to_input = np.array([[scale, 0.0, 0.5 * scale + pad_left - 0.5],
                         [0.0, scale, 0.5 * scale + pad_top - 0.5]])
    return np.stack([cv2.warpAffine(channel, to_input, (int(width), int(height)),
                                    flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
                     for channel in confidence.astype(np.float32)])


def test_image_segmenter_matches_tfseg_masks(mediapipe, network, images, predictions,
                                             tmp_path):
    model = _export(network, tmp_path / "export",
                    formats=["tflite_segmenter"])["tflite_segmenter_float32"]
    _run("segmenter", model, tmp_path / "masks", [png for _, _, png in images])
    result = json.loads((tmp_path / "masks" / "result.json").read_text())
    assert result["labels"] == ["background"] + CLASS_NAMES
    ious = []
    for (image, info, _), ours, entry in zip(images, predictions, result["images"]):
        saved = np.load(tmp_path / "masks" / entry["masks"])
        confidence, category = saved["confidence"], saved["category"]
        assert confidence.shape == (len(CLASS_NAMES) + 1, SIZE, SIZE)
        # The category mask is the channel with the largest confidence.
        agree = (category == confidence.argmax(axis=0)).mean()
        assert agree > 0.99, agree
        theirs = _original_masks(confidence, info) > 0.5  # [K, H, W]
        for c in range(len(CLASS_NAMES)):
            union = np.zeros(image.shape[:2], bool)
            for i in np.flatnonzero(ours.classes == c):
                union |= ours.full_mask(int(i))
            if not union.any():
                continue
            iou = (union & theirs[1 + c]).sum() / (union | theirs[1 + c]).sum()
            ious.append((Path(entry["file"]).name, CLASS_NAMES[c], float(iou)))
    assert ious
    print(f"\nMediaPipe ImageSegmenter: per-class mask IoU against tfseg predict's masks on "
          f"{len(images)} images: min {min(i for _, _, i in ious):.4f}, mean "
          f"{np.mean([i for _, _, i in ious]):.4f} over {len(ious)} (image, class) pairs")
    for name, label, iou in ious:
        assert iou > MASK_IOU, (name, label, iou)
