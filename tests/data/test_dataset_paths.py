"""Where a dataset's files are (tfseg/config/paths.py): an Ultralytics data.yaml taken as it
is, and one answer, for both formats, to "which file is the evaluation ground truth"."""

import json
from pathlib import Path

import pytest

from tfseg.commands.datasets import ensure_records
from tfseg.config import load_config
from tfseg.config.paths import dataset_paths
from tfseg.data.prepare import load_split
from tfseg.data.yolo import coco_to_yolo
from tfseg.errors import DatasetError


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize("names", ["[cat, dog]", "{0: cat, 1: dog}"])
def test_ultralytics_data_yaml_is_a_dataset(tmp_path, monkeypatch, names):
    data_yaml = _write(tmp_path / "cfgs" / "pets.yaml",
                       f"path: ../pets\ntrain: images/train\nval: images/val\nnames: {names}\n"
                       "nc: 2\ndownload: https://example.com/pets.zip\nmax_instances: 7\n")
    monkeypatch.chdir(_write(tmp_path / "elsewhere" / "x", "").parent)  # path: is not cwd-relative
    cfg = load_config([f"data={data_yaml}"])
    assert (cfg.data.format, cfg.data.max_instances) == ("yolo", 7)
    assert Path(cfg.data.data_yaml) == data_yaml
    paths = dataset_paths(cfg.data)
    root = tmp_path / "pets"
    assert paths.root == root and paths.data_yaml == data_yaml
    assert (paths.train_images, paths.val_images) == (root / "images/train", root / "images/val")
    assert paths.records == root / "records"
    assert paths.val_annotations == root / "records" / "coco_json" / "instances_val.json"


@pytest.mark.parametrize("text, field", [
    ("path: .\ntrain: images/train\nnames: [a]\n", "val"),
    ("path: .\ntrain: images/train\nval: images/val\n", "names"),
    ("train: images/train\nval: images/val\nnames: {0: a, 2: b}\n", "names"),
    ("train: images/train\nval: images/val\nnames: [a, b]\nnc: 3\n", "nc"),
    ("train: [images/a, images/b]\nval: images/val\nnames: [a]\n", "train"),
    ("train: train.txt\nval: images/val\nnames: [a]\n", "train"),
])
def test_a_broken_ultralytics_data_yaml_names_file_and_key(tmp_path, text, field):
    data_yaml = _write(tmp_path / "data.yaml", text)
    with pytest.raises(DatasetError) as err:
        load_config([f"data={data_yaml}"])
    assert (err.value.file, err.value.field) == (str(data_yaml), field)
    assert str(data_yaml) in str(err.value) and f"'{field}'" in str(err.value)


@pytest.mark.parametrize("given_as", ["data.yaml itself", "dataset yaml + format=yolo"])
def test_yolo_ground_truth_is_the_file_preparation_converted(shapes_dataset, tmp_path, given_as):
    root = tmp_path / "yolo"
    for split in ("train", "val"):
        coco_to_yolo(shapes_dataset[f"{split}_images"], shapes_dataset[f"{split}_annotations"],
                     str(root), split)
    if given_as == "data.yaml itself":
        cfg = load_config([f"data={root / 'data.yaml'}", "prepare_workers=0"])
    else:
        _write(tmp_path / "mine.yaml", f"name: mine\nroot: {root}\n")
        cfg = load_config([f"data={tmp_path / 'mine.yaml'}", "format=yolo",
                           "data_yaml=data.yaml", "prepare_workers=0"])
    paths = dataset_paths(cfg.data)
    summary = ensure_records(cfg.data, paths, verbose=False)
    ground_truth = json.loads(paths.val_annotations.read_text())
    _, info = load_split(str(paths.records), "val")
    assert len(ground_truth["images"]) == info["num_examples"] == summary["splits"]["val"]["images"]
    assert [c["name"] for c in ground_truth["categories"]] == summary["class_names"]
    assert len(ground_truth["annotations"]) == summary["splits"]["val"]["instances"]


def test_coco_ground_truth_is_the_users_file(tmp_path):
    _write(tmp_path / "mine.yaml", f"name: mine\nroot: {tmp_path / 'mine'}\n"
                                   "val_annotations: ann/val.json\n")
    paths = dataset_paths(load_config([f"data={tmp_path / 'mine.yaml'}"]).data)
    assert paths.val_annotations == tmp_path / "mine" / "ann" / "val.json"
    assert paths.data_yaml is None
