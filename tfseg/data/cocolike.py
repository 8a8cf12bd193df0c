"""``cocolike``: a synthetic COCO-format set with COCO's statistics, for speed and memory figures.

The ``shapes`` set is easy on purpose (small images, 1-4 large shapes, 3 classes). What users
train on is not: COCO 2017 train has images of 480-640 px a side, 7.3 instances per image on
average with a long tail past 50, 41% small objects (area under 32^2), 34% medium, 25% large,
80 classes and crowd regions. A pipeline or a loss whose cost grows with the instance count or
the image size looks fast on ``shapes`` and slow on COCO; this set shows it, offline.

What each image holds (all drawn from ``(seed, split, index)`` alone, so files are
reproducible byte for byte):

- sides drawn independently in ``[min_size, max_size]`` (default 480-640 px);
- ``1 + NegativeBinomial`` instances drawn, mean ``mean_instances`` (default 8.5, about 7 left
  after occlusion) with a long tail, capped at ``max_instances`` (60); every 50th image is empty;
- object areas drawn per COCO size band (41% small, 34% medium, 25% large), log-uniform within
  the band;
- 30 classes: 5 shape kinds x 6 colours, so the class is visible in the pixels; category ids
  are non-contiguous (1, 4, 7, ...);
- occlusion by painting order: an instance keeps the pixels no later instance covers and is
  dropped (not drawn) when under 20% of it would show; occluded ones are stored as RLE, whole
  ones as polygons;
- every 8th image holds a crowd region (a cluster of small shapes, uncompressed RLE).
"""

from __future__ import annotations

import numpy as np

from tfseg.data.shapes import (KINDS, ShapeImage, ShapeInstance, background, compressed_rle,
                               crowd_mask, rasterize, shape_polygon, uncompressed_rle,
                               write_coco_split)

COLOURS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 70, 220),
           "yellow": (230, 210, 40), "magenta": (210, 50, 200), "cyan": (40, 200, 210)}
_SIZE_BANDS = ((0.41, 40.0, 32.0 ** 2), (0.34, 32.0 ** 2, 96.0 ** 2), (0.25, 96.0 ** 2, None))
_EMPTY_EVERY = 50
_CROWD_EVERY = 8
_PNG_EVERY = 4
_MIN_VISIBLE = 0.2


def categories() -> list[dict]:
    """The 30 COCO categories: "<colour> <kind>", ids 1, 4, 7, ... (non-contiguous)."""
    names = [f"{colour} {kind}" for kind in KINDS for colour in COLOURS]
    return [{"id": 1 + 3 * i, "name": name, "supercategory": name.split()[1]}
            for i, name in enumerate(names)]


def _radius(height: int, width: int, rng: np.random.Generator) -> float:
    """A shape radius whose area falls in a COCO size band (log-uniform within it)."""
    band = rng.choice(len(_SIZE_BANDS), p=[b[0] for b in _SIZE_BANDS])
    _, low, high = _SIZE_BANDS[band]
    high = high or 0.4 * height * width
    area = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    return min(np.sqrt(area / np.pi), 0.45 * min(height, width))


def _instance_count(index: int, mean: float, cap: int, rng: np.random.Generator) -> int:
    """0 on every 50th image, else 1 + NegativeBinomial(r=0.9) with the given mean, capped."""
    if index % _EMPTY_EVERY == _EMPTY_EVERY - 1:
        return 0
    extra_mean = max(mean - 1.0, 0.1)
    r = 0.9
    return int(min(cap, 1 + rng.negative_binomial(r, r / (r + extra_mean))))


def _draw_masks(height, width, count, rng):
    """``count`` random shapes -> list of (class index, full mask, polygons) in painting order."""
    shapes = []
    for _ in range(count):
        cls = int(rng.integers(len(KINDS) * len(COLOURS)))
        r = _radius(height, width, rng)
        cx, cy = float(rng.uniform(r, width - r)), float(rng.uniform(r, height - r))
        polygon = shape_polygon(KINDS[cls // len(COLOURS)], cx, cy, r, rng)
        shapes.append((cls, rasterize([polygon], height, width), [polygon]))
    return shapes


def _crowd(height, width, rng):
    """A cluster of 10-20 small shapes of one class -> (class index, union mask)."""
    cls = int(rng.integers(len(KINDS) * len(COLOURS)))
    mask = crowd_mask(height, width, KINDS[cls // len(COLOURS)], rng, count=(10, 21),
                      radius=(3, 7), extent=(0.2, 0.35))
    return cls, mask


def _paint(image: np.ndarray, mask: np.ndarray, cls: int, rng: np.random.Generator) -> None:
    """Fill ``mask`` with the class's colour plus mild noise (in place)."""
    colour = np.array(list(COLOURS.values())[cls % len(COLOURS)], np.float32)
    noise = rng.normal(0, 10, size=(int(mask.sum()), 3))
    image[mask.astype(bool)] = np.clip(colour + noise, 0, 255).astype(np.uint8)


def make_cocolike_image(index: int, split: str, seed: int = 0, min_size: int = 480,
                        max_size: int = 640, mean_instances: float = 8.5,
                        max_instances: int = 60) -> ShapeImage:
    """Generate image ``index`` of ``split`` (pixels and instances, nothing written).

    Args:
        index: position in the split; decides empty, crowd and PNG images.
        split: split name (it seeds the generator).
        seed: base seed.
        min_size, max_size: range of each image side in pixels.
        mean_instances: mean non-crowd instances drawn per non-empty image (before occlusion
            drops some).
        max_instances: most instances drawn per image.

    Returns:
        The ShapeImage; each instance's ``mask`` is exactly its annotation's decoding.
    """
    split_key = sum(ord(c) * 31 ** i for i, c in enumerate(split)) % (2 ** 31)
    rng = np.random.default_rng([seed, split_key, index, 7])
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    image = background(height, width, rng)
    ext = ".png" if index % _PNG_EVERY == _PNG_EVERY - 1 else ".jpg"
    result = ShapeImage(image, f"{index:06d}{ext}", image_id=3 * index + 2)
    count = _instance_count(index, mean_instances, max_instances, rng)
    if count == 0:
        return result
    crowd = _crowd(height, width, rng) if index % _CROWD_EVERY == 3 else None
    shapes = _draw_masks(height, width, count, rng)

    # Visibility from the front: a shape shows what no later (kept) shape covers.
    covered = np.zeros((height, width), np.uint8)
    kept = []
    for cls, mask, polygons in reversed(shapes):
        visible = mask & (1 - covered)
        if visible.sum() < max(_MIN_VISIBLE * mask.sum(), 4):
            continue
        kept.append((cls, mask, visible, polygons))
        covered |= mask
    kept.reverse()

    if crowd is not None:
        cls, mask = crowd
        visible = mask & (1 - covered)
        if visible.sum():
            _paint(image, mask, cls, rng)
            result.instances.append(ShapeInstance(cls, visible, True, uncompressed_rle(visible),
                                                  "uncompressed_rle"))
    for cls, mask, visible, polygons in kept:
        _paint(image, mask, cls, rng)
        whole = np.array_equal(visible, mask)
        segmentation = polygons if whole else compressed_rle(visible)
        result.instances.append(ShapeInstance(cls, visible, False, segmentation,
                                              "polygon" if whole else "rle"))
    return result


def write_cocolike(root: str, num_train: int = 300, num_val: int = 80, seed: int = 0,
                   min_size: int = 480, max_size: int = 640, mean_instances: float = 8.5,
                   max_instances: int = 60) -> dict:
    """Write the ``cocolike`` dataset (train and val) under ``root``.

    Returns:
        {"root", "train_images", "train_annotations", "val_images", "val_annotations",
         "class_names", "category_ids"}, as tfseg.data.shapes.write_shapes.
    """
    table = categories()
    out = {"root": str(root)}
    for split, count in (("train", num_train), ("val", num_val)):
        paths = write_coco_split(
            str(root), split, count,
            lambda index, split=split: make_cocolike_image(index, split, seed, min_size, max_size,
                                                           mean_instances, max_instances),
            table, f"tfseg cocolike, split {split}, seed {seed}")
        out[f"{split}_images"], out[f"{split}_annotations"] = paths["images"], paths["annotations"]
    out["class_names"] = [c["name"] for c in table]
    out["category_ids"] = [c["id"] for c in table]
    return out
