"""The built-in ``shapes`` dataset: a small, real COCO-format instance segmentation set.

Coloured circles, rectangles and triangles (more kinds when ``num_classes`` > 3) on
textured backgrounds (noise, gradients, stripes), written as JPEG/PNG files plus
``instances_<split>.json`` annotations that pycocotools loads. It exercises what real
data has:

- class = shape kind, with NON-contiguous category ids (1, 3, 7, ...) and names;
- occlusion: later shapes cover earlier ones and the annotation holds the VISIBLE mask;
- polygons for whole (unoccluded) instances, compressed RLE for occluded ones and for
  shapes with holes (rings, frames), uncompressed RLE for crowd regions (``iscrowd=1``);
- images of several sizes and aspect ratios, some without any annotation.

Every stored mask is exactly what pycocotools decodes from the stored annotation (the
shapes are rasterized by pycocotools itself), so tests can compare masks exactly.
Deterministic: the same arguments give the same bytes; image i of a split depends only on
(seed, split, i), not on how many images are written.

Layout written under ``root``::

    images/train/000000.jpg ...   images/val/000000.png ...
    annotations/instances_train.json   annotations/instances_val.json
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import cv2
import numpy as np
from pycocotools import mask as mask_utils

# Shape kinds in class-index order, with their (non-contiguous) COCO category ids.
KINDS = ("circle", "rectangle", "triangle", "pentagon", "ellipse")
CATEGORY_IDS = (1, 3, 7, 8, 12)

_EMPTY_EVERY = 10      # image i with i % 10 == 5 has no annotations
_CROWD_EVERY = 6       # image i with i % 6 == 2 holds a crowd region
_PNG_EVERY = 4         # image i with i % 4 == 3 is written as PNG, the others as JPEG
_MIN_VISIBLE = 0.35    # an occluded instance keeps at least this fraction of its pixels


@dataclass
class ShapeInstance:
    """One annotated region of a generated image.

    Attributes:
        class_index: contiguous class 0..C-1 (index into KINDS).
        mask: [H, W] uint8 0/1, the VISIBLE pixels (what the annotation decodes to).
        is_crowd: crowd region (a cluster of small shapes, one annotation).
        segmentation: the COCO segmentation stored for it (polygons or RLE dict).
        encoding: "polygon", "rle" (compressed) or "uncompressed_rle".
        has_hole: the shape is a ring/frame.
        origin: (x0, y0) of ``mask`` in the image when it is a crop (tfseg.data.large).
    """
    class_index: int
    mask: np.ndarray
    is_crowd: bool = False
    segmentation: object = None
    encoding: str = "polygon"
    has_hole: bool = False
    origin: tuple[int, int] = (0, 0)


@dataclass
class ShapeImage:
    """One generated image: pixels (RGB uint8 [H, W, 3]) and its instances in drawing order."""
    image: np.ndarray
    file_name: str
    image_id: int
    instances: list[ShapeInstance] = field(default_factory=list)


def category_table(num_classes: int) -> list[dict]:
    """The COCO ``categories`` list for ``num_classes`` kinds (1..5)."""
    if not 1 <= num_classes <= len(KINDS):
        raise ValueError(f"num_classes must be in 1..{len(KINDS)}, got {num_classes}")
    return [{"id": CATEGORY_IDS[i], "name": KINDS[i], "supercategory": "shape"}
            for i in range(num_classes)]


# ---------------------------------------------------------------------------------------
# Geometry: polygons rasterized by pycocotools, so annotation and mask agree exactly.
# ---------------------------------------------------------------------------------------

def rasterize(polygons: list[list[float]], height: int, width: int) -> np.ndarray:
    """Union of flat [x0, y0, x1, y1, ...] polygons -> [H, W] uint8 0/1, as pycocotools decodes."""
    rles = mask_utils.frPyObjects(polygons, height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(np.uint8)


def _rotated(cx, cy, dx, dy, angle) -> list[float]:
    """Offsets (dx, dy) rotated by ``angle`` around (cx, cy) -> flat vertex list, rounded to
    2 decimals as stored (the mask is rasterized from the rounded values)."""
    xs = cx + dx * np.cos(angle) - dy * np.sin(angle)
    ys = cy + dx * np.sin(angle) + dy * np.cos(angle)
    return [round(float(v), 2) for xy in zip(xs, ys) for v in xy]


def _regular_polygon(cx, cy, rx, ry, sides, angle) -> list[float]:
    """Flat vertex list of a regular polygon inscribed in an ellipse rotated by ``angle``."""
    t = 2.0 * np.pi * np.arange(sides) / sides
    return _rotated(cx, cy, rx * np.cos(t), ry * np.sin(t), angle)


def shape_polygon(kind: str, cx, cy, r, rng: np.random.Generator) -> list[float]:
    """Outline of one shape of ``kind`` centred at (cx, cy) with radius ``r``."""
    angle = float(rng.uniform(0, 2 * np.pi))
    if kind == "circle":
        return _regular_polygon(cx, cy, r, r, 32, angle)
    if kind == "rectangle":
        # Random aspect, slightly rotated; half sides chosen so the corners stay within r.
        half_w = r * float(rng.uniform(0.6, 0.7))
        half_h = half_w * float(rng.uniform(0.5, 1.0))
        dx, dy = np.array([-half_w, half_w, half_w, -half_w]), np.array([-half_h, -half_h, half_h, half_h])
        return _rotated(cx, cy, dx, dy, float(rng.uniform(-0.3, 0.3)))
    if kind == "triangle":
        return _regular_polygon(cx, cy, r, r, 3, angle)
    if kind == "pentagon":
        return _regular_polygon(cx, cy, r, r, 5, angle)
    return _regular_polygon(cx, cy, r, r * float(rng.uniform(0.45, 0.7)), 32, angle)  # ellipse


def uncompressed_rle(mask: np.ndarray) -> dict:
    """[H, W] 0/1 mask -> COCO uncompressed RLE (column-major run lengths, starting with 0s).

    pycocotools writes only compressed RLE; crowd regions in COCO files use this form, so
    the generator writes it to make readers handle both.
    """
    flat = mask.flatten(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"counts": [int(c) for c in counts], "size": [int(mask.shape[0]), int(mask.shape[1])]}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(s) for s in rle["size"]]}


# ---------------------------------------------------------------------------------------
# Pixels: backgrounds and painting.
# ---------------------------------------------------------------------------------------

def background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """[H, W, 3] uint8 texture: noise, a linear gradient or stripes."""
    style = int(rng.integers(3))
    base = rng.uniform(40, 215, size=3)
    if style == 0:  # coloured noise around a base colour
        img = base + rng.normal(0, 25, size=(height, width, 3))
    elif style == 1:  # gradient between two colours along a random direction
        other = rng.uniform(40, 215, size=3)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        img = base + (other - base) * t[..., None]
    else:  # stripes at a random angle and period
        other = rng.uniform(40, 215, size=3)
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 20)
        yy, xx = np.mgrid[0:height, 0:width]
        on = (np.floor((xx * np.cos(angle) + yy * np.sin(angle)) / period) % 2)[..., None]
        img = base * on + other * (1 - on)
    return np.clip(img, 0, 255).astype(np.uint8)


def _paint(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Fill ``mask`` pixels with a saturated colour with mild noise (in place)."""
    color = rng.permutation([rng.uniform(200, 255), rng.uniform(0, 60), rng.uniform(0, 255)])
    noise = rng.normal(0, 8, size=(int(mask.sum()), 3))
    image[mask.astype(bool)] = np.clip(color + noise, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# Instances.
# ---------------------------------------------------------------------------------------

def _make_shape(height, width, num_classes, min_radius, max_radius, with_hole, rng):
    """One shape: (class index, full mask, polygons, has_hole)."""
    cls = int(rng.integers(num_classes))
    r = float(rng.uniform(min_radius, max_radius))
    cx, cy = float(rng.uniform(r, width - r)), float(rng.uniform(r, height - r))
    outer = shape_polygon(KINDS[cls], cx, cy, r, rng)
    mask = rasterize([outer], height, width)
    if with_hole and KINDS[cls] in ("circle", "rectangle", "pentagon"):
        # Same outline scaled towards its centre: a ring or a frame.
        xs, ys = np.array(outer[0::2]), np.array(outer[1::2])
        s = float(rng.uniform(0.35, 0.6))
        inner = [round(float(v), 2) for xy in zip(cx + s * (xs - cx), cy + s * (ys - cy)) for v in xy]
        mask = mask & (1 - rasterize([inner], height, width))
        return cls, mask, None, True
    return cls, mask, [outer], False


def _make_crowd(height, width, num_classes, rng):
    """A crowd: 5-8 small shapes of one kind clustered in a box -> (class, union mask)."""
    cls = int(rng.integers(num_classes))
    return cls, crowd_mask(height, width, KINDS[cls], rng)


def crowd_mask(height: int, width: int, kind: str, rng: np.random.Generator,
               count: tuple[int, int] = (5, 9), radius: tuple[float, float] = (3, 6),
               extent: tuple[float, float] = (0.25, 0.4)) -> np.ndarray:
    """A cluster of small shapes of one ``kind`` in a random box -> ``[H, W]`` uint8 union.

    Args:
        count: [low, high) number of shapes; radius: their radius range in pixels;
        extent: the box's side range as a fraction of the image's.
    """
    bw, bh = width * float(rng.uniform(*extent)), height * float(rng.uniform(*extent))
    x0, y0 = float(rng.uniform(0, width - bw)), float(rng.uniform(0, height - bh))
    mask = np.zeros((height, width), np.uint8)
    for _ in range(int(rng.integers(*count))):
        r = float(rng.uniform(*radius))
        cx, cy = float(rng.uniform(x0 + r, x0 + bw - r)), float(rng.uniform(y0 + r, y0 + bh - r))
        mask |= rasterize([shape_polygon(kind, cx, cy, r, rng)], height, width)
    return mask


def _visible_ok(full_masks: list[np.ndarray], candidate: np.ndarray) -> bool:
    """Every earlier shape keeps at least _MIN_VISIBLE of its pixels under ``candidate``."""
    covered = candidate.astype(bool)
    for m in full_masks:
        # Visible after the candidate = visible now minus what the candidate covers.
        if m.sum() == 0 or (m & ~covered).sum() < _MIN_VISIBLE * m.sum():
            return False
    return True


def _place_shapes(height, width, count, num_classes, rng):
    """Draw ``count`` shapes with some occlusion -> list of (cls, mask, polygons, has_hole)."""
    short = min(height, width)
    placed, visible = [], []
    for _ in range(count):
        allow_overlap = rng.uniform() < 0.3
        with_hole = rng.uniform() < 0.25
        for _attempt in range(15):
            cls, mask, polys, hole = _make_shape(height, width, num_classes, 0.12 * short,
                                                 0.28 * short, with_hole, rng)
            union = np.zeros_like(mask)
            for m in visible:
                union |= m
            overlaps = bool((mask & union).any())
            if overlaps and not (allow_overlap and _visible_ok(visible, mask)):
                continue
            visible = [m & (1 - mask) for m in visible]
            placed.append((cls, mask, polys, hole))
            visible.append(mask)
            break
    return placed, visible


def make_shapes_image(index: int, split: str, seed: int = 0, min_size: int = 96,
                      max_size: int = 160, num_classes: int = 3,
                      max_instances: int = 4) -> ShapeImage:
    """Generate image ``index`` of ``split`` (pixels and instances, nothing written).

    Args:
        index: position in the split; decides empty/crowd/PNG images (see module constants).
        split: "train" or "val" (any name; it seeds the generator).
        seed: base seed.
        min_size, max_size: range of each image side in pixels (sides drawn independently).
        num_classes: number of shape kinds, 1..5.
        max_instances: most non-crowd shapes per image.

    Returns:
        The ShapeImage; each instance's ``mask`` is exactly its annotation's decoding.
    """
    split_key = sum(ord(c) * 31 ** i for i, c in enumerate(split)) % (2 ** 31)
    rng = np.random.default_rng([seed, split_key, index])
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    image = background(height, width, rng)
    ext = ".png" if index % _PNG_EVERY == 3 else ".jpg"
    result = ShapeImage(image, f"{index:06d}{ext}", image_id=2 * index + 1)
    if index % _EMPTY_EVERY == 5:
        return result

    layers = []  # (cls, full mask, polygons, has_hole, is_crowd) in painting order
    if index % _CROWD_EVERY == 2:
        cls, mask = _make_crowd(height, width, num_classes, rng)
        layers.append((cls, mask, None, False, True))
    placed, _ = _place_shapes(height, width, int(rng.integers(1, max_instances + 1)),
                              num_classes, rng)
    layers += [(cls, mask, polys, hole, False) for cls, mask, polys, hole in placed]

    for i, (cls, mask, polys, hole, crowd) in enumerate(layers):
        _paint(image, mask, rng)
        visible = mask.copy()
        for later in layers[i + 1:]:
            visible &= 1 - later[1]
        if visible.sum() == 0:
            continue
        if crowd:
            seg, enc = uncompressed_rle(visible), "uncompressed_rle"
        elif hole or not np.array_equal(visible, mask):
            seg, enc = compressed_rle(visible), "rle"
        else:
            seg, enc = polys, "polygon"
        result.instances.append(ShapeInstance(cls, visible, crowd, seg, enc, hole))
    return result


def _annotation(inst: ShapeInstance, ann_id: int, image_id: int, category_ids) -> dict:
    rle = mask_utils.encode(np.asfortranarray(inst.mask))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    x, y, w, h = (round(v, 2) for v in (x + inst.origin[0], y + inst.origin[1], w, h))
    return {"id": ann_id, "image_id": image_id, "category_id": category_ids[inst.class_index],
            "segmentation": inst.segmentation, "area": float(mask_utils.area(rle)),
            "bbox": [x, y, w, h], "iscrowd": int(inst.is_crowd)}


def write_image(path: str, image: np.ndarray) -> None:
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, 92] if path.endswith(".jpg") else []
    if not cv2.imwrite(path, bgr, params):
        raise OSError(f"could not write {path}")


def write_coco_split(root: str, split: str, num_images: int, make_image, categories: list[dict],
                     description: str) -> dict:
    """Write images/<split>/ and annotations/instances_<split>.json from a generator.

    Args:
        root: dataset folder.
        split: split name.
        num_images: images to write.
        make_image: ``index -> ShapeImage`` (class indices into ``categories``).
        categories: the COCO ``categories`` list.
        description: the annotation file's ``info.description``.

    Returns:
        {"images": image folder, "annotations": annotation file}.
    """
    image_dir = os.path.join(root, "images", split)
    ann_dir = os.path.join(root, "annotations")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    category_ids = [c["id"] for c in categories]
    images, annotations = [], []
    for index in range(num_images):
        sample = make_image(index)
        write_image(os.path.join(image_dir, sample.file_name), sample.image)
        height, width = sample.image.shape[:2]
        images.append({"id": sample.image_id, "file_name": sample.file_name,
                       "height": height, "width": width})
        for inst in sample.instances:
            annotations.append(_annotation(inst, len(annotations) + 1, sample.image_id,
                                           category_ids))
    coco = {"info": {"description": description}, "images": images,
            "annotations": annotations, "categories": categories}
    ann_file = os.path.join(ann_dir, f"instances_{split}.json")
    tmp = f"{ann_file}.tmp"
    with open(tmp, "w") as f:
        json.dump(coco, f)
    os.replace(tmp, ann_file)
    return {"images": image_dir, "annotations": ann_file}


def write_split(root: str, split: str, num_images: int, seed: int = 0, min_size: int = 96,
                max_size: int = 160, num_classes: int = 3, max_instances: int = 4,
                objects: int = 0) -> dict:
    """Write one ``shapes`` split under ``root``; returns its image folder and annotation file.
    ``objects`` > 0: large images of about that many small shapes (tfseg.data.large)."""
    if objects:
        from tfseg.data.large import make_large_image  # it draws with this module's shapes

        def make(index):
            return make_large_image(index, split, seed, min_size, max_size, num_classes, objects)
    else:
        def make(index):
            return make_shapes_image(index, split, seed, min_size, max_size, num_classes,
                                     max_instances)
    return write_coco_split(root, split, num_images, make, category_table(num_classes),
                            f"tfseg shapes, split {split}, seed {seed}")


def write_shapes(root: str, num_train: int = 40, num_val: int = 10, seed: int = 0,
                 min_size: int = 96, max_size: int = 160, num_classes: int = 3,
                 max_instances: int = 4, objects: int = 0) -> dict:
    """Write the ``shapes`` dataset (train and val) under ``root``.

    Args:
        root: output folder (created; files of the same name are overwritten).
        num_train, num_val: images per split.
        seed: the same seed (and arguments) gives byte-identical files.
        min_size, max_size: range of each image side in pixels.
        num_classes: shape kinds 1..5 (circle, rectangle, triangle, pentagon, ellipse),
            category ids 1, 3, 7, 8, 12.
        max_instances: most non-crowd shapes per image.
        objects: 0, or about this many small (20-80 px) shapes per image instead, scattered
            without overlap: large images for tiled inference (tfseg.data.large).

    Returns:
        {"root", "train_images", "train_annotations", "val_images", "val_annotations",
         "class_names", "category_ids"}; paths are strings.
    """
    if min_size < 32 or max_size < min_size:
        raise ValueError(f"need 32 <= min_size <= max_size, got {min_size}, {max_size}")
    out = {"root": str(root)}
    for split, count in (("train", num_train), ("val", num_val)):
        paths = write_split(str(root), split, count, seed, min_size, max_size, num_classes,
                            max_instances, objects)
        out[f"{split}_images"], out[f"{split}_annotations"] = paths["images"], paths["annotations"]
    out["class_names"] = list(KINDS[:num_classes])
    out["category_ids"] = list(CATEGORY_IDS[:num_classes])
    return out
