"""Painted samples for the mixing tests: every instance is filled with a colour of its own class,
so after pasting, the pixels of a colour must be exactly the masks of that class."""

import numpy as np
import tensorflow as tf

BACKGROUND = 114


def colour(cls: int) -> np.ndarray:
    """A colour per class, distinct for the classes these tests use (0..9 and 100..109)."""
    return np.array([(40 + 23 * cls) % 256, (200 + 71 * cls) % 256, (90 + 131 * cls) % 256],
                    np.uint8)


def painted_sample(size: int, shapes, first_class: int = 0) -> dict:
    """An S x S sample (masks, tight boxes, classes from ``first_class`` on) of filled shapes:
    ("rect", x1, y1, x2, y2) or ("disc", cx, cy, r); later shapes cover earlier ones."""
    image = np.full([size, size, 3], BACKGROUND, np.uint8)
    rows, cols = np.mgrid[:size, :size]
    masks = np.zeros([len(shapes), size, size], np.uint8)
    for k, (kind, *p) in enumerate(shapes):
        if kind == "rect":
            inside = (cols >= p[0]) & (cols < p[2]) & (rows >= p[1]) & (rows < p[3])
        else:
            inside = (cols + 0.5 - p[0]) ** 2 + (rows + 0.5 - p[1]) ** 2 <= p[2] ** 2
        masks[:k][:, inside] = 0  # a later shape covers earlier ones
        masks[k][inside] = 1
        image[inside] = colour(first_class + k)
    classes = np.arange(first_class, first_class + len(shapes), dtype=np.int32)
    return {"image": tf.constant(image), "image_id": tf.constant(1, tf.int64),
            "masks": tf.constant(masks), "boxes": tf.constant(tight_boxes(masks)),
            "classes": tf.constant(classes)}


def tight_boxes(masks: np.ndarray) -> np.ndarray:
    boxes = np.zeros([len(masks), 4], np.float32)
    for k, mask in enumerate(masks):
        rows, cols = np.nonzero(mask)
        if rows.size:
            boxes[k] = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
    return boxes


def assert_masks_follow_pixels(sample: dict) -> None:
    """Every mask non-empty with its tight box, and for each class the union of its masks is
    exactly the set of pixels painted in its colour (no pixel owned twice across classes)."""
    image, masks = sample["image"].numpy(), sample["masks"].numpy()
    classes = sample["classes"].numpy()
    assert masks.shape[0] == classes.shape[0] == sample["boxes"].shape[0]
    assert (masks.reshape(len(masks), -1).sum(1) > 0).all()
    np.testing.assert_array_equal(sample["boxes"].numpy(), tight_boxes(masks))
    for cls in np.unique(classes):
        union = masks[classes == cls].any(axis=0)
        painted = (image == colour(int(cls))).all(axis=-1)
        np.testing.assert_array_equal(union, painted, err_msg=f"class {cls}")
