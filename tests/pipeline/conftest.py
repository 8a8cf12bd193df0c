"""Hand-built records (contracts.RECORD, TFDS nested layout) for the pipeline tests."""

import numpy as np
import pytest
import tensorflow as tf

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (230, 210, 20)]


def make_record(image_id, height, width, rects, classes=None, crowd=None, background=0):
    """A record whose instances are filled rectangles (x1, y1, x2, y2) in distinct colours."""
    image = np.full([height, width, 3], background, np.uint8)
    masks = np.zeros([len(rects), height, width, 1], np.uint8)
    for i, (x1, y1, x2, y2) in enumerate(rects):
        image[y1:y2, x1:x2] = COLOURS[i % len(COLOURS)]
        masks[i, y1:y2, x1:x2] = 1
    count = len(rects)
    return {
        "image": image,
        "image_id": np.int64(image_id),
        "objects": {
            "class": np.array(classes if classes is not None else [i % 3 for i in range(count)], np.int64),
            "bbox": np.array(rects, np.float32).reshape(-1, 4),
            "is_crowd": np.array(crowd if crowd is not None else [False] * count, bool),
            "mask": masks,
        },
    }


SIGNATURE = {
    "image": tf.TensorSpec([None, None, 3], tf.uint8),
    "image_id": tf.TensorSpec([], tf.int64),
    "objects": {
        "class": tf.TensorSpec([None], tf.int64),
        "bbox": tf.TensorSpec([None, 4], tf.float32),
        "is_crowd": tf.TensorSpec([None], tf.bool),
        "mask": tf.TensorSpec([None, None, None, 1], tf.uint8),
    },
}


def records_dataset(records):
    return tf.data.Dataset.from_generator(lambda: iter(records), output_signature=SIGNATURE)


def varied_records(count, seed=0):
    """``count`` records of several aspect ratios, 1-4 rectangles each, some crowd."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        height, width = [(64, 96), (96, 64), (80, 80), (50, 120)][i % 4]
        rects = []
        for _ in range(int(rng.integers(1, 5))):
            x1, y1 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            rects.append((x1, y1, x1 + int(rng.integers(8, 20)), y1 + int(rng.integers(8, 20))))
        crowd = [bool(j == 3) for j in range(len(rects))]
        out.append(make_record(i + 1, height, width, rects, crowd=crowd))
    return out


def assert_geometry(sample, colours=None):
    """Each mask is non-empty, its box is its tight box, and (optionally) the image shows the
    instance's colour on the mask's interior."""
    masks, boxes = sample["masks"].numpy(), sample["boxes"].numpy()
    assert masks.shape[0] == boxes.shape[0] == sample["classes"].shape[0]
    for mask, box in zip(masks, boxes):
        rows, cols = np.nonzero(mask)
        assert rows.size > 0
        np.testing.assert_array_equal(box, [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
    if colours is None:
        return
    image = sample["image"].numpy().astype(int)
    for mask, cls in zip(masks, sample["classes"].numpy()):
        # Interior: pixels whose 3x3 neighbourhood is all on (edges blend under bilinear).
        padded = np.pad(mask, 1)
        interior = np.ones_like(mask, bool)
        for dy in range(3):
            for dx in range(3):
                interior &= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]] == 1
        if interior.any():
            assert np.abs(image[interior] - colours[cls]).max() <= 2


@pytest.fixture(name="assert_geometry")
def _assert_geometry_fixture():
    return assert_geometry


@pytest.fixture(name="make_record")
def _make_record_fixture():
    return make_record


@pytest.fixture(name="records_dataset")
def _records_dataset_fixture():
    return records_dataset


@pytest.fixture(name="varied_records")
def _varied_records_fixture():
    return varied_records
