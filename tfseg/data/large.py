"""Large ``shapes`` images: thousands of pixels a side, tens to hundreds of small shapes.

The built-in shapes set (tfseg.data.shapes) draws a few shapes sized to small images. Here
an image of ``min_size``..``max_size`` px a side gets about ``objects`` circles, rectangles
and triangles (the same kinds, outlines and colours) of 20-80 px, scattered without
overlap: what tiled inference is for (docs/large_images.md). It is what
``tfseg data shapes shapes_objects=<n>`` writes, in the same COCO layout.

Nothing of the image's size is made per shape: each outline is rasterized by pycocotools
in a window around it (so the stored polygon and the mask agree exactly, as in the small
set), painted there, and annotated as a crop with its origin. The background is drawn at
1/8 scale and enlarged, with per-pixel noise added a band at a time, so a 10,000 px square
image needs little more memory than its own pixels. Deterministic: image i of a split
depends only on (seed, split, i).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from tfseg.data.shapes import KINDS, ShapeImage, ShapeInstance, background, rasterize, shape_polygon

RADIUS = (10.0, 40.0)  # shapes of 20-80 px
BACKGROUND_SCALE = 8   # the texture is drawn this many times smaller, then enlarged
_NOISE_ROWS = 512      # rows of noise made at a time
_ATTEMPTS = 30         # placements tried per shape before it is given up


def large_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """``[H, W, 3]`` uint8: a shapes texture at 1/8 scale, enlarged, with per-pixel noise."""
    small = background(max(1, height // BACKGROUND_SCALE), max(1, width // BACKGROUND_SCALE), rng)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    for top in range(0, height, _NOISE_ROWS):
        band = image[top:top + _NOISE_ROWS]
        noise = rng.integers(-10, 11, size=band.shape, dtype=np.int16)
        band[...] = np.clip(band.astype(np.int16) + noise, 0, 255).astype(np.uint8)
    return image


def _positions(height: int, width: int, count: int, rng: np.random.Generator) -> list[tuple]:
    """Up to ``count`` (cx, cy, r) circles inside the image, 2 px apart at least."""
    placed: list[tuple[float, float, float]] = []
    for _ in range(count):
        for _attempt in range(_ATTEMPTS):
            r = float(rng.uniform(*RADIUS))
            if width <= 2 * r + 2 or height <= 2 * r + 2:
                break
            cx, cy = float(rng.uniform(r + 1, width - r - 1)), float(rng.uniform(r + 1, height - r - 1))
            if all(math.hypot(cx - x, cy - y) > r + q + 2 for x, y, q in placed):
                placed.append((cx, cy, r))
                break
    return placed


def _local_shape(kind: str, cx: float, cy: float, r: float, height: int, width: int,
                 rng: np.random.Generator) -> tuple[list[float], np.ndarray, np.ndarray]:
    """One shape's polygon (image pixels), its mask in a window around it, and the
    window's origin (x0, y0)."""
    # Vertices on a 1/5 px grid: pycocotools rasterizes round(5 x), which no float error
    # can tip there, so the polygon fills the same pixels in the window as in the image.
    polygon = [round(round(v * 5) / 5, 1) for v in shape_polygon(kind, cx, cy, r, rng)]
    x0, y0 = max(0, int(math.floor(cx - r)) - 1), max(0, int(math.floor(cy - r)) - 1)
    x1, y1 = min(width, int(math.ceil(cx + r)) + 2), min(height, int(math.ceil(cy + r)) + 2)
    local = [round(v - (x0 if i % 2 == 0 else y0), 1) for i, v in enumerate(polygon)]
    return polygon, rasterize([local], y1 - y0, x1 - x0), np.array([x0, y0], np.int32)


def _paint_window(image: np.ndarray, mask: np.ndarray, origin: np.ndarray,
                  rng: np.random.Generator) -> None:
    """Fill the mask's pixels (a window at ``origin``) with a saturated, mildly noisy colour."""
    x0, y0 = int(origin[0]), int(origin[1])
    window = image[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]]
    color = rng.permutation([rng.uniform(200, 255), rng.uniform(0, 60), rng.uniform(0, 255)])
    noise = rng.normal(0, 8, size=(int(mask.sum()), 3))
    window[mask.astype(bool)] = np.clip(color + noise, 0, 255).astype(np.uint8)


def make_large_image(index: int, split: str, seed: int = 0, min_size: int = 3000,
                     max_size: int = 4000, num_classes: int = 3, objects: int = 100) -> ShapeImage:
    """Generate image ``index`` of ``split``: about ``objects`` small shapes (75-125 %).

    Args:
        index: position in the split.
        split: split name (it seeds the generator).
        seed: base seed.
        min_size, max_size: range of each image side in pixels (drawn independently).
        num_classes: shape kinds 1..5, as in tfseg.data.shapes.
        objects: the mean number of shapes.

    Returns:
        A ShapeImage (JPEG file name) whose instances hold their mask as a crop at
        ``origin``; all are whole, unoccluded polygons.
    """
    split_key = sum(ord(c) * 31 ** i for i, c in enumerate(split)) % (2 ** 31)
    rng = np.random.default_rng([seed, split_key, index, objects])
    height, width = (int(v) for v in rng.integers(min_size, max_size + 1, size=2))
    image = large_background(height, width, rng)
    result = ShapeImage(image, f"{index:06d}.jpg", image_id=index + 1)
    count = int(rng.integers(max(1, objects * 3 // 4), objects * 5 // 4 + 1))
    for cx, cy, r in _positions(height, width, count, rng):
        cls = int(rng.integers(num_classes))
        polygon, mask, origin = _local_shape(KINDS[cls], cx, cy, r, height, width, rng)
        if not mask.any():
            continue
        _paint_window(image, mask, origin, rng)
        result.instances.append(ShapeInstance(cls, mask, segmentation=[polygon],
                                              origin=(int(origin[0]), int(origin[1]))))
    return result
