"""Overlays and cut-outs of detections on the original image (host side, OpenCV).

Overlay: every instance's mask tinted in its own colour, its box, and "class score".
Cut-outs: each instance cropped to its box, on a transparent (RGBA) or black background.
"""

from __future__ import annotations

import cv2
import numpy as np

from tfseg.postprocess.host import ImageDetections

_GOLDEN = 0.618033988749895


def instance_colour(index: int) -> tuple[int, int, int]:
    """A stable, distinct RGB colour for instance ``index`` (golden-ratio hue steps)."""
    hue = int((index * _GOLDEN % 1.0) * 179)
    rgb = cv2.cvtColor(np.uint8([[[hue, 210, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
    return tuple(int(v) for v in rgb)


def draw_overlay(image: np.ndarray, detections: ImageDetections, class_names: list[str],
                 alpha: float = 0.45, line_width: int | None = None,
                 track_ids: list[int] | None = None) -> np.ndarray:
    """The image with masks, boxes and labels drawn.

    Args:
        image: ``[H, W, 3]`` uint8 RGB original image.
        detections: detections in the image's pixels.
        class_names: name per class index.
        alpha: mask opacity.
        line_width: box line width (default scales with the image).
        track_ids: one id per detection (tracking): each is coloured by its id, so an object
            keeps its colour from frame to frame, and labelled "id:N class score".

    Returns:
        ``[H, W, 3]`` uint8 RGB.
    """
    canvas = image.copy()
    height, width = image.shape[:2]
    line_width = line_width or max(1, round(0.002 * (height + width)))
    font_scale = max(0.35, line_width / 3)
    keys = list(range(len(detections))) if track_ids is None else list(track_ids)
    for i in range(len(detections)):
        colour = np.array(instance_colour(keys[i]), np.float32)
        crop, (x0, y0) = detections.mask_crops[i], detections.mask_origins[i]
        region = canvas[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
        region[crop] = ((1 - alpha) * region[crop] + alpha * colour).astype(np.uint8)
    for i in range(len(detections)):
        colour = instance_colour(keys[i])
        x1, y1, x2, y2 = (int(round(v)) for v in detections.boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), colour, line_width)
        cls = int(detections.classes[i])
        name = class_names[cls] if cls < len(class_names) else str(cls)
        prefix = "" if track_ids is None else f"id:{track_ids[i]} "
        _label(canvas, f"{prefix}{name} {detections.scores[i]:.2f}", (x1, y1), colour, font_scale)
    return canvas


def _label(canvas, text, corner, colour, font_scale):
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    x, y = corner
    top = y - th - base - 2 if y - th - base - 2 >= 0 else y  # inside the box at the top edge
    cv2.rectangle(canvas, (x, top), (x + tw + 2, top + th + base + 2), colour, -1)
    cv2.putText(canvas, text, (x + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale,
                (255, 255, 255), 1, cv2.LINE_AA)


def cutouts(image: np.ndarray, detections: ImageDetections,
            background: str = "transparent") -> list[np.ndarray]:
    """Each instance cropped to its box's pixels, everything outside its mask removed.

    Args:
        image: ``[H, W, 3]`` uint8 RGB.
        detections: detections in the image's pixels.
        background: "transparent" (RGBA, alpha 255 on the mask, 0 elsewhere) or "black"
            (RGB, black outside the mask).

    Returns:
        One array per detection: ``[h, w, 4]`` RGBA or ``[h, w, 3]`` RGB uint8, the size of
        the box's integer pixel range (empty boxes give ``[0, 0, C]``).
    """
    if background not in ("transparent", "black"):
        raise ValueError(f"background must be 'transparent' or 'black', got {background!r}")
    result = []
    for crop, (x0, y0) in zip(detections.mask_crops, detections.mask_origins):
        pixels = image[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]]
        if background == "transparent":
            alpha = crop.astype(np.uint8)[..., None] * 255
            result.append(np.concatenate([pixels, alpha], axis=-1))
        else:
            result.append(pixels * crop[..., None].astype(np.uint8))
    return result
