"""Preparation on Apache Beam (DirectRunner) writes exactly what the local path writes.

Skipped without apache-beam (``pip install apache-beam``, the ``beam`` extra).
"""

import glob
import json
import os
import shutil

import pytest

pytest.importorskip("apache_beam")

import tensorflow as tf  # noqa: E402

from tfseg.data.prepare import load_split, prepare  # noqa: E402
from tfseg.errors import DatasetError  # noqa: E402

pytestmark = pytest.mark.slow  # Beam pipelines in worker processes, beside a local preparation

# Two worker processes, as a user with a bigger machine would run it (with more workers).
MULTI_PROCESS = ("--runner=DirectRunner --direct_num_workers=2 "
                 "--direct_running_mode=multi_processing")
IN_PROCESS = "--runner=DirectRunner --direct_running_mode=in_memory"


@pytest.fixture(scope="module")
def damaged_shapes(shapes_dataset, tmp_path_factory):
    """shapes train (16 images) and val (6 images) with, in val, one missing image file and
    two corrupt ones; and the two ways of preparing it: {"local": ..., "beam": ...}."""
    root = tmp_path_factory.mktemp("beam_input")
    images = root / "val_images"
    shutil.copytree(shapes_dataset["val_images"], images)
    val = json.load(open(shapes_dataset["val_annotations"]))["images"]
    names = [im["file_name"] for im in val]
    assert [im["id"] for im in val] == [1, 3, 5, 7, 9, 11]  # shapes numbers ids 1, 3, 5...
    os.remove(images / names[0])                                  # image id 1
    (images / names[1]).write_bytes(b"\xff\xd8\xff not a jpeg")   # image id 3
    (images / names[4]).write_bytes(b"")                          # image id 9
    sources = dict(images_dir=[shapes_dataset["train_images"], str(images)],
                   annotation_files=[shapes_dataset["train_annotations"],
                                     shapes_dataset["val_annotations"]])
    local = prepare(**sources, output_dir=str(root / "local"), num_workers=0, verbose=False)
    beam = prepare(**sources, output_dir=str(root / "beam"), beam_options=MULTI_PROCESS,
                   verbose=False)
    return {"sources": sources, "root": root, "local": local, "beam": beam}


def _examples(dataset_dir, split):
    """image_id -> {feature name: the stored values (bytes, ints, floats) as lists}."""
    out = {}
    files = sorted(glob.glob(os.path.join(dataset_dir, f"*-{split}.tfrecord-*")))
    assert files, f"no {split} records in {dataset_dir}"
    for raw in tf.data.TFRecordDataset(files).as_numpy_iterator():
        feats = tf.train.Example.FromString(raw).features.feature
        values = {name: list(getattr(f, f.WhichOneof("kind")).value) if f.WhichOneof("kind")
                  else [] for name, f in feats.items()}
        image_id = values["image_id"][0]
        assert image_id not in out, f"image id {image_id} written twice"
        out[image_id] = values
    return out


def test_beam_records_equal_local_records_byte_for_byte(damaged_shapes):
    local, beam = damaged_shapes["local"], damaged_shapes["beam"]
    for split, expected_ids in (("train", set(range(1, 32, 2))), ("val", {5, 7, 11})):
        local_ex = _examples(local["dataset_dir"], split)
        beam_ex = _examples(beam["dataset_dir"], split)
        assert set(local_ex) == set(beam_ex) == expected_ids
        for image_id, values in local_ex.items():
            # Every feature: image bytes, per-instance PNG mask bytes, classes, boxes,
            # crowd flags, areas, sizes, file name.
            assert beam_ex[image_id] == values, f"{split} image id {image_id} differs"
        assert sum(len(v["objects/class"]) for v in beam_ex.values()) == \
            beam["splits"][split]["instances"]


def test_beam_metadata_and_summary_equal_local(damaged_shapes):
    local, beam = damaged_shapes["local"], damaged_shapes["beam"]
    assert beam["class_names"] == local["class_names"] == ["circle", "rectangle", "triangle"]
    assert beam["category_ids"] == local["category_ids"] == [1, 3, 7]
    assert beam["splits"] == local["splits"]
    val = beam["splits"]["val"]
    assert val["images"] == 3
    assert val["skipped_images"] == {
        "corrupt image file": {"count": 2, "examples": ["image id 3 (file_name)",
                                                        "image id 9 (file_name)"]},
        "image file missing or unreadable": {"count": 1, "examples": ["image id 1 (file_name)"]}}
    for split in ("train", "val"):
        _, local_info = load_split(local["dataset_dir"], split)
        _, beam_info = load_split(beam["dataset_dir"], split)
        assert beam_info == local_info
    assert beam_info["metadata"]["image_skips"]["val"] == val["skipped_images"]
    assert beam_info["metadata"]["kept_counts"]["train"]["images"] == 16
    # The pickled entry shards the workers read are gone from the records folder.
    assert not os.path.exists(os.path.join(beam["dataset_dir"], "beam_inputs"))


def test_reused_beam_records_report_the_stored_summary(damaged_shapes):
    again = prepare(**damaged_shapes["sources"], output_dir=str(damaged_shapes["root"] / "beam"),
                    beam_options=MULTI_PROCESS, verbose=False)
    assert again["reused"] is True
    assert again["splits"] == damaged_shapes["beam"]["splits"]


@pytest.mark.parametrize("options", [IN_PROCESS, MULTI_PROCESS],
                         ids=["in_memory", "multi_processing"])
def test_strict_beam_raises_the_dataset_error(damaged_shapes, tmp_path, options):
    """In a worker process the error crosses to this one as text; it is raised as itself."""
    with pytest.raises(DatasetError) as raised:
        prepare(**damaged_shapes["sources"], output_dir=str(tmp_path), strict=True,
                beam_options=options, verbose=False)
    # (Beam may append the step: "... [while running 'val/Encode']".)
    assert str(raised.value).startswith(
        "file " + damaged_shapes["sources"]["annotation_files"][1] +
        ", image id 1, field 'file_name': image file missing or unreadable")
    # TFDS removed its temporary folder: nothing half-written is left to be reused.
    assert not glob.glob(str(tmp_path / "coco_segmentation" / "*"))
