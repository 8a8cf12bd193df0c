"""Box and mask mAP with and without test-time augmentation, and what it costs per image.

    nice -n 19 python tools/tta_yardstick.py [--weights RUN_OR_WEIGHTS] [--data SHAPES_ROOT]
                                             [--zoom 2.0] [--work /tmp/tta_yardstick]

Scores a trained model (default: runs/train/shapes256 under /work/models, the built-in
shapes dataset at 256 px) on two splits, each with augment off and on:

* ``val``: the dataset's validation split (its records, already prepared under
  ``<data>/records``: nothing is written there);
* ``val_small``: the same images, each pasted at a random place of a shapes background
  ``zoom`` times its size, so every object is ``zoom`` times smaller in the model's input
  (written as COCO and prepared into records under ``--work``).

COCO metrics come from tfseg.evaluate.loop.evaluate (conf 0.001, IoU 0.7, 300 detections,
as ``tfseg val``). The time is the network and post-processing alone (one tf.function per
batch of 8 on decoded, letterboxed batches held in memory; the best of two passes after a
warm-up batch), so the ratio is what augment costs the model, not the host or COCO scoring.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from tfseg.data.prepare import prepare
from tfseg.data.shapes import background
from tfseg.evaluate.loop import evaluate, make_detector
from tfseg.pipeline.dataset import build_dataset
from tfseg.resolve import resolve_model

MODELS = Path("/work/models")
BATCH = 8


def zoomed_out_split(data: Path, work: Path, zoom: float, seed: int = 0) -> tuple[Path, Path]:
    """The validation split with each image pasted onto a ``zoom`` times larger background.

    Returns:
        (records folder, annotation JSON) of a split named ``val``.
    """
    truth = json.loads((data / "annotations/instances_val.json").read_text())
    images_dir = work / "images/val"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    by_image = {}
    for annotation in truth["annotations"]:
        by_image.setdefault(annotation["image_id"], []).append(annotation)
    out_images, out_annotations = [], []
    for info in truth["images"]:
        height, width = info["height"], info["width"]
        big_h, big_w = int(round(height * zoom)), int(round(width * zoom))
        top = int(rng.integers(0, big_h - height + 1))
        left = int(rng.integers(0, big_w - width + 1))
        canvas = background(big_h, big_w, rng)
        image = cv2.imread(str(data / "images/val" / info["file_name"]), cv2.IMREAD_COLOR)
        canvas[top:top + height, left:left + width] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        name = Path(info["file_name"]).stem + ".png"  # lossless: the paste stays exact
        cv2.imwrite(str(images_dir / name), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        out_images.append(dict(info, file_name=name, height=big_h, width=big_w))
        for annotation in by_image.get(info["id"], []):
            segmentation = annotation["segmentation"]
            if isinstance(segmentation, list):
                rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
            elif isinstance(segmentation["counts"], list):
                rle = mask_utils.frPyObjects(segmentation, height, width)
            else:
                rle = segmentation
            mask = np.zeros((big_h, big_w), np.uint8, order="F")
            mask[top:top + height, left:left + width] = mask_utils.decode(rle)
            encoded = mask_utils.encode(mask)
            encoded["counts"] = encoded["counts"].decode("ascii")
            x, y, w, h = annotation["bbox"]
            out_annotations.append(dict(annotation, segmentation=encoded,
                                        bbox=[x + left, y + top, w, h]))
    annotations = work / "annotations/instances_val.json"
    annotations.parent.mkdir(parents=True, exist_ok=True)
    annotations.write_text(json.dumps(dict(truth, images=out_images,
                                           annotations=out_annotations)))
    records = work / "records"
    prepare(str(images_dir), [str(annotations)], str(records), splits=["val"], num_workers=0,
            overwrite=True, verbose=False)
    return records, annotations


def time_per_image(detector, batches: list) -> float:
    """Milliseconds per image of ``detector`` over ``batches``: best of two passes."""
    detector(batches[0])["num_detections"].numpy()  # trace
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        for images in batches:
            detector(images)["num_detections"].numpy()
        best = min(best, time.perf_counter() - start)
    return 1000.0 * best / sum(int(b.shape[0]) for b in batches)


def score(loaded, records: Path, annotations: Path, category_ids, names) -> list[dict]:
    """Metrics and time of one split, augment off then on."""
    size = loaded.info.image_size
    dataset = build_dataset(str(records), "val", image_size=size, batch_size=BATCH,
                            max_instances=100, training=False, masks=False)
    batches = [images for images, _ in dataset]
    rows = []
    for augment in (False, True):
        detector = make_detector(loaded.model, 0.001, 0.7, 300, augment=augment)
        metrics = evaluate(loaded.model, dataset, annotations, category_ids, names,
                           plots=False, verbose=False, detector=detector)
        rows.append(dict(augment=augment, metrics=metrics,
                         ms=time_per_image(detector, batches)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=str(MODELS / "runs/train/shapes256"))
    parser.add_argument("--data", default=str(MODELS / "shapes"))
    parser.add_argument("--zoom", type=float, default=2.0)
    parser.add_argument("--work", default="/tmp/tta_yardstick")
    args = parser.parse_args()
    data, work = Path(args.data), Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    loaded = resolve_model(args.weights)
    truth = json.loads((data / "annotations/instances_val.json").read_text())
    categories = sorted(truth["categories"], key=lambda c: c["id"])
    category_ids, names = [c["id"] for c in categories], [c["name"] for c in categories]
    splits = {"val": (data / "records", data / "annotations/instances_val.json")}
    splits[f"val_small (x{args.zoom:g})"] = zoomed_out_split(data, work, args.zoom)
    print(f"model {args.weights} ({loaded.info.image_size} px), batch {BATCH}")
    print(f"{'split':<18}{'augment':<9}{'box mAP50-95':>13}{'box mAP50':>10}"
          f"{'mask mAP50-95':>14}{'mask mAP50':>11}{'ms/image':>10}{'cost':>7}")
    for split, (records, annotations) in splits.items():
        rows = score(loaded, records, annotations, category_ids, names)
        for row in rows:
            m = row["metrics"]
            print(f"{split:<18}{str(row['augment']).lower():<9}{m['box/mAP50-95']:>13.4f}"
                  f"{m['box/mAP50']:>10.4f}{m['mask/mAP50-95']:>14.4f}{m['mask/mAP50']:>11.4f}"
                  f"{row['ms']:>10.1f}{row['ms'] / rows[0]['ms']:>6.2f}x", flush=True)


if __name__ == "__main__":
    main()
