"""Read and validate a COCO instance-segmentation JSON into per-image instance lists.

Structural problems that make the whole file unusable raise ``DatasetError`` naming the file
and field (missing file, invalid JSON, no images, no categories, duplicate ids). Problems of
one record are skipped and counted with a reason in a ``SkipReport`` (or raised, with
``strict=True``): an annotation pointing to an unknown image or category, a polygon with
fewer than 3 points, a zero-area box, coordinates outside the image, malformed RLE, bad
field types. Nothing is dropped silently.

Masks are decoded by pycocotools (``decode_segmentation``); the validation here guarantees
pycocotools only sees well-formed input (its C decoder does not bounds-check RLE counts).
Category ids may be non-contiguous: they map to class indices 0..C-1 in ascending id order,
and the map is kept (``CocoDataset.category_ids[class_index]``).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from tfseg.errors import DatasetError

# Coordinates may exceed the image by this many pixels (COCO has a few polygons 1 px out);
# they are clipped. Further out, the record is skipped.
OUTSIDE_TOLERANCE = 2.0


@dataclass
class Instance:
    """One validated annotation.

    Attributes:
        annotation_id: the COCO annotation id.
        class_index: contiguous class 0..C-1.
        bbox: (x1, y1, x2, y2) float pixels, clipped to the image.
        is_crowd: crowd region.
        area: area as the file states it (mask pixel count when absent).
        segmentation: polygons (list of flat coordinate lists) or an RLE dict.
    """
    annotation_id: int
    class_index: int
    bbox: tuple[float, float, float, float]
    is_crowd: bool
    area: float
    segmentation: object


@dataclass
class ImageEntry:
    """One image record and its kept instances (possibly none)."""
    image_id: int
    file_name: str
    height: int
    width: int
    instances: list[Instance] = field(default_factory=list)


@dataclass
class SkipReport:
    """Counted skips: reason -> count, plus the first few places for each reason."""
    counts: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)
    strict: bool = False
    max_examples: int = 3

    def add(self, reason: str, file: str, record: str, field_name: str | None = None) -> None:
        """Count one skip; in strict mode raise it as a DatasetError instead."""
        if self.strict:
            raise DatasetError(reason, file=file, record=record, field=field_name)
        self.counts[reason] += 1
        places = self.examples.setdefault(reason, [])
        if len(places) < self.max_examples:
            places.append(f"{record}" + (f" ({field_name})" if field_name else ""))

    def merge(self, other: "SkipReport") -> None:
        self.counts.update(other.counts)
        for reason, places in other.examples.items():
            mine = self.examples.setdefault(reason, [])
            mine.extend(places[: self.max_examples - len(mine)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict:
        return {reason: {"count": n, "examples": self.examples.get(reason, [])}
                for reason, n in sorted(self.counts.items())}


@dataclass
class CocoDataset:
    """A validated COCO file: images (in file order), class names and the id map."""
    annotation_file: str
    images: list[ImageEntry]
    class_names: list[str]
    category_ids: list[int]
    skips: SkipReport

    @property
    def num_instances(self) -> int:
        return sum(len(im.instances) for im in self.images)


class RecordSkip(Exception):
    """One record is unusable: caught by the readers and counted in a SkipReport."""

    def __init__(self, reason: str, field_name: str | None = None):
        super().__init__(reason)
        self.reason, self.field = reason, field_name


# ---------------------------------------------------------------------------------------
# Top level: file, categories, images.
# ---------------------------------------------------------------------------------------

def load_json(path: str) -> dict:
    """The parsed annotation file; DatasetError if missing, unreadable or not a COCO dict."""
    if not os.path.isfile(path):
        raise DatasetError("annotation file not found", file=path)
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:  # ValueError covers JSONDecodeError and bad UTF-8
        raise DatasetError(f"not a readable JSON file ({e})", file=path) from None
    if not isinstance(data, dict):
        raise DatasetError("top level must be a JSON object", file=path)
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise DatasetError(f"'{key}' must be a non-empty list (empty annotation file?)",
                               file=path, field=key)
    if not isinstance(data.get("annotations", []), list):
        raise DatasetError("'annotations' must be a list", file=path, field="annotations")
    return data


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    """A finite JSON number (an int too large for a float is not)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def parse_categories(categories: list, path: str) -> tuple[list[int], list[str]]:
    """Sorted category ids and their names; DatasetError on a bad or duplicate entry."""
    by_id = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not _is_int(cat.get("id")):
            raise DatasetError("category needs an integer 'id'", file=path,
                               record=f"category #{i}", field="id")
        if cat["id"] in by_id:
            raise DatasetError(f"duplicate category id {cat['id']}", file=path,
                               record=f"category #{i}", field="id")
        by_id[cat["id"]] = str(cat.get("name", cat["id"]))
    ids = sorted(by_id)
    return ids, [by_id[i] for i in ids]


def _parse_image(img, path: str, skips: SkipReport, index: int) -> ImageEntry | None:
    if not isinstance(img, dict) or not _is_int(img.get("id")):
        skips.add("image record without an integer id", path, f"image #{index}", "id")
        return None
    record = f"image id {img['id']}"
    for key in ("height", "width"):
        if not _is_int(img.get(key)) or img[key] <= 0:
            skips.add("image size missing or not a positive integer", path, record, key)
            return None
    if not isinstance(img.get("file_name"), str) or not img["file_name"]:
        skips.add("image record without a file name", path, record, "file_name")
        return None
    return ImageEntry(img["id"], img["file_name"], img["height"], img["width"])


# ---------------------------------------------------------------------------------------
# Segmentations: validated so that pycocotools only ever sees well-formed input.
# ---------------------------------------------------------------------------------------

def compressed_rle_counts(counts: str) -> list[int]:
    """Run lengths of a COCO compressed RLE string (the LEB128-like format of maskApi.c).

    Each count is 5-bit groups (char - 48) with a continuation bit 0x20 and a sign bit 0x10
    in the last group; from the third count on, values are deltas to the count two before.

    Raises:
        ValueError: the string is not a valid encoding.
    """
    out, pos = [], 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise ValueError("RLE string ends inside a count")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid RLE character {counts[pos]!r}")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos, shift = pos + 1, shift + 5
            if not more and (c & 0x10):
                value |= -1 << shift
        if len(out) > 2:
            value += out[-2]
        out.append(value)
    return out


def _validate_rle(seg: dict, height: int, width: int) -> None:
    size = seg.get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(s) for s in size)):
        raise RecordSkip("RLE 'size' must be [height, width]", "segmentation")
    if size != [height, width]:
        raise RecordSkip("RLE size differs from the image size", "segmentation")
    counts = seg.get("counts")
    if isinstance(counts, str):
        try:
            runs = compressed_rle_counts(counts)
        except ValueError:
            raise RecordSkip("malformed compressed RLE", "segmentation") from None
    elif isinstance(counts, list) and all(_is_int(c) for c in counts):
        runs = counts
    else:
        raise RecordSkip("RLE 'counts' must be a string or a list of integers", "segmentation")
    if any(r < 0 for r in runs) or sum(runs) != height * width:
        raise RecordSkip("RLE run lengths do not cover the image exactly", "segmentation")


def _validate_polygons(seg: list, height: int, width: int) -> list[list[float]]:
    polygons = []
    for poly in seg:
        if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
            raise RecordSkip("polygon must be a list of finite numbers", "segmentation")
        if len(poly) % 2 or len(poly) < 6:
            raise RecordSkip("polygon with fewer than 3 points", "segmentation")
        xs, ys = np.array(poly[0::2], float), np.array(poly[1::2], float)
        tol = OUTSIDE_TOLERANCE
        if xs.min() < -tol or ys.min() < -tol or xs.max() > width + tol or ys.max() > height + tol:
            raise RecordSkip("polygon coordinates outside the image", "segmentation")
        polygons.append([float(v) for v in poly])
    if not polygons:
        raise RecordSkip("empty segmentation", "segmentation")
    return polygons


def validate_segmentation(seg, height: int, width: int):
    """A COCO segmentation checked for decoding: polygons list or RLE dict; raises RecordSkip."""
    if isinstance(seg, list):
        return _validate_polygons(seg, height, width)
    if isinstance(seg, dict):
        _validate_rle(seg, height, width)
        return seg
    raise RecordSkip("segmentation must be polygons or an RLE dict", "segmentation")


def decode_segmentation(seg, height: int, width: int) -> np.ndarray:
    """Validated COCO segmentation -> [H, W] uint8 0/1 mask, decoded by pycocotools.

    Polygons (one or several parts) are rasterized and merged; uncompressed RLE is
    compressed first; compressed RLE is decoded as is.
    """
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# Annotations.
# ---------------------------------------------------------------------------------------

def _parse_bbox(bbox, height: int, width: int) -> tuple[float, float, float, float]:
    """COCO [x, y, w, h] -> xyxy clipped to the image; raises RecordSkip."""
    if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)):
        raise RecordSkip("bbox must be 4 finite numbers [x, y, w, h]", "bbox")
    x, y, w, h = (float(v) for v in bbox)
    if w <= 0 or h <= 0:
        raise RecordSkip("zero-area box", "bbox")
    tol = OUTSIDE_TOLERANCE
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        raise RecordSkip("box coordinates outside the image", "bbox")
    x1, y1 = min(max(x, 0.0), width), min(max(y, 0.0), height)
    x2, y2 = min(x + w, float(width)), min(y + h, float(height))
    if x2 <= x1 or y2 <= y1:
        raise RecordSkip("zero-area box after clipping to the image", "bbox")
    return x1, y1, x2, y2


def parse_annotation(ann, image: ImageEntry, class_of: dict) -> Instance:
    """One annotation dict -> Instance for ``image``; raises RecordSkip with the reason."""
    if not _is_int(ann.get("category_id")):
        raise RecordSkip("category_id missing or not an integer", "category_id")
    if ann["category_id"] not in class_of:
        raise RecordSkip("annotation points to an unknown category", "category_id")
    crowd = ann.get("iscrowd", 0)
    if crowd not in (0, 1) or (not _is_int(crowd) and not isinstance(crowd, bool)):
        raise RecordSkip("iscrowd must be 0 or 1", "iscrowd")
    if "segmentation" not in ann:
        raise RecordSkip("annotation without segmentation", "segmentation")
    seg = validate_segmentation(ann["segmentation"], image.height, image.width)
    area = ann.get("area")
    if area is not None and (not _is_number(area) or area < 0):
        raise RecordSkip("area must be a non-negative number", "area")
    if "bbox" in ann:
        bbox = _parse_bbox(ann["bbox"], image.height, image.width)
    else:  # some exporters omit it: the mask's tight box is the COCO definition
        mask_rle = mask_utils.encode(np.asfortranarray(
            decode_segmentation(seg, image.height, image.width)))
        bbox = _parse_bbox([float(v) for v in mask_utils.toBbox(mask_rle)],
                           image.height, image.width)
    if area is None or area == 0:
        area = float(decode_segmentation(seg, image.height, image.width).sum())
        if area == 0:
            raise RecordSkip("empty mask", "segmentation")
    return Instance(ann["id"], class_of[ann["category_id"]], bbox, bool(crowd), float(area), seg)


def _attach_annotations(annotations: list, images: dict, image_ids: set, class_of: dict,
                        path: str, skips: SkipReport) -> None:
    seen = set()
    for i, ann in enumerate(annotations):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            skips.add("annotation without an integer id", path, f"annotation #{i}", "id")
            continue
        record = f"annotation id {ann['id']}"
        if ann["id"] in seen:
            skips.add("duplicate annotation id", path, record, "id")
            continue
        seen.add(ann["id"])
        image_id = ann.get("image_id")
        if not _is_int(image_id) or image_id not in image_ids:
            skips.add("annotation points to an unknown image", path, record, "image_id")
            continue
        if image_id not in images:  # the image record itself was skipped
            skips.add("annotation of a skipped image", path, record, "image_id")
            continue
        try:
            images[image_id].instances.append(parse_annotation(ann, images[image_id], class_of))
        except RecordSkip as skip:
            skips.add(skip.reason, path, record, skip.field)


def read_coco(annotation_file: str, strict: bool = False) -> CocoDataset:
    """Read and validate a COCO JSON file.

    Args:
        annotation_file: path of ``instances_*.json``.
        strict: raise DatasetError at the first bad record instead of skipping it.

    Returns:
        CocoDataset: images in file order (images without annotations kept), each with its
        valid instances; class names and category ids in class-index order; the skips.

    Raises:
        DatasetError: the file is missing, not JSON, has no images or categories, has
        duplicate image or category ids; or any bad record when ``strict``.
    """
    path = str(annotation_file)
    data = load_json(path)
    category_ids, class_names = parse_categories(data["categories"], path)
    class_of = {cid: i for i, cid in enumerate(category_ids)}
    skips = SkipReport(strict=strict)
    images, all_ids = {}, set()
    for i, img in enumerate(data["images"]):
        if isinstance(img, dict) and _is_int(img.get("id")):
            if img["id"] in all_ids:
                raise DatasetError(f"duplicate image id {img['id']}", file=path,
                                   record=f"image #{i}", field="id")
            all_ids.add(img["id"])
        entry = _parse_image(img, path, skips, i)
        if entry is not None:
            images[entry.image_id] = entry
    _attach_annotations(data.get("annotations", []), images, all_ids, class_of, path, skips)
    return CocoDataset(path, list(images.values()), class_names, category_ids, skips)

