"""A two-image training batch at 64 px with one square instance of class 1 per image."""

from __future__ import annotations

import numpy as np


def tiny_batch() -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``(images [2,64,64,3] float32, targets)`` in the layout of tfseg.contracts'
    TRAIN_TARGETS: 4 instance slots, masks on the 16 x 16 prototype grid."""
    images = np.random.default_rng(0).uniform(size=(2, 64, 64, 3)).astype("float32")
    boxes = np.zeros((2, 4, 4), "float32")
    boxes[:, 0] = [8, 8, 40, 40]
    classes = np.full((2, 4), -1, "int32")
    classes[:, 0] = 1
    masks = np.zeros((2, 4, 16, 16), "uint8")
    masks[:, 0, 2:10, 2:10] = 1
    return images, {"boxes": boxes, "classes": classes, "masks": masks}
