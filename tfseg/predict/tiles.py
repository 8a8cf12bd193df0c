"""Tiled (sliced) inference: a large image as overlapping tiles plus one whole-image pass.

A model of input S sees a 4000 px photo letterboxed to S: a 40 px object shrinks to a few
input pixels and is lost. Here the image is cut into tiles of ``tile`` px that overlap by
``overlap`` of a tile, each tile is letterboxed to S (unchanged when ``tile`` is S) and
batched through the backend, and the whole image goes through once more as predict
always does, so objects larger than a tile are still found. Detections of every pass go
back to original pixels (tfseg.postprocess.host.to_original, then shifted by the tile's
corner), masks staying box-sized crops.

Merging. Where two tiles overlap, both saw the same pixels: an object seen by both (whole
in one, cut by the border of the other, or whole in both) has masks that agree there,
while two neighbouring objects have masks that do not. So two detections of the same
class from different passes are one object when their masks' IoU *inside the region both
passes saw* reaches ``MATCH_IOU``. Groups grow greedily from the best score; a group
becomes one detection: the union of its masks (within the union of their crops), the union
of its boxes, the best score. The project's NMS (tfseg.postprocess.nms) then runs over the
merged detections, class-aware unless ``agnostic``.

Memory stays bounded by the detections, not the image: masks are box crops, a merge
allocates only its union box, and at most ``POOL_FACTOR * max_det`` tile detections (the
best-scoring) are kept while the tiles run. Nothing of the image's full size is made but
the image itself.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import tensorflow as tf

from tfseg.ops.boxes import pairwise_iou
from tfseg.ops.letterbox import letterbox_image, letterbox_info
from tfseg.postprocess.host import ImageDetections, to_original
from tfseg.postprocess.nms import nms_one_image

TILE_BATCH = 8      # tiles per backend call; the last call is filled up so shapes stay fixed
MATCH_IOU = 0.5     # mask IoU, in the region two passes share, that makes them one object
POOL_FACTOR = 4     # tile detections kept while tiling: this many times max_det, best first
SHRINK_FIRST = 4    # the whole-image pass of an image over 4 S is area-shrunk before its letterbox


def axis_starts(length: int, tile: int, overlap: float) -> list[int]:
    """Start offsets of tiles along one side: the first at 0, the last ending at ``length``,
    evenly spread so consecutive tiles overlap by at least ``overlap * tile`` pixels.

    A side no longer than ``tile`` gets one tile (which is then only ``length`` long).
    """
    if length <= tile:
        return [0]
    stride = max(1, int(math.floor(tile * (1.0 - overlap))))
    count = math.ceil((length - tile) / stride) + 1
    return sorted({int(round(v)) for v in np.linspace(0, length - tile, count)})


def tile_windows(height: int, width: int, tile: int, overlap: float) -> np.ndarray:
    """The tiles of an image: ``[T, 4]`` int64 (x0, y0, x1, y1), exclusive ends, row by row.

    Every tile lies inside the image (edge tiles are moved in, not cut short), together
    they cover every pixel, and neighbours overlap by at least ``overlap * tile``.
    """
    if tile < 1 or not 0.0 <= overlap < 1.0:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < 1, got {tile}, {overlap}")
    windows = [(x, y, min(x + tile, width), min(y + tile, height))
               for y in axis_starts(height, tile, overlap) for x in axis_starts(width, tile, overlap)]
    return np.array(windows, np.int64).reshape(-1, 4)


def _letterboxed(crop: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``[h, w, 3]`` uint8 -> (``[S, S, 3]`` uint8, ``[5]`` letterbox info); a crop that is
    already S x S is the input as it is (letterboxing it would change nothing).

    A crop more than SHRINK_FIRST times S is first shrunk with pixel-area averaging to
    twice S: the letterbox's bilinear resize would otherwise hold a float copy of the
    whole image (1.2 GB for 10,000 px square) and sample one pixel in dozens. The info
    vector stays the original crop's (the shrunk image's letterbox lands within an input
    pixel of it).
    """
    height, width = crop.shape[:2]
    if height == size and width == size:
        return crop, np.array([size, size, 1.0, 0.0, 0.0], np.float32)
    if max(height, width) > SHRINK_FIRST * size:
        factor = 2.0 * size / max(height, width)
        crop = cv2.resize(crop, (max(1, round(width * factor)), max(1, round(height * factor))),
                          interpolation=cv2.INTER_AREA)
    padded, _ = letterbox_image(tf.constant(crop), size)
    info = letterbox_info(height, width, size)
    return tf.cast(tf.round(padded), tf.uint8).numpy(), info.numpy()


def place_in_image(detections: ImageDetections, window: np.ndarray, height: int,
                   width: int) -> ImageDetections:
    """Detections in a tile's own pixels -> the same detections in the whole image's pixels
    (boxes and mask crops moved by the tile's corner; the crops themselves are unchanged)."""
    x0, y0 = int(window[0]), int(window[1])
    shift = np.array([x0, y0, x0, y0], np.float32)
    return ImageDetections(detections.boxes + shift, detections.scores, detections.classes,
                           list(detections.mask_crops),
                           detections.mask_origins + np.array([x0, y0], np.int32),
                           height, width)


def _select(detections: ImageDetections, index: np.ndarray) -> ImageDetections:
    return ImageDetections(detections.boxes[index], detections.scores[index],
                           detections.classes[index], [detections.mask_crops[i] for i in index],
                           detections.mask_origins[index], detections.height, detections.width)


def _concat(parts: list[ImageDetections], height: int, width: int) -> ImageDetections:
    if not parts:
        return ImageDetections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                               np.zeros(0, np.int32), [], np.zeros((0, 2), np.int32), height, width)
    return ImageDetections(np.concatenate([p.boxes for p in parts]).reshape(-1, 4),
                           np.concatenate([p.scores for p in parts]),
                           np.concatenate([p.classes for p in parts]),
                           [c for p in parts for c in p.mask_crops],
                           np.concatenate([p.mask_origins for p in parts]).reshape(-1, 2),
                           height, width)


def _best_rows(raw: dict, tiles: int, floor: float) -> dict:
    """The first ``tiles`` images of a DETECTIONS batch, each cut to its detections scoring
    ``floor`` or more (detections come best first, so those are the leading rows)."""
    cut = {k: np.asarray(v)[:tiles] for k, v in raw.items()}
    valid = np.arange(cut["scores"].shape[1])[None] < cut["num_detections"][:, None]  # [T, N]
    cut["num_detections"] = ((cut["scores"] >= floor) & valid).sum(1).astype(np.int32)
    return cut


def detect_windows(backend, image: np.ndarray, windows: np.ndarray, conf: float,
                   keep: int) -> tuple[ImageDetections, np.ndarray]:
    """Run every window of ``image`` through ``backend`` (TILE_BATCH at a time).

    Once ``keep`` detections are held, a tile's detections scoring below the worst of them
    are dropped before their masks are made (at COCO's threshold of 0.001 most of a tile's
    rows are such).

    Returns:
        The detections scoring at least ``conf``, in image pixels (the ``keep`` best when
        there are more), and ``[n]`` int64 the window each came from.
    """
    height, width = image.shape[:2]
    size = backend.image_size
    pool, views = _concat([], height, width), np.zeros(0, np.int64)
    for first in range(0, len(windows), TILE_BATCH):
        chunk = list(range(first, min(first + TILE_BATCH, len(windows))))
        inputs = [_letterboxed(image[w[1]:w[3], w[0]:w[2]], size) for w in windows[chunk]]
        inputs += [inputs[-1]] * (TILE_BATCH - len(inputs))  # filler, results ignored
        raw = backend.detect(np.stack([pixels for pixels, _ in inputs]))
        floor = max(conf, float(pool.scores.min())) if len(pool) >= keep else conf
        found = to_original(_best_rows(raw, len(chunk), floor),
                            np.stack([info for _, info in inputs[:len(chunk)]]))
        parts = [pool]
        for index, tile in zip(chunk, found):
            parts.append(place_in_image(tile, windows[index], height, width))
            views = np.concatenate([views, np.full(len(tile), index, np.int64)])
        pool = _concat(parts, height, width)
        if len(pool) > keep:
            best = np.sort(np.argsort(-pool.scores, kind="stable")[:keep])
            pool, views = _select(pool, best), views[best]
    return pool, views


def _intersect(a, b) -> tuple[int, int, int, int]:
    return max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])


def _crop_rect(detections: ImageDetections, i: int) -> tuple[int, int, int, int]:
    x0, y0 = (int(v) for v in detections.mask_origins[i])
    h, w = detections.mask_crops[i].shape
    return x0, y0, x0 + w, y0 + h


def _part(detections: ImageDetections, i: int, rect) -> np.ndarray:
    """Mask ``i`` on the pixels of ``rect`` (which must lie inside its crop)."""
    x0, y0 = (int(v) for v in detections.mask_origins[i])
    return detections.mask_crops[i][rect[1] - y0:rect[3] - y0, rect[0] - x0:rect[2] - x0]


def shared_view_iou(detections: ImageDetections, i: int, j: int, view) -> float:
    """IoU of masks ``i`` and ``j`` counted only inside ``view`` (x0, y0, x1, y1): the
    pixels both of their passes saw. 0 when neither mask has a pixel there."""
    rect_i = _intersect(_crop_rect(detections, i), view)
    rect_j = _intersect(_crop_rect(detections, j), view)
    area_i = int(_part(detections, i, rect_i).sum()) if rect_i[2] > rect_i[0] and rect_i[3] > rect_i[1] else 0
    area_j = int(_part(detections, j, rect_j).sum()) if rect_j[2] > rect_j[0] and rect_j[3] > rect_j[1] else 0
    both = _intersect(rect_i, rect_j)
    inter = 0
    if both[2] > both[0] and both[3] > both[1]:
        inter = int((_part(detections, i, both) & _part(detections, j, both)).sum())
    union = area_i + area_j - inter
    return inter / union if union else 0.0


def _groups(detections: ImageDetections, views: np.ndarray, windows: np.ndarray,
            agnostic: bool) -> list[list[int]]:
    """Detections of one object, greedily from the best score (see the module's docstring)."""
    n = len(detections)
    if n == 0:
        return []
    overlapping = pairwise_iou(tf.constant(detections.boxes), tf.constant(detections.boxes)).numpy() > 0
    if not agnostic:
        overlapping &= detections.classes[:, None] == detections.classes[None, :]
    overlapping &= views[:, None] != views[None, :]  # one pass's duplicates are NMS's job
    used = np.zeros(n, bool)
    groups = []
    for seed in np.argsort(-detections.scores, kind="stable"):
        if used[seed]:
            continue
        used[seed] = True
        group, frontier = [int(seed)], [int(seed)]
        while frontier:
            member = frontier.pop()
            for other in np.flatnonzero(overlapping[member] & ~used):
                view = _intersect(windows[views[member]], windows[views[other]])
                if shared_view_iou(detections, member, int(other), view) >= MATCH_IOU:
                    used[other] = True
                    group.append(int(other))
                    frontier.append(int(other))
        groups.append(group)
    return groups


def _union(detections: ImageDetections, group: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The union of the group's mask crops, on the union of their crop rectangles."""
    rects = np.array([_crop_rect(detections, i) for i in group])
    x0, y0 = rects[:, :2].min(0)
    x1, y1 = rects[:, 2:].max(0)
    union = np.zeros((y1 - y0, x1 - x0), bool)
    for i, (a, b, c, d) in zip(group, rects):
        union[b - y0:d - y0, a - x0:c - x0] |= detections.mask_crops[i]
    return union, np.array([x0, y0], np.int32)


def merge_across_tiles(detections: ImageDetections, views: np.ndarray, windows: np.ndarray,
                       agnostic: bool = False) -> ImageDetections:
    """One detection per object seen by several passes.

    Args:
        detections: every pass's detections, image pixels.
        views: ``[n]`` the index into ``windows`` of the pass each detection came from.
        windows: ``[W, 4]`` (x0, y0, x1, y1) of each pass (the whole image for its own pass).
        agnostic: merge across classes too.

    Returns:
        The merged detections, best score first.
    """
    boxes, scores, classes, crops, origins = [], [], [], [], []
    for group in _groups(detections, views, windows, agnostic):
        seed = group[0]
        member_boxes = detections.boxes[group]
        boxes.append(np.concatenate([member_boxes[:, :2].min(0), member_boxes[:, 2:].max(0)]))
        scores.append(detections.scores[seed])
        classes.append(detections.classes[seed])
        crop, origin = _union(detections, group) if len(group) > 1 else (
            detections.mask_crops[seed], detections.mask_origins[seed])
        crops.append(crop)
        origins.append(origin)
    return ImageDetections(np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32),
                           np.array(classes, np.int32), crops,
                           np.array(origins, np.int32).reshape(-1, 2),
                           detections.height, detections.width)


def suppress(detections: ImageDetections, iou: float, max_det: int,
             agnostic: bool = False) -> ImageDetections:
    """The project's NMS (NonMaxSuppressionV5, tfseg.postprocess.nms) over merged detections;
    at most ``max_det`` kept, best first."""
    if len(detections) == 0:
        return detections
    index = np.arange(len(detections), dtype=np.float32)[:, None]  # [n, 1] rides along
    kept = nms_one_image(tf.constant(detections.boxes), tf.constant(detections.scores),
                         tf.constant(detections.classes.astype(np.float32)), tf.constant(index),
                         image_size=max(detections.height, detections.width),
                         max_detections=max_det, iou_threshold=iou, score_threshold=0.0,
                         agnostic=agnostic)
    count = int(kept["num_detections"])
    return _select(detections, kept["coefficients"].numpy()[:count, 0].astype(np.int64))


def tile_size(tile: int, image_size: int) -> int:
    """The tile side in pixels: ``tile``, or the model's input size S when ``tile`` is 1."""
    return image_size if tile == 1 else tile


def detect_tiled(backend, image: np.ndarray, conf: float, iou: float, max_det: int,
                 tile: int, overlap: float, agnostic: bool = False) -> ImageDetections:
    """Detections of one image from overlapping tiles and one whole-image pass, merged.

    Args:
        backend: anything with ``image_size`` and ``detect`` (tfseg.predict.backends).
        image: ``[H, W, 3]`` uint8 RGB.
        conf: score threshold; iou: NMS IoU threshold; max_det: detections kept.
        tile: tile side in pixels (1: the model's input size S).
        overlap: fraction of a tile that neighbouring tiles share, in [0, 1).
        agnostic: merge and suppress across classes.

    Returns:
        ImageDetections in original pixels, masks as box crops.
    """
    height, width = image.shape[:2]
    windows = tile_windows(height, width, tile_size(tile, backend.image_size), overlap)
    whole = np.array([[0, 0, width, height]], np.int64)
    if len(windows) == 1 and np.array_equal(windows, whole):
        windows = np.zeros((0, 4), np.int64)  # one tile is the whole image: one pass
    windows = np.concatenate([windows, whole])
    found, views = detect_windows(backend, image, windows, conf, POOL_FACTOR * max_det)
    merged = merge_across_tiles(found, views, windows, agnostic)
    return suppress(merged, iou, max_det, agnostic)
