"""YOLO-seg datasets <-> COCO JSON, and prepared records -> COCO JSON.

YOLO-seg layout (as Ultralytics defines it)::

    data.yaml                  path, train, val (image folders relative to path), names
    images/<split>/*.jpg
    labels/<split>/*.txt       one instance per line: "class x1 y1 x2 y2 ...", normalized [0, 1]

Import (``yolo_to_coco``) turns a split into a COCO JSON (polygons in pixels) that
``prepare`` reads like any COCO file, so YOLO data becomes the same records. Export
(``coco_to_yolo``) writes one polygon per instance: COCO polygons as they are, several parts
or RLE masks (holes, occlusion) traced with OpenCV and joined into one polygon by
zero-width bridges. pycocotools fills polygons by the even-odd rule, so a bridged hole stays
a hole. YOLO has no crowd flag: crowd regions are left out and counted. ``data.yaml`` gets
an extra ``category_ids`` key so a round trip keeps the source ids.
"""

from __future__ import annotations

import json
import os
import shutil

import cv2
import numpy as np
import yaml
from pycocotools import mask as mask_utils

from tfseg.config.paths import converted_annotations, read_yolo_layout
from tfseg.data import coco
from tfseg.errors import DatasetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_TRACE_SCALE = 4  # contours traced on a 4x upsampled mask lie 1/8 pixel inside the edge


# ---------------------------------------------------------------------------------------
# Masks -> one polygon.
# ---------------------------------------------------------------------------------------

def _bridge(outline: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Join ``part`` [P, 2] into ``outline`` [Q, 2] through their closest vertex pair."""
    d = ((outline[:, None, :] - part[None, :, :]) ** 2).sum(-1)  # [Q, P]
    i, j = np.unravel_index(np.argmin(d), d.shape)
    loop = np.concatenate([part[j:], part[:j + 1]])  # the part, starting and ending at j
    return np.concatenate([outline[:i + 1], loop, outline[i:]])


def join_polygons(parts: list[np.ndarray]) -> np.ndarray:
    """Several [P, 2] rings -> one [Q, 2] ring with zero-width bridges (even-odd fill)."""
    parts = sorted(parts, key=len, reverse=True)
    outline = parts[0]
    for part in parts[1:]:
        outline = _bridge(outline, part)
    return outline


def mask_to_polygon(mask: np.ndarray) -> np.ndarray | None:
    """[H, W] 0/1 mask -> one [Q, 2] polygon in pixel units (edges at integers), or None.

    Outer boundaries and holes are traced on a 4x nearest-upsampled copy (so the polygon
    follows pixel edges within 1/8 pixel), simplified by 1/4 pixel, then bridged.
    """
    big = cv2.resize(mask.astype(np.uint8), None, fx=_TRACE_SCALE, fy=_TRACE_SCALE,
                     interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(big, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    parts = []
    for c in contours:
        c = cv2.approxPolyDP(c, 1.0, True)[:, 0, :].astype(np.float64)  # [P, 2] x, y
        if len(c) >= 3:
            parts.append((c + 0.5) / _TRACE_SCALE)
    return join_polygons(parts) if parts else None


def instance_polygon(seg, height: int, width: int) -> np.ndarray | None:
    """A validated COCO segmentation -> one [Q, 2] pixel polygon (None if empty)."""
    if isinstance(seg, list) and len(seg) == 1:
        return np.asarray(seg[0], np.float64).reshape(-1, 2)
    if isinstance(seg, list):
        return join_polygons([np.asarray(p, np.float64).reshape(-1, 2) for p in seg])
    return mask_to_polygon(coco.decode_segmentation(seg, height, width))


# ---------------------------------------------------------------------------------------
# COCO -> YOLO.
# ---------------------------------------------------------------------------------------

def _label_line(class_index: int, polygon: np.ndarray, height: int, width: int) -> str:
    norm = np.clip(polygon / np.array([width, height], np.float64), 0.0, 1.0)
    return f"{class_index} " + " ".join(f"{v:.6f}" for v in norm.reshape(-1))


def _write_data_yaml(out_root: str, split: str, class_names, category_ids) -> str:
    path = os.path.join(out_root, "data.yaml")
    data = yaml.safe_load(open(path)) if os.path.isfile(path) else {}
    data.update({"path": os.path.abspath(out_root), split: f"images/{split}",
                 "names": {i: n for i, n in enumerate(class_names)},
                 "category_ids": [int(c) for c in category_ids]})
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def coco_to_yolo(images_dir: str, annotation_file: str, out_root: str, split: str = "train",
                 link: bool = False) -> dict:
    """Write a COCO split as YOLO-seg under ``out_root`` (images, labels, data.yaml).

    Args:
        images_dir: the COCO image folder.
        annotation_file: the COCO JSON.
        out_root: YOLO dataset root (created; data.yaml is updated per split).
        split: split name for images/<split> and labels/<split>.
        link: symlink the images instead of copying them.

    Returns:
        {"data_yaml", "images", "instances", "crowds_left_out", "skipped": {reason: {...}}}.
    """
    ds = coco.read_coco(annotation_file)
    img_out = os.path.join(out_root, "images", split)
    lbl_out = os.path.join(out_root, "labels", split)
    os.makedirs(img_out, exist_ok=True)
    os.makedirs(lbl_out, exist_ok=True)
    instances = crowds = 0
    for entry in ds.images:
        src, dst = os.path.join(images_dir, entry.file_name), os.path.join(img_out, entry.file_name)
        if not os.path.isfile(src):
            ds.skips.add("image file missing or unreadable", annotation_file,
                         f"image id {entry.image_id}", "file_name")
            continue
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if link:
            os.path.lexists(dst) and os.remove(dst)
            os.symlink(os.path.abspath(src), dst)
        else:
            shutil.copyfile(src, dst)
        lines = []
        for inst in entry.instances:
            if inst.is_crowd:
                crowds += 1
                continue
            polygon = instance_polygon(inst.segmentation, entry.height, entry.width)
            if polygon is not None:
                lines.append(_label_line(inst.class_index, polygon, entry.height, entry.width))
        stem = os.path.splitext(entry.file_name)[0]
        with open(os.path.join(lbl_out, stem + ".txt"), "w") as f:
            f.write("".join(line + "\n" for line in lines))
        instances += len(lines)
    data_yaml = _write_data_yaml(out_root, split, ds.class_names, ds.category_ids)
    return {"data_yaml": data_yaml, "images": len(ds.images) - ds.skips.counts.get(
        "image file missing or unreadable", 0), "instances": instances,
        "crowds_left_out": crowds, "skipped": ds.skips.as_dict()}


# ---------------------------------------------------------------------------------------
# YOLO -> COCO.
# ---------------------------------------------------------------------------------------

def read_data_yaml(data_yaml: str) -> dict:
    """data.yaml -> {"root", "names", "category_ids", "splits": {split: images folder}}.

    The rules (``path`` relative to the YAML's folder, names as a list or a dict, one folder
    per split) are ``tfseg.config.paths.read_yolo_layout``'s.
    """
    layout = read_yolo_layout(data_yaml)
    return {"root": str(layout.root), "names": layout.names, "category_ids": layout.category_ids,
            "splits": {split: str(folder) for split, folder in layout.splits.items()}}


def _labels_path(image_path: str) -> str:
    """Ultralytics' rule: the last "/images/" of the path becomes "/labels/", suffix ".txt"."""
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    head, sep, tail = os.path.abspath(image_path).rpartition(images)
    return os.path.splitext(head + labels + tail if sep else image_path)[0] + ".txt"


def _parse_label_line(line: str, num_classes: int, height: int, width: int):
    """"c x1 y1 ..." -> (class index, flat pixel polygon); raises coco.RecordSkip."""
    parts = line.split()
    try:
        cls, values = int(parts[0]), [float(v) for v in parts[1:]]
    except ValueError:
        raise coco.RecordSkip("label line is not numbers", "line") from None
    if not 0 <= cls < num_classes:
        raise coco.RecordSkip("class index out of range", "class")
    if len(values) == 4:
        raise coco.RecordSkip("box-only label (detection, not segmentation)", "line")
    if len(values) % 2 or len(values) < 6:
        raise coco.RecordSkip("polygon with fewer than 3 points", "line")
    xy = np.asarray(values).reshape(-1, 2)
    if not np.isfinite(xy).all() or xy.min() < -0.01 or xy.max() > 1.01:
        raise coco.RecordSkip("normalized coordinates outside [0, 1]", "line")
    pixels = np.clip(xy, 0, 1) * np.array([width, height])
    return cls, [round(float(v), 3) for v in pixels.reshape(-1)]


def _annotation(ann_id, image_id, category_id, polygon, height, width):
    rle = mask_utils.merge(mask_utils.frPyObjects([polygon], height, width))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "iscrowd": 0,
            "segmentation": [polygon], "area": float(mask_utils.area(rle)), "bbox": [x, y, w, h]}


def yolo_to_coco(data_yaml: str, split: str, out_json: str, strict: bool = False) -> dict:
    """Convert one YOLO-seg split to a COCO JSON (polygons in pixels, ids from data.yaml).

    Returns:
        {"annotation_file", "images_dir", "images", "instances", "skipped": {reason: {...}}}.
        Skipped: unreadable images, bad label lines (named by file and line), empty masks.
    """
    spec = read_data_yaml(data_yaml)
    if split not in spec["splits"]:
        raise DatasetError(f"no '{split}' split", file=data_yaml, field=split)
    images_dir = spec["splits"][split]
    if not os.path.isdir(images_dir):
        raise DatasetError("images folder not found", file=images_dir)
    skips = coco.SkipReport(strict=strict)
    images, annotations = [], []
    files = sorted(os.path.relpath(os.path.join(d, f), images_dir)
                   for d, _, fs in os.walk(images_dir) for f in fs
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    for image_id, rel in enumerate(files, start=1):
        path = os.path.join(images_dir, rel)
        pixels = cv2.imread(path, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
        if pixels is None:
            skips.add("corrupt image file", path, f"image {rel}", "file_name")
            continue
        height, width = pixels.shape[:2]
        images.append({"id": image_id, "file_name": rel, "height": height, "width": width})
        label_file = _labels_path(path)
        if not os.path.isfile(label_file):
            continue  # an image without labels is a background image in YOLO
        for n, line in enumerate(open(label_file).read().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                cls, polygon = _parse_label_line(line, len(spec["names"]), height, width)
                ann = _annotation(len(annotations) + 1, image_id, spec["category_ids"][cls],
                                  polygon, height, width)
                if ann["area"] == 0:
                    raise coco.RecordSkip("empty mask", "line")
            except coco.RecordSkip as skip:
                skips.add(skip.reason, label_file, f"line {n}", skip.field)
                continue
            annotations.append(ann)
    categories = [{"id": i, "name": n} for i, n in zip(spec["category_ids"], spec["names"])]
    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    with open(out_json, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return {"annotation_file": out_json, "images_dir": images_dir, "images": len(images),
            "instances": len(annotations), "skipped": skips.as_dict()}


def prepare_yolo(data_yaml: str, output_dir: str, **prepare_args) -> dict:
    """Prepare every split of a YOLO-seg dataset as TFDS records (``tfseg data prepare``).

    Each split is converted to ``converted_annotations(output_dir, split)``
    (``<output_dir>/coco_json/instances_<split>.json``, the split's evaluation ground truth)
    first, then prepared like COCO data; the conversion's skips are added to the summary
    (``splits[split]["skipped_labels"]``).

    Args:
        data_yaml: the YOLO data.yaml.
        output_dir: TFDS data dir, as for ``prepare``.
        **prepare_args: passed on to ``tfseg.data.prepare.prepare`` (num_workers, strict...).
    """
    from tfseg.data.prepare import prepare

    spec = read_data_yaml(data_yaml)
    converted = {split: yolo_to_coco(data_yaml, split,
                                     str(converted_annotations(output_dir, split)),
                                     strict=prepare_args.get("strict", False))
                 for split in spec["splits"]}
    summary = prepare([c["images_dir"] for c in converted.values()],
                      [c["annotation_file"] for c in converted.values()], output_dir,
                      splits=list(converted), **prepare_args)
    for split, c in converted.items():
        summary["splits"][split]["skipped_labels"] = c["skipped"]
    return summary
