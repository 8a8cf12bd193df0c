"""Prepared TFDS records hold exactly what pycocotools decodes from the source files."""

import json
import os
import shutil

import numpy as np
import pytest
from pycocotools.coco import COCO

from tfseg.data.features import RECORD_KEYS, flatten_record
from tfseg.data.prepare import load_split, prepare
from tfseg.errors import DatasetError


def _records(data_dir, split):
    dataset, info = load_split(data_dir, split)
    return {int(r["image_id"]): r for r in dataset.as_numpy_iterator()}, info


def test_records_match_pycocotools_mask_for_mask(shapes_dataset, prepared_shapes):
    _, data_dir = prepared_shapes
    records, info = _records(data_dir, "train")
    coco = COCO(shapes_dataset["train_annotations"])
    assert sorted(records) == sorted(coco.getImgIds())
    id_to_class = {cid: i for i, cid in enumerate(info["category_ids"])}
    for image_id, rec in records.items():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None))
        img = coco.loadImgs([image_id])[0]
        assert rec["image"].shape == (img["height"], img["width"], 3)
        assert (rec["height"], rec["width"]) == (img["height"], img["width"])
        assert rec["file_name"].decode() == img["file_name"]
        obj = rec["objects"]
        assert len(obj["class"]) == len(anns)
        for k, ann in enumerate(anns):
            # Stored as 1-bit PNGs, which decode to 0/255: the same pixels inside.
            assert set(np.unique(obj["mask"][k])) <= {0, 255}
            np.testing.assert_array_equal(obj["mask"][k, :, :, 0] != 0, coco.annToMask(ann) != 0)
            assert obj["class"][k] == id_to_class[ann["category_id"]]
            assert bool(obj["is_crowd"][k]) == bool(ann["iscrowd"])
            assert obj["area"][k] == pytest.approx(ann["area"])
            x, y, w, h = ann["bbox"]
            np.testing.assert_allclose(obj["bbox"][k], [x, y, x + w, y + h], atol=1e-4)


def test_record_keys_dtypes_and_empty_images(prepared_shapes):
    _, data_dir = prepared_shapes
    records, _ = _records(data_dir, "train")
    rec = next(iter(records.values()))
    assert set(flatten_record(rec)) == set(RECORD_KEYS)
    assert rec["image"].dtype == np.uint8 and rec["objects"]["mask"].dtype == np.uint8
    assert rec["objects"]["bbox"].dtype == np.float32 and rec["objects"]["is_crowd"].dtype == bool
    empty = [r for r in records.values() if len(r["objects"]["class"]) == 0]
    assert empty, "images without annotations must be kept"
    assert empty[0]["objects"]["mask"].shape[0] == 0
    assert empty[0]["objects"]["bbox"].shape == (0, 4)


def test_feature_spec_stores_exactly_the_contract_keys_and_dtypes():
    from tfseg.contracts import RECORD
    from tfseg.data.features import record_features

    features = record_features(["a", "b"])
    flat = {k: v for k, v in features.items() if k != "objects"}
    flat.update({f"objects/{k}": v for k, v in features["objects"].feature.items()})
    assert set(flat) == set(RECORD)
    for name, spec in flat.items():
        assert str(spec.tf_dtype.name) == RECORD[name].dtype, name


def test_metadata_and_summary(shapes_dataset, prepared_shapes):
    summary, data_dir = prepared_shapes
    _, info = load_split(data_dir, "val")
    assert info["class_names"] == ["circle", "rectangle", "triangle"]
    assert info["category_ids"] == [1, 3, 7]
    assert info["num_examples"] == 6 and info["splits"] == ["train", "val"]
    train = summary["splits"]["train"]
    anns = json.load(open(shapes_dataset["train_annotations"]))["annotations"]
    assert train["images"] == 16
    assert train["instances"] == len(anns)
    assert train["crowds"] == sum(a["iscrowd"] for a in anns) > 0
    assert train["skipped_annotations"] == {} and train["skipped_images"] == {}


def test_bad_files_are_skipped_and_reported(shapes_dataset, tmp_path):
    """A missing image, a corrupt image and a bad annotation: counted with reasons, rest kept."""
    images = tmp_path / "images"
    shutil.copytree(shapes_dataset["val_images"], images)
    data = json.load(open(shapes_dataset["val_annotations"]))
    names = [im["file_name"] for im in data["images"]]
    os.remove(images / names[0])
    (images / names[1]).write_bytes(b"\xff\xd8\xff not really a jpeg")
    data["annotations"][0]["segmentation"] = [[1.0, 2.0, 3.0, 4.0]]  # 2 points
    ann_file = tmp_path / "instances_val.json"
    ann_file.write_text(json.dumps(data))
    summary = prepare(str(images), str(ann_file), str(tmp_path / "records"), num_workers=2,
                      verbose=False)
    val = summary["splits"]["val"]
    assert val["images"] == 4
    assert {r: v["count"] for r, v in val["skipped_images"].items()} == {
        "image file missing or unreadable": 1, "corrupt image file": 1}
    assert val["skipped_annotations"]["polygon with fewer than 3 points"]["count"] == 1
    records, info = _records(str(tmp_path / "records"), "val")
    assert len(records) == 4
    assert info["metadata"]["image_skips"]["val"]["corrupt image file"]["count"] == 1
    # Prepared again: the records are reused and the summary comes from their metadata.
    again = prepare(str(images), str(ann_file), str(tmp_path / "records"), verbose=False)
    assert again["reused"] is True and again["splits"] == summary["splits"]


def test_parallel_preparation_equals_serial(shapes_dataset, prepared_shapes, tmp_path):
    _, serial_dir = prepared_shapes
    prepare(shapes_dataset["val_images"], shapes_dataset["val_annotations"], str(tmp_path),
            num_workers=2, verbose=False)
    serial, _ = _records(serial_dir, "val")
    parallel, _ = _records(str(tmp_path), "val")
    assert sorted(serial) == sorted(parallel)
    for image_id, rec in serial.items():
        np.testing.assert_array_equal(rec["image"], parallel[image_id]["image"])
        np.testing.assert_array_equal(rec["objects"]["mask"], parallel[image_id]["objects"]["mask"])


def test_load_split_errors(prepared_shapes, tmp_path):
    _, data_dir = prepared_shapes
    with pytest.raises(DatasetError, match="unknown split 'test'"):
        load_split(data_dir, "test")
    with pytest.raises(DatasetError, match="no prepared records"):
        load_split(str(tmp_path), "train")


def test_categories_must_agree_between_splits(shapes_dataset, tmp_path):
    data = json.load(open(shapes_dataset["val_annotations"]))
    data["categories"] = data["categories"][:2]
    data["annotations"] = []
    other = tmp_path / "instances_val.json"
    other.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="categories differ"):
        prepare([shapes_dataset["train_images"], shapes_dataset["val_images"]],
                [shapes_dataset["train_annotations"], str(other)], str(tmp_path / "r"),
                num_workers=0, verbose=False)


def test_masks_are_stored_as_one_bit_pngs_and_read_back_as_0_1_samples(prepared_shapes):
    """The records hold 1-bit grayscale PNGs (an eighth of the bytes to inflate of an 8-bit
    one), and the training pipeline's decoder turns them into 0/1 masks."""
    import tensorflow as tf

    from tfseg.pipeline.decode import decode_record

    _, data_dir = prepared_shapes
    encoded, _ = load_split(data_dir, "train", decode=False)
    decoded, _ = load_split(data_dir, "train")
    checked = 0
    for raw, full in zip(encoded.take(6), decoded.take(6)):
        if len(raw["objects"]["class"]) == 0:  # TFDS gives [0, 0, 0] masks, decode [0, H, W]
            continue
        for png in raw["objects"]["mask"].numpy():
            # IHDR: 8-byte signature, length, "IHDR", width, height, then bit depth, colour type.
            assert png[12:16] == b"IHDR" and (png[24], png[25]) == (1, 0)
            checked += 1
        sample = decode_record(raw)
        assert sample["masks"].dtype == tf.uint8
        np.testing.assert_array_equal(sample["masks"].numpy(),
                                      (full["objects"]["mask"].numpy()[..., 0] != 0).astype(np.uint8))
    assert checked > 0
