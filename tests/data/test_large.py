"""Large shapes images (tfseg/data/large.py): many small shapes whose annotations decode to
exactly the painted masks, written through the shapes writer."""

import json

import numpy as np
from pycocotools.coco import COCO

from tfseg.data.large import make_large_image
from tfseg.data.shapes import write_shapes


def test_a_large_image_holds_many_small_separate_shapes_and_is_deterministic():
    first = make_large_image(3, "val", seed=5, min_size=700, max_size=900, objects=40)
    again = make_large_image(3, "val", seed=5, min_size=700, max_size=900, objects=40)
    other = make_large_image(4, "val", seed=5, min_size=700, max_size=900, objects=40)
    height, width = first.image.shape[:2]
    assert 700 <= height <= 900 and 700 <= width <= 900
    np.testing.assert_array_equal(first.image, again.image)
    assert not np.array_equal(first.image[:height // 2, :width // 2], other.image[:height // 2, :width // 2])
    assert 30 <= len(first.instances) <= 50
    taken = np.zeros((height, width), bool)
    for inst in first.instances:
        rows, cols = np.nonzero(inst.mask)
        extent = max(rows.max() - rows.min(), cols.max() - cols.min()) + 1
        assert 8 <= extent <= 82  # 20-80 px shapes (a rectangle's short side is less)
        x0, y0 = inst.origin
        window = taken[y0:y0 + inst.mask.shape[0], x0:x0 + inst.mask.shape[1]]
        assert not (window & inst.mask.astype(bool)).any()  # no overlaps
        window |= inst.mask.astype(bool)


def test_the_written_annotations_decode_to_the_painted_crops(tmp_path):
    written = write_shapes(str(tmp_path), num_train=0, num_val=2, seed=1, min_size=400,
                           max_size=500, objects=12)
    coco = COCO(written["val_annotations"])
    assert len(coco.imgs) == 2 and all(i["file_name"].endswith(".jpg") for i in coco.imgs.values())
    sample = make_large_image(0, "val", seed=1, min_size=400, max_size=500, objects=12)
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(annotations) == len(sample.instances) >= 6
    for ann, inst in zip(annotations, sample.instances):
        full = np.zeros(sample.image.shape[:2], np.uint8)
        x0, y0 = inst.origin
        full[y0:y0 + inst.mask.shape[0], x0:x0 + inst.mask.shape[1]] = inst.mask
        np.testing.assert_array_equal(coco.annToMask(ann), full)
        rows, cols = np.nonzero(full)
        assert ann["bbox"] == [cols.min(), rows.min(), cols.max() - cols.min() + 1,
                               rows.max() - rows.min() + 1]
        assert ann["area"] == full.sum() and ann["iscrowd"] == 0
    assert json.loads((tmp_path / "annotations" / "instances_train.json").read_text())["images"] == []
