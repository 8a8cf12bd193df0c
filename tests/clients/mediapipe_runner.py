"""Run a .tflite through MediaPipe Tasks and write what it returns as JSON.

Runs in the MediaPipe venv (.ci/install-mediapipe), not the test venv: it imports mediapipe
and numpy only, never tfseg. Usage:

    python mediapipe_runner.py detector  MODEL.tflite OUT.json IMAGE...
    python mediapipe_runner.py segmenter MODEL.tflite OUT_FOLDER IMAGE...

detector: ``vision.ObjectDetector`` (score threshold 0, every result) per image:
    {"images": [{"file", "width", "height", "detections": [{"box": [x1, y1, x2, y2] pixels
    of the image, "score", "name" (from the file's labels)}]}]}
segmenter: ``vision.ImageSegmenter`` with confidence masks and the category mask per image:
    OUT_FOLDER/<i>.npz with ``confidence`` float32 [K, H, W] and ``category`` uint8 [H, W],
    and OUT_FOLDER/result.json with the labels and the files.
"""

import json
import sys
from pathlib import Path

import numpy as np
from mediapipe.tasks.python import vision
from mediapipe.tasks.python.core.base_options import BaseOptions
from mediapipe.tasks.python.vision.core.image import Image


def detect(model: str, out: str, images: list[str]) -> None:
    options = vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=model),
                                           score_threshold=0.0, max_results=-1)
    results = []
    with vision.ObjectDetector.create_from_options(options) as detector:
        for path in images:
            image = Image.create_from_file(path)
            found = []
            for detection in detector.detect(image).detections:
                box = detection.bounding_box
                category = detection.categories[0]
                found.append({"box": [box.origin_x, box.origin_y, box.origin_x + box.width,
                                      box.origin_y + box.height],
                              "score": float(category.score),
                              "name": category.category_name})
            results.append({"file": str(Path(path).resolve()), "width": image.width,
                            "height": image.height, "detections": found})
    Path(out).write_text(json.dumps({"images": results}, indent=1))


def segment(model: str, out: str, images: list[str]) -> None:
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model),
                                           output_confidence_masks=True,
                                           output_category_mask=True)
    files = []
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        labels = list(segmenter.labels)
        for i, path in enumerate(images):
            result = segmenter.segment(Image.create_from_file(path))
            confidence = np.stack([m.numpy_view().reshape(m.height, m.width)
                                   for m in result.confidence_masks])
            category = result.category_mask.numpy_view()
            np.savez(folder / f"{i}.npz", confidence=confidence.astype(np.float32),
                     category=category.astype(np.uint8).reshape(category.shape[:2]))
            files.append({"file": str(Path(path).resolve()), "masks": f"{i}.npz"})
    (folder / "result.json").write_text(json.dumps({"labels": labels, "images": files}, indent=1))


if __name__ == "__main__":
    task, model_path, output, *image_paths = sys.argv[1:]
    {"detector": detect, "segmenter": segment}[task](model_path, output, image_paths)
