"""The shapes writer produces a real COCO dataset whose annotations decode to the drawn masks."""

import hashlib
import json
import os

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from tfseg.data.shapes import CATEGORY_IDS, KINDS, make_shapes_image, write_shapes

NUM_TRAIN, NUM_VAL = 24, 6


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    return write_shapes(str(root), num_train=NUM_TRAIN, num_val=NUM_VAL, seed=3)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            path = os.path.join(dirpath, name)
            h.update(os.path.relpath(path, root).encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def test_pycocotools_loads_and_categories_are_non_contiguous(shapes):
    coco = COCO(shapes["train_annotations"])
    cats = coco.loadCats(coco.getCatIds())
    assert [c["id"] for c in cats] == [1, 3, 7]
    assert [c["name"] for c in cats] == ["circle", "rectangle", "triangle"]
    assert len(coco.getImgIds()) == NUM_TRAIN
    assert shapes["category_ids"] == list(CATEGORY_IDS[:3])


def test_files_exist_with_declared_sizes_and_formats(shapes):
    coco = json.load(open(shapes["train_annotations"]))
    exts = set()
    sizes = set()
    for img in coco["images"]:
        pixels = cv2.imread(os.path.join(shapes["train_images"], img["file_name"]))
        assert pixels.shape == (img["height"], img["width"], 3)
        exts.add(os.path.splitext(img["file_name"])[1])
        sizes.add((img["height"], img["width"]))
    assert exts == {".jpg", ".png"}
    aspects = {round(w / h, 1) for h, w in sizes}
    assert len(aspects) > 3  # several aspect ratios, not one square size


def test_annotations_decode_to_the_drawn_masks_exactly(shapes):
    coco = COCO(shapes["train_annotations"])
    for index in range(NUM_TRAIN):
        drawn = make_shapes_image(index, "train", seed=3)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[drawn.image_id], iscrowd=None))
        assert len(anns) == len(drawn.instances)
        for ann, inst in zip(anns, drawn.instances):
            decoded = coco.annToMask(ann)
            np.testing.assert_array_equal(decoded, inst.mask)
            assert ann["category_id"] == CATEGORY_IDS[inst.class_index]
            assert ann["iscrowd"] == int(inst.is_crowd)
            assert ann["area"] == float(inst.mask.sum())
            rows, cols = np.nonzero(inst.mask)
            x, y, w, h = ann["bbox"]
            assert (x, y, x + w, y + h) == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)


def test_image_pixels_show_the_visible_masks(shapes):
    """Each visible mask is painted over the background: the colour inside differs from outside."""
    drawn = make_shapes_image(1, "train", seed=3)
    for inst in drawn.instances:
        inside = drawn.image[inst.mask.astype(bool)].astype(float).mean(0)
        ring = cv2.dilate(inst.mask, np.ones((5, 5), np.uint8)) - inst.mask
        outside = drawn.image[ring.astype(bool)].astype(float).mean(0)
        assert np.abs(inside - outside).max() > 20


def test_every_kind_of_annotation_is_present(shapes):
    anns = json.load(open(shapes["train_annotations"]))["annotations"]
    polygons = [a for a in anns if isinstance(a["segmentation"], list)]
    compressed = [a for a in anns if isinstance(a["segmentation"], dict)
                  and isinstance(a["segmentation"]["counts"], str)]
    crowds = [a for a in anns if a["iscrowd"] == 1]
    assert len(polygons) > len(anns) / 2  # polygons for most instances
    assert compressed and crowds
    assert all(isinstance(a["segmentation"]["counts"], list) for a in crowds)
    assert {a["category_id"] for a in anns} == {1, 3, 7}


def test_holes_and_occlusion_are_present():
    holes = occluded = 0
    for index in range(NUM_TRAIN):
        for inst in make_shapes_image(index, "train", seed=3).instances:
            if inst.has_hole:
                # A hole: some pixel outside the mask is enclosed by it (filled contour > mask).
                contours, _ = cv2.findContours(inst.mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
                filled = cv2.drawContours(np.zeros_like(inst.mask), contours, -1, 1, cv2.FILLED)
                holes += int(filled.sum() > inst.mask.sum())
            elif inst.encoding == "rle" and not inst.is_crowd:
                occluded += 1
    assert holes >= 2 and occluded >= 1


def test_images_without_annotations_are_listed(shapes):
    coco = COCO(shapes["train_annotations"])
    empty = [i for i in coco.getImgIds() if not coco.getAnnIds(imgIds=[i], iscrowd=None)]
    assert len(empty) >= 2


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = write_shapes(str(tmp_path / "a"), num_train=6, num_val=2, seed=5)
    b = write_shapes(str(tmp_path / "b"), num_train=6, num_val=2, seed=5)
    c = write_shapes(str(tmp_path / "c"), num_train=6, num_val=2, seed=6)
    assert _digest(a["root"]) == _digest(b["root"])
    assert _digest(a["root"]) != _digest(c["root"])


def test_image_depends_on_index_not_split_size(tmp_path):
    small = write_shapes(str(tmp_path / "s"), num_train=3, num_val=1, seed=2)
    large = write_shapes(str(tmp_path / "l"), num_train=8, num_val=1, seed=2)
    for name in ("000000.jpg", "000001.jpg"):
        with open(os.path.join(small["train_images"], name), "rb") as f1, \
                open(os.path.join(large["train_images"], name), "rb") as f2:
            assert f1.read() == f2.read()


def test_more_classes_use_more_kinds(tmp_path):
    out = write_shapes(str(tmp_path), num_train=12, num_val=1, seed=0, num_classes=5)
    assert out["class_names"] == list(KINDS)
    ids = {a["category_id"] for a in json.load(open(out["train_annotations"]))["annotations"]}
    assert ids <= set(CATEGORY_IDS) and len(ids) >= 4


def test_uncompressed_rle_round_trips_through_pycocotools():
    from tfseg.data.shapes import uncompressed_rle
    mask = np.zeros((7, 5), np.uint8)
    mask[0, 0] = 1          # starts with a 1: counts begin with a 0-length run
    mask[2:5, 1:4] = 1
    rle = uncompressed_rle(mask)
    assert rle["counts"][:3] == [0, 1, 8]  # column 0: one 1 then six 0s, then column 1 rows 0-1
    decoded = mask_utils.decode(mask_utils.frPyObjects(rle, 7, 5))
    np.testing.assert_array_equal(decoded, mask)
