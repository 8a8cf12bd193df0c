"""`tfseg data view`: a PNG grid of augmented training batches, boxes and masks drawn.

Host side (numpy + cv2): it reads batches from build_dataset and draws them; nothing here runs
inside the tf.data graph.
"""

from __future__ import annotations

import os

import cv2
import numpy as np

PALETTE = np.array([(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)],
                   np.float32)


def draw_sample(image: np.ndarray, boxes: np.ndarray, classes: np.ndarray, masks: np.ndarray,
                class_names: list[str] | None = None) -> np.ndarray:
    """One training sample drawn as an RGB uint8 picture.

    Args:
        image: ``[S, S, 3]`` float32 in [0, 1].
        boxes: ``[M, 4]`` xyxy input pixels; classes: ``[M]`` (-1 padding);
        masks: ``[M, S/4, S/4]`` 0/1.
        class_names: optional names for the labels.

    Returns:
        ``[S, S, 3]`` uint8 RGB: masks tinted, boxes outlined, class labels written.
    """
    picture = image.astype(np.float32) * 255.0
    size = image.shape[0]
    valid = [(box, int(cls), mask) for box, cls, mask in zip(boxes, classes, masks) if cls >= 0]
    for _, cls, mask in valid:  # tint in float first: cv2 draws text on uint8 only
        full = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) > 0
        picture[full] = 0.5 * picture[full] + 0.5 * PALETTE[cls % len(PALETTE)]
    picture = np.ascontiguousarray(np.clip(np.round(picture), 0, 255).astype(np.uint8))
    for box, cls, _ in valid:
        colour = PALETTE[cls % len(PALETTE)].tolist()
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(picture, (x1, y1), (x2 - 1, y2 - 1), colour, 1)
        label = class_names[cls] if class_names and cls < len(class_names) else str(cls)
        cv2.putText(picture, label, (x1, max(y1 - 2, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour, 1,
                    cv2.LINE_AA)
    return picture


def write_grid(dataset, path: str, num_batches: int = 1, columns: int = 4,
               class_names: list[str] | None = None) -> str:
    """Draw the first ``num_batches`` batches of a (images, targets) dataset into one PNG.

    Args:
        dataset: from tfseg.pipeline.dataset.build_dataset, or a list of its batches.
        path: the PNG to write (folders created).
        num_batches: batches to draw.
        columns: pictures per row.
        class_names: optional label names.

    Returns:
        ``path``.
    """
    pictures = []
    batches = dataset.take(num_batches) if hasattr(dataset, "take") else dataset[:num_batches]
    for images, targets in batches:
        for i in range(images.shape[0]):
            pictures.append(draw_sample(images[i].numpy(), targets["boxes"][i].numpy(),
                                        targets["classes"][i].numpy(), targets["masks"][i].numpy(),
                                        class_names))
    if not pictures:
        raise ValueError("the dataset gave no batch to draw")
    size = max(picture.shape[0] for picture in pictures)  # multi-scale: batches differ
    rows = -(-len(pictures) // columns)
    grid = np.full([rows * size, columns * size, 3], 255, np.uint8)
    for k, picture in enumerate(pictures):
        r, c = divmod(k, columns)
        side = picture.shape[0]
        grid[r * size:r * size + side, c * size:c * size + side] = picture
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if not cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
