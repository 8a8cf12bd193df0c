"""decode_record: record layouts (nested, flat, encoded) -> SAMPLE."""

import numpy as np
import tensorflow as tf

from tfseg.pipeline.decode import decode_record


def _check(sample, record):
    np.testing.assert_array_equal(sample["image"], record["image"])
    assert sample["image"].dtype == tf.uint8 and int(sample["image_id"]) == 7
    np.testing.assert_array_equal(sample["boxes"], [[2, 3, 10, 12], [0, 0, 5, 5]])
    np.testing.assert_array_equal(sample["classes"], [0, 1])
    assert sample["classes"].dtype == tf.int32
    np.testing.assert_array_equal(sample["is_crowd"], [False, True])
    np.testing.assert_array_equal(sample["masks"], record["objects"]["mask"][..., 0])
    assert sample["masks"].shape == (2, 16, 20)


def test_nested_record(make_record):
    record = make_record(7, 16, 20, [(2, 3, 10, 12), (0, 0, 5, 5)], crowd=[False, True])
    _check(decode_record(tf.nest.map_structure(tf.constant, record)), record)


def test_flat_and_encoded_record(make_record):
    record = make_record(7, 16, 20, [(2, 3, 10, 12), (0, 0, 5, 5)], crowd=[False, True])
    objects = record["objects"]
    flat = {
        "image": tf.io.encode_png(record["image"]),
        "image_id": tf.constant(7, tf.int64),
        "objects/class": objects["class"], "objects/bbox": objects["bbox"],
        "objects/is_crowd": objects["is_crowd"],
        # PNG per instance, stored 0/255 as image viewers like them: decoded back to 0/1.
        "objects/mask": tf.stack([tf.io.encode_png(m * 255) for m in objects["mask"]]),
    }
    _check(decode_record(flat), record)


def test_record_without_instances(make_record):
    record = make_record(7, 16, 20, [])
    sample = decode_record(tf.nest.map_structure(tf.constant, record))
    assert sample["boxes"].shape == (0, 4) and sample["masks"].shape == (0, 16, 20)
    assert sample["classes"].shape == (0,)
