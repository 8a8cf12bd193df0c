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


def test_encoded_record_without_instances_inside_a_dataset(make_record):
    # The training pipeline decodes records after shuffling them encoded: an image with no
    # instance arrives with a [0] string tensor of masks, inside a graph (tf.data map).
    record = make_record(7, 16, 20, [])
    flat = {"image": tf.io.encode_png(record["image"]), "image_id": tf.constant(7, tf.int64),
            "objects/class": tf.zeros([0], tf.int64), "objects/bbox": tf.zeros([0, 4]),
            "objects/is_crowd": tf.zeros([0], tf.bool), "objects/mask": tf.zeros([0], tf.string)}
    sample = next(iter(tf.data.Dataset.from_tensors(flat).map(decode_record)))
    assert sample["masks"].shape == (0, 16, 20) and sample["image"].shape == (16, 20, 3)


def test_prepared_records_read_encoded_decode_like_the_decoded_ones(tmp_path):
    # load_split(decode=False) keeps image and masks as bytes; decode_record makes of them
    # exactly the sample the decoded records give, the empty image of shapes included.
    from tfseg.data.prepare import load_split, prepare
    from tfseg.data.shapes import write_shapes

    paths = write_shapes(str(tmp_path), num_train=12, num_val=1)
    prepare([paths["train_images"]], [paths["train_annotations"]], str(tmp_path / "records"),
            splits=["train"], num_workers=1, verbose=False)
    decoded, _ = load_split(str(tmp_path / "records"), "train")
    encoded, _ = load_split(str(tmp_path / "records"), "train", decode=False)
    assert encoded.element_spec["image"].dtype == tf.string
    pairs = zip(decoded.map(decode_record), encoded.map(decode_record))
    for count, (a, b) in enumerate(pairs, 1):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    assert count == 12
