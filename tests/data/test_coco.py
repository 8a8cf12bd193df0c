"""COCO reading: decoding of each segmentation form, id maps, and bad input named or counted."""

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tfseg.data.coco import (compressed_rle_counts, decode_segmentation, read_coco)
from tfseg.errors import DatasetError

H, W = 10, 12


def _coco(annotations, images=None, categories=None):
    return {
        "images": images if images is not None else [
            {"id": 5, "file_name": "a.jpg", "height": H, "width": W},
            {"id": 9, "file_name": "b.png", "height": H, "width": W}],
        "annotations": annotations,
        "categories": categories if categories is not None else [
            {"id": 7, "name": "triangle"}, {"id": 1, "name": "circle"}],
    }


def _ann(ann_id=1, **fields):
    ann = {"id": ann_id, "image_id": 5, "category_id": 1, "iscrowd": 0,
           "segmentation": [[1, 1, 5, 1, 5, 4, 1, 4]], "bbox": [1, 1, 4, 3], "area": 12.0}
    ann.update(fields)
    return ann


def _read(tmp_path, data, **kw):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return read_coco(str(path), **kw)


def test_category_ids_map_to_contiguous_classes(tmp_path):
    ds = _read(tmp_path, _coco([_ann(category_id=7), _ann(2, category_id=1)]))
    assert ds.category_ids == [1, 7] and ds.class_names == ["circle", "triangle"]
    assert [i.class_index for i in ds.images[0].instances] == [1, 0]


def test_images_without_annotations_are_kept(tmp_path):
    ds = _read(tmp_path, _coco([_ann()]))
    assert [im.image_id for im in ds.images] == [5, 9]
    assert len(ds.images[1].instances) == 0 and ds.skips.total == 0


def test_box_is_xyxy_and_outside_by_a_pixel_is_clipped(tmp_path):
    ds = _read(tmp_path, _coco([_ann(bbox=[1, 2, 3, 4]), _ann(2, bbox=[-1, 0, 13, 5])]))
    assert ds.images[0].instances[0].bbox == (1.0, 2.0, 4.0, 6.0)
    assert ds.images[0].instances[1].bbox == (0.0, 0.0, 12.0, 5.0)


def test_multi_polygon_decodes_to_the_union():
    seg = [[0, 0, 2, 0, 2, 2, 0, 2], [6, 6, 9, 6, 9, 8, 6, 8]]
    mask = decode_segmentation(seg, H, W)
    expected = np.zeros((H, W), np.uint8)
    expected[0:2, 0:2] = 1   # pixels whose square lies in [0, 2) x [0, 2)
    expected[6:8, 6:9] = 1
    np.testing.assert_array_equal(mask, expected)


def test_uncompressed_and_compressed_rle_decode_the_same_mask():
    expected = np.zeros((H, W), np.uint8)
    expected[2:5, 3:7] = 1
    expected[3, 4] = 0  # a hole
    rle = mask_utils.encode(np.asfortranarray(expected))
    compressed = {"size": [H, W], "counts": rle["counts"].decode()}
    flat = expected.flatten(order="F")
    runs, value, n = [], 0, 0
    for v in flat:  # run lengths by hand, starting with zeros
        if v != value:
            runs.append(n)
            value, n = v, 0
        n += 1
    runs.append(n)
    uncompressed = {"size": [H, W], "counts": runs}
    np.testing.assert_array_equal(decode_segmentation(compressed, H, W), expected)
    np.testing.assert_array_equal(decode_segmentation(uncompressed, H, W), expected)
    assert compressed_rle_counts(compressed["counts"]) == runs


@pytest.mark.parametrize("fields, reason", [
    ({"image_id": 77}, "annotation points to an unknown image"),
    ({"category_id": 3}, "annotation points to an unknown category"),
    ({"segmentation": [[1, 1, 5, 1]]}, "polygon with fewer than 3 points"),
    ({"segmentation": [[1, 1, 5, 1, 5]]}, "polygon with fewer than 3 points"),
    ({"bbox": [1, 1, 0, 3]}, "zero-area box"),
    ({"bbox": [1, 1, 40, 3]}, "box coordinates outside the image"),
    ({"segmentation": [[1, 1, 50, 1, 5, 4]]}, "polygon coordinates outside the image"),
    ({"segmentation": {"size": [H, W], "counts": [3, 4]}},
     "RLE run lengths do not cover the image exactly"),
    ({"segmentation": {"size": [H, W], "counts": "~~~"}}, "malformed compressed RLE"),
    ({"segmentation": {"size": [H, W + 1], "counts": [H * (W + 1)]}},
     "RLE size differs from the image size"),
    ({"segmentation": "polygon"}, "segmentation must be polygons or an RLE dict"),
    ({"iscrowd": 2}, "iscrowd must be 0 or 1"),
])
def test_bad_annotation_is_skipped_with_its_reason(tmp_path, fields, reason):
    ds = _read(tmp_path, _coco([_ann(**fields), _ann(2)]))
    assert dict(ds.skips.counts) == {reason: 1}
    assert ds.skips.examples[reason][0].startswith("annotation id 1")
    assert [i.annotation_id for i in ds.images[0].instances] == [2]


def test_strict_mode_raises_naming_file_record_and_field(tmp_path):
    with pytest.raises(DatasetError) as err:
        _read(tmp_path, _coco([_ann(category_id=3)]), strict=True)
    assert err.value.record == "annotation id 1" and err.value.field == "category_id"
    assert err.value.file.endswith("instances.json")


def test_duplicate_annotation_id_and_bad_image_record_are_counted(tmp_path):
    images = [{"id": 5, "file_name": "a.jpg", "height": H, "width": W},
              {"id": 6, "file_name": "c.jpg", "height": 0, "width": W}]
    ds = _read(tmp_path, _coco([_ann(), _ann(), _ann(3, image_id=6)], images=images))
    assert dict(ds.skips.counts) == {
        "image size missing or not a positive integer": 1, "duplicate annotation id": 1,
        "annotation of a skipped image": 1}


@pytest.mark.parametrize("content, field", [
    ("", None),
    ("[]", None),
    ('{"images": [], "annotations": [], "categories": [{"id": 1}]}', "images"),
    ('{"images": [{"id": 1}], "annotations": []}', "categories"),
    ('{"images": [{"id": 1}], "annotations": {}, "categories": [{"id": 1}]}', "annotations"),
    ('{"images": [{"id": 1}], "categories": [{"id": 1}, {"id": 1}]}', "id"),
    ('{"images": [{"id": 1}, {"id": 1}], "categories": [{"id": 1}]}', "id"),
])
def test_unusable_files_raise_dataset_error(tmp_path, content, field):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetError) as err:
        read_coco(str(path))
    assert err.value.file == str(path) and err.value.field == field


def test_missing_file_raises(tmp_path):
    with pytest.raises(DatasetError, match="annotation file not found"):
        read_coco(str(tmp_path / "nope.json"))
