"""Host side of the post-processing (numpy, cv2, pycocotools): detections -> original image.

The graph returns detections in letterboxed input pixels with masks at prototype resolution.
Here, for the kept detections only: boxes go back to original pixels (the inverse map of
tfseg.ops.letterbox), and each mask is warped from prototype pixels straight to the original
pixels inside its box (one bilinear cv2.warpAffine per instance, never a full-image resize),
thresholded, and cropped to its box. Box-aligned masks (``box_masks``, the exports'
``mask_size`` option) are warped the same way from their m x m grid (the convention of
tfseg.postprocess.masks). Masks are kept as box-sized crops; full-size masks, COCO RLE and
polygons are made from them on demand.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from tfseg.contracts import PROTO_STRIDE
from tfseg.ops.letterbox import letterbox_inverse_boxes


@dataclass
class ImageDetections:
    """Detections of one image in original pixels.

    Attributes:
        boxes: ``[n, 4]`` float32 xyxy, original pixels, clipped to the image.
        scores: ``[n]`` float32.
        classes: ``[n]`` int32 contiguous class index.
        mask_crops: n bool arrays, each ``[h_i, w_i]``: the mask inside the integer box
            ``mask_origins[i]`` (x0, y0) of size (w_i, h_i).
        mask_origins: ``[n, 2]`` int32 (x0, y0) of each crop in the original image.
        height, width: original image size.
    """
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    mask_crops: list
    mask_origins: np.ndarray
    height: int
    width: int

    def __len__(self) -> int:
        return len(self.scores)

    def full_mask(self, i: int) -> np.ndarray:
        """``[H, W]`` bool mask of detection ``i``."""
        full = np.zeros((self.height, self.width), bool)
        _paste(full, self.mask_crops[i], self.mask_origins[i])
        return full

    def mask_areas(self) -> np.ndarray:
        """``[n]`` int64 pixel count of every mask."""
        return np.array([int(c.sum()) for c in self.mask_crops], np.int64)


def _paste(target: np.ndarray, crop: np.ndarray, origin: np.ndarray) -> None:
    x0, y0 = int(origin[0]), int(origin[1])
    target[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop


def _box_pixel_range(box: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer pixel range (x0, y0, x1, y1), exclusive ends, covering an xyxy box."""
    x0 = int(np.clip(np.floor(box[0]), 0, width))
    y0 = int(np.clip(np.floor(box[1]), 0, height))
    x1 = int(np.clip(np.ceil(box[2]), x0, width))
    y1 = int(np.clip(np.ceil(box[3]), y0, height))
    return x0, y0, x1, y1


def _inside(box: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """``[y1 - y0, x1 - x0]`` bool: pixels whose centre is inside the xyxy box (the rule of
    tfseg.ops.masks.crop_to_boxes)."""
    cols = np.arange(x0, x1) + 0.5
    rows = np.arange(y0, y1) + 0.5
    return ((rows >= box[1]) & (rows < box[3]))[:, None] & ((cols >= box[0]) & (cols < box[2]))[None]


def mask_to_original(mask: np.ndarray, box: np.ndarray, info: np.ndarray,
                     threshold: float = 0.5, proto_stride: int = PROTO_STRIDE
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One prototype-resolution mask -> bool mask inside its box in original pixels.

    The centre of original pixel (c, r) sits at input pixel ((c + 0.5) * scale + pad_left,
    (r + 0.5) * scale + pad_top), i.e. at prototype pixel coordinate (that / stride - 0.5)
    counted between pixel centres; the affine map below samples exactly there.

    Args:
        mask: ``[P, P]`` float32 probabilities (zero outside the box).
        box: ``[4]`` xyxy original pixels, clipped to the image.
        info: ``[5]`` letterbox info (orig_height, orig_width, scale, pad_top, pad_left).
        threshold: probability above which a pixel belongs to the instance.
        proto_stride: input pixels per prototype pixel.

    Returns:
        crop: ``[h, w]`` bool, the mask on the pixels of the box's integer range.
        origin: ``[2]`` int32 (x0, y0) of the crop.
    """
    height, width, scale, pad_top, pad_left = (float(v) for v in info)
    x0, y0, x1, y1 = _box_pixel_range(box, int(height), int(width))
    origin = np.array([x0, y0], np.int32)
    if x1 <= x0 or y1 <= y0:
        return np.zeros((0, 0), bool), origin
    step = scale / proto_stride
    to_proto = np.array([
        [step, 0.0, ((x0 + 0.5) * scale + pad_left) / proto_stride - 0.5],
        [0.0, step, ((y0 + 0.5) * scale + pad_top) / proto_stride - 0.5]], np.float64)
    warped = cv2.warpAffine(np.ascontiguousarray(mask, np.float32), to_proto, (x1 - x0, y1 - y0),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return (warped > threshold) & _inside(box, x0, y0, x1, y1), origin


def box_mask_to_original(box_mask: np.ndarray, grid_box: np.ndarray, box: np.ndarray,
                         height: int, width: int, threshold: float = 0.5
                         ) -> tuple[np.ndarray, np.ndarray]:
    """One box-aligned ``[m, m]`` mask -> bool mask inside its box in original pixels.

    Cell (i, j) is centred at ``grid_box``'s (x1 + (j + 0.5) w / m, y1 + (i + 0.5) h / m);
    original pixel (c, r) samples the grid there bilinearly (edge cells repeat outward).

    Args:
        box_mask: ``[m, m]`` float32 probabilities (or uint8 round(255 p)).
        grid_box: ``[4]`` xyxy original pixels the grid spans: the detection's box mapped
            back from input pixels WITHOUT clipping.
        box: ``[4]`` the same box clipped to the image (where pixels are kept).
        height, width: original image size.
        threshold: probability above which a pixel belongs to the instance.

    Returns:
        crop: ``[h, w]`` bool on the pixels of ``box``'s integer range; origin ``[2]`` (x0, y0).
    """
    x0, y0, x1, y1 = _box_pixel_range(box, height, width)
    origin = np.array([x0, y0], np.int32)
    # The whole map in float64 (a float32 term moves samples by an ulp, which OpenCV 5's
    # unquantised warpAffine turns into flipped pixels at the threshold).
    grid_box = np.asarray(grid_box, np.float64)
    span_x, span_y = grid_box[2] - grid_box[0], grid_box[3] - grid_box[1]
    if x1 <= x0 or y1 <= y0 or span_x <= 0 or span_y <= 0:
        return np.zeros((0, 0), bool), origin
    if box_mask.dtype == np.uint8:
        box_mask = box_mask.astype(np.float32) / 255.0
    size_y, size_x = box_mask.shape
    to_grid = np.array([
        [size_x / span_x, 0.0, (x0 + 0.5 - grid_box[0]) * size_x / span_x - 0.5],
        [0.0, size_y / span_y, (y0 + 0.5 - grid_box[1]) * size_y / span_y - 0.5]], np.float64)
    warped = cv2.warpAffine(np.ascontiguousarray(box_mask, np.float32), to_grid,
                            (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
    return (warped > threshold) & _inside(box, x0, y0, x1, y1), origin


def _mask_crop(detections: dict, b: int, i: int, boxes: np.ndarray, grid_boxes: np.ndarray,
               info: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Detection (b, i)'s mask crop from whichever mask output the detections carry."""
    if "box_masks" in detections:
        return box_mask_to_original(np.asarray(detections["box_masks"][b, i]), grid_boxes[i],
                                    boxes[i], int(info[0]), int(info[1]), threshold)
    mask = np.asarray(detections["masks"][b, i])
    if mask.dtype == np.uint8:
        mask = mask.astype(np.float32) / 255.0
    return mask_to_original(mask, boxes[i], info, threshold)


def to_original(detections: dict, letterbox: np.ndarray, threshold: float = 0.5
                ) -> list[ImageDetections]:
    """A batch of detections (DETECTIONS contract, numpy) -> one ImageDetections per image.

    Args:
        detections: dict of numpy arrays: boxes ``[B, N, 4]`` input pixels, scores ``[B, N]``,
            classes ``[B, N]``, masks ``[B, N, P, P]`` (or box_masks ``[B, N, m, m]``),
            num_detections ``[B]``.
        letterbox: ``[B, 5]`` float32 letterbox info of each image.
        threshold: mask probability threshold.

    Returns:
        B ImageDetections; detections whose box is empty in the original image are dropped.
    """
    letterbox = np.asarray(letterbox, np.float32)
    input_boxes = np.asarray(detections["boxes"], np.float32)
    original_boxes = letterbox_inverse_boxes(input_boxes, letterbox).numpy()  # [B, N, 4]
    grid_boxes = letterbox_inverse_boxes(input_boxes, letterbox, clip=False).numpy()
    results = []
    for b, count in enumerate(np.asarray(detections["num_detections"]).astype(int)):
        height, width = int(letterbox[b, 0]), int(letterbox[b, 1])
        boxes = original_boxes[b, :count]
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        crops, origins = [], []
        for i in np.flatnonzero(keep):
            crop, origin = _mask_crop(detections, b, i, boxes, grid_boxes[b], letterbox[b],
                                      threshold)
            crops.append(crop)
            origins.append(origin)
        results.append(ImageDetections(
            boxes=boxes[keep].astype(np.float32),
            scores=np.asarray(detections["scores"][b, :count], np.float32)[keep],
            classes=np.asarray(detections["classes"][b, :count], np.int32)[keep],
            mask_crops=crops, mask_origins=np.array(origins, np.int32).reshape(-1, 2),
            height=height, width=width))
    return results


def encode_rle(detections: ImageDetections) -> list[dict]:
    """COCO RLE (pycocotools, compressed, counts as str) of every mask, original size.

    The run lengths come from each crop alone (``crop_run_lengths``); pycocotools compresses
    them. Encoding the full-size mask instead scanned every pixel of the image per detection
    (about 80 us for a 640 x 480 image, most of an evaluation's host time).
    """
    height, width = detections.height, detections.width
    if not detections.mask_crops:
        return []
    runs = [{"counts": crop_run_lengths(crop, origin, height, width), "size": [height, width]}
            for crop, origin in zip(detections.mask_crops, detections.mask_origins)]
    rles = mask_utils.frPyObjects(runs, height, width)
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


def crop_run_lengths(crop: np.ndarray, origin: np.ndarray, height: int, width: int) -> list[int]:
    """Uncompressed COCO run lengths of a ``height x width`` mask that is zero outside ``crop``.

    COCO runs alternate zeros and ones (zeros first, possibly 0 long) in column-major order.
    Each column of the crop, framed by a zero above and below, is scanned for the rows where
    the value changes; those positions map to the full image (column x, row y -> x * height
    + y), and a run that ends on the image's last row and restarts on the next column's
    first row is one run.

    Args:
        crop: ``[h, w]`` bool, the mask on pixels ``[y0, y0 + h) x [x0, x0 + w)``.
        origin: (x0, y0).
        height, width: the image's size.

    Returns:
        The run lengths, summing to ``height * width`` (pycocotools' own: no zero-length
        last run).
    """
    total = height * width
    rows, cols = crop.shape
    if not crop.any():  # empty or zero-sized
        return [total]
    x0, y0 = int(origin[0]), int(origin[1])
    framed = np.zeros((cols, rows + 2), np.int8)  # one column per row of this array
    framed[:, 1:-1] = crop.T
    changes = np.flatnonzero(np.diff(framed.reshape(-1))) + 1  # starts and ends, alternating
    column, row = np.divmod(changes, rows + 2)
    edges = (x0 + column) * height + (y0 + row - 1)  # [start, end, start, end, ...]
    starts, ends = edges[0::2], edges[1::2]
    joined = ends[:-1] == starts[1:]  # a run across a column break of a full-height crop
    if joined.any():
        starts = np.concatenate([starts[:1], starts[1:][~joined]])
        ends = np.concatenate([ends[:-1][~joined], ends[-1:]])
    counts = np.empty(2 * len(starts) + 1, np.int64)
    counts[0] = starts[0]
    counts[1:-1:2] = ends - starts
    counts[2:-1:2] = starts[1:] - ends[:-1]
    counts[-1] = total - ends[-1]
    return counts[:-1].tolist() if counts[-1] == 0 else counts.tolist()  # no empty last run


def polygons(detections: ImageDetections, i: int, min_points: int = 3) -> list[list[float]]:
    """Outer contours of mask ``i`` as COCO polygons ``[[x1, y1, x2, y2, ...], ...]``.

    Coordinates are pixel centres of the boundary pixels, original image pixels.
    """
    crop = detections.mask_crops[i].astype(np.uint8)
    if crop.size == 0:
        return []
    contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    x0, y0 = detections.mask_origins[i]
    result = []
    for contour in contours:
        if len(contour) < min_points:
            continue
        points = contour.reshape(-1, 2).astype(np.float32) + np.array([x0, y0], np.float32)
        result.append([round(float(v), 2) for v in points.reshape(-1)])
    return result
