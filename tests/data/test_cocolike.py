"""The COCO-shaped benchmark set: real files pycocotools reads, with COCO's statistics."""

import json

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from tfseg.data.cocolike import categories, make_cocolike_image, write_cocolike


def test_statistics_are_coco_like(tmp_path):
    paths = write_cocolike(str(tmp_path), num_train=60, num_val=2)
    coco = COCO(paths["train_annotations"])
    sizes = [(im["height"], im["width"]) for im in coco.dataset["images"]]
    assert all(480 <= h <= 640 and 480 <= w <= 640 for h, w in sizes)
    counts = np.array([len(coco.getAnnIds(imgIds=i, iscrowd=False)) for i in coco.getImgIds()])
    assert 5.0 <= counts.mean() <= 9.5  # COCO: 7.3 per image
    assert counts.max() >= 15 and (counts == 0).sum() >= 1  # a tail, and an empty image
    areas = np.array([a["area"] for a in coco.dataset["annotations"] if not a["iscrowd"]])
    assert 0.3 <= (areas < 32 ** 2).mean() <= 0.65  # many small objects (COCO: 41%)
    assert (areas >= 96 ** 2).mean() >= 0.08
    assert any(a["iscrowd"] for a in coco.dataset["annotations"])
    used = {a["category_id"] for a in coco.dataset["annotations"]}
    assert len(used) >= 20 and len(coco.dataset["categories"]) == 30


def test_annotations_decode_to_the_generated_masks(tmp_path):
    paths = write_cocolike(str(tmp_path), num_train=12, num_val=1)
    coco = COCO(paths["train_annotations"])
    for index in range(12):
        sample = make_cocolike_image(index, "train")
        anns = coco.loadAnns(coco.getAnnIds(imgIds=sample.image_id))
        assert len(anns) == len(sample.instances)
        for ann, inst in zip(anns, sample.instances):
            np.testing.assert_array_equal(coco.annToMask(ann), inst.mask)
            assert ann["area"] == float(mask_utils.area(mask_utils.encode(
                np.asfortranarray(inst.mask))))


def test_same_seed_same_bytes_and_ids_are_not_contiguous(tmp_path):
    first = write_cocolike(str(tmp_path / "a"), num_train=3, num_val=1, seed=4)
    second = write_cocolike(str(tmp_path / "b"), num_train=3, num_val=1, seed=4)
    assert (open(first["train_annotations"]).read().replace(str(tmp_path / "a"), "")
            == open(second["train_annotations"]).read().replace(str(tmp_path / "b"), ""))
    ids = [c["id"] for c in categories()]
    assert ids != list(range(1, 31)) and len(set(ids)) == 30
    assert json.load(open(first["train_annotations"]))["categories"] == categories()
