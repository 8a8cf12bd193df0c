"""A user's journey from their own dataset files, run as they type it: the installed ``tfseg``
in a fresh folder, on small generated data.

a. their COCO export (a dataset YAML like the README's mine.yaml): prepare, train, val,
   predict (val and predict with the console a user sees: nothing to clean up in it);
b. their Ultralytics YOLO-seg folder, its own data.yaml passed as ``data=``: the same steps,
   evaluated with pycocotools on the converted ground truth;
c. annotations edited after preparing: the records are prepared again, never reused.

The training is the least that runs every stage (64 px, two steps, one epoch); each journey
trains once, in a module-scoped fixture its tests share. Exporting a trained run is the
weights journey's (test_journey_weights.py): the class names it checks there come from the
run's model.json, checked here for both layouts.
"""

import json
import re
import shutil
from pathlib import Path

import cv2
import pytest
import yaml

from cli_runner import assert_clean_console, run_tfseg

pytestmark = pytest.mark.slow  # each journey prepares, trains and exports

SHAPES = ["shapes_train=12", "shapes_val=6", "shapes_min_size=64", "shapes_max_size=96"]
TINY_TRAINING = ["imgsz=64", "epochs=1", "batch=4", "steps_per_epoch=2", "warmup_epochs=0",
                 "mosaic=0", "jit_compile=false", "plots=false", "prepare_workers=0"]
NAMES = ["circle", "rectangle", "triangle"]  # the shapes dataset's three classes


def tfseg(cwd: Path, *args: str, expect: int = 0, user_console: bool = False) -> str:
    """Run ``tfseg args...`` in ``cwd``; its stdout and stderr, after checking the exit code.
    ``user_console``: as a user who set no logging variable, and the console must be clean
    (tests/cli_runner.py)."""
    result = run_tfseg(cwd, *args, expect=expect, user_console=user_console)
    if user_console:
        assert_clean_console(result)
    return result.stdout + result.stderr


def write_coco_export(folder: Path) -> Path:
    """A COCO export laid out as a labelling tool might (img/<split>, ann/<split>.json) and
    its dataset YAML, as the README's mine.yaml; returns the YAML."""
    tfseg(folder, "data", "shapes", "--output", "generated", *SHAPES)
    for split in ("train", "val"):
        (folder / "mine" / "img").mkdir(parents=True, exist_ok=True)
        (folder / "mine" / "ann").mkdir(exist_ok=True)
        shutil.move(folder / "generated" / "images" / split, folder / "mine" / "img" / split)
        shutil.move(folder / "generated" / "annotations" / f"instances_{split}.json",
                    folder / "mine" / "ann" / f"{split}.json")
    spec = {"name": "mine", "root": str(folder / "mine"), "train_images": "img/train",
            "train_annotations": "ann/train.json", "val_images": "img/val",
            "val_annotations": "ann/val.json", "max_instances": 16}
    (folder / "mine.yaml").write_text(yaml.safe_dump(spec))
    return folder / "mine.yaml"


def write_ultralytics_folder(folder: Path) -> Path:
    """A YOLO-seg folder with a data.yaml as Ultralytics users write it (relative ``path``,
    names as a list, nothing of ours); returns the data.yaml."""
    write_coco_export(folder)
    tfseg(folder, "data", "convert", "--to", "yolo", "data=mine.yaml", "--output", "shapes_yolo")
    data_yaml = folder / "shapes_yolo" / "data.yaml"
    data_yaml.write_text("path: .\ntrain: images/train\nval: images/val\n"
                         f"names: [{', '.join(NAMES)}]\n")
    return data_yaml


def instance_counts(output: str) -> dict[str, int]:
    """{split: instances} from prepare's printed summary
    ("val: 6 images (1 without instances), 14 instances, 1 crowd regions")."""
    found = re.findall(r"^(train|val): \d+ images \(\d+ without instances\), (\d+) instances",
                       output, re.MULTILINE)
    return {split: int(count) for split, count in found}


def val_metrics(metrics_json: Path) -> dict:
    assert metrics_json.is_file(), f"no evaluation written: {metrics_json}"
    content = json.loads(metrics_json.read_text())
    assert {"box/mAP50-95", "mask/mAP50-95"} <= set(content["metrics"])
    return content


def predicted_names(predict_dir: Path) -> set[str]:
    records = json.loads((predict_dir / "predictions.json").read_text())
    return {d["class_name"] for r in records for d in r["detections"]}


# -- a. a COCO export --------------------------------------------------------------------

@pytest.fixture(scope="module")
def coco_run(tmp_path_factory):
    """(folder, prepare output, train output) of `data prepare` and `train` on mine.yaml."""
    folder = tmp_path_factory.mktemp("coco_journey")
    write_coco_export(folder)
    prepared = tfseg(folder, "data", "prepare", "data=mine.yaml", "prepare_workers=0")
    trained = tfseg(folder, "train", "data=mine.yaml", *TINY_TRAINING)
    return folder, prepared, trained


def test_coco_export_prepares_and_trains_with_evaluation(coco_run):
    folder, prepared, _ = coco_run
    assert "classes (3): circle=1, rectangle=3, triangle=7" in prepared
    assert set(instance_counts(prepared)) == {"train", "val"}
    run = folder / "runs" / "train" / "train"
    assert (run / "weights" / "last.weights.h5").is_file()
    assert (run / "results.csv").is_file()
    evaluation = val_metrics(run / "val" / "metrics.json")
    assert Path(evaluation["ground_truth"]) == folder / "mine" / "ann" / "val.json"


def test_coco_export_val_and_predict_with_a_clean_console(coco_run):
    folder, _, _ = coco_run
    output = tfseg(folder, "val", "weights=runs/train/train", user_console=True)
    assert "mAP50-95" in output
    evaluation = val_metrics(folder / "runs" / "val" / "val" / "metrics.json")
    assert Path(evaluation["ground_truth"]) == folder / "mine" / "ann" / "val.json"

    output = tfseg(folder, "predict", "weights=runs/train/train", "source=mine/img/val",
                   "save_json=true", "conf=0.001", user_console=True)
    assert "results: " in output
    names = predicted_names(folder / "runs" / "predict" / "predict")
    assert names and names <= set(NAMES), names
    model_json = json.loads((folder / "runs/train/train/weights/model.json").read_text())
    assert model_json["class_names"] == NAMES and model_json["category_ids"] == [1, 3, 7]


# -- b. an Ultralytics YOLO-seg folder with its data.yaml ----------------------------------

@pytest.fixture(scope="module")
def yolo_run(tmp_path_factory):
    """(folder, data.yaml, prepare output, train output) on the Ultralytics data.yaml."""
    folder = tmp_path_factory.mktemp("yolo_journey")
    data_yaml = write_ultralytics_folder(folder)
    arg = f"data={data_yaml.relative_to(folder)}"
    prepared = tfseg(folder, "data", "prepare", arg, "prepare_workers=0")
    trained = tfseg(folder, "train", arg, *TINY_TRAINING)
    return folder, data_yaml, prepared, trained


def test_ultralytics_data_yaml_prepares_and_training_evaluates_on_converted_gt(yolo_run):
    folder, data_yaml, prepared, _ = yolo_run
    assert "classes (3): circle=1, rectangle=2, triangle=3" in prepared
    converted = data_yaml.parent / "records" / "coco_json" / "instances_val.json"
    assert converted.is_file()
    evaluation = val_metrics(folder / "runs" / "train" / "train" / "val" / "metrics.json")
    assert Path(evaluation["ground_truth"]) == converted


def test_ultralytics_data_yaml_val_and_predict(yolo_run):
    folder, data_yaml, _, _ = yolo_run
    tfseg(folder, "val", "weights=runs/train/train")
    evaluation = val_metrics(folder / "runs" / "val" / "val" / "metrics.json")
    assert Path(evaluation["ground_truth"]) == data_yaml.parent / "records" / "coco_json" / "instances_val.json"
    tfseg(folder, "predict", "weights=runs/train/train", "source=shapes_yolo/images/val",
          "save_json=true", "conf=0.001")
    names = predicted_names(folder / "runs" / "predict" / "predict")
    assert names and names <= set(NAMES), names
    # The names of data.yaml (a list: ids 1, 2, 3 in COCO terms) are what an export carries.
    model_json = json.loads((folder / "runs/train/train/weights/model.json").read_text())
    assert model_json["class_names"] == NAMES and model_json["category_ids"] == [1, 2, 3]


def test_ultralytics_data_yaml_without_val_is_named(tmp_path):
    (tmp_path / "data.yaml").write_text("path: .\ntrain: images/train\nnames: [a, b]\n")
    output = tfseg(tmp_path, "data", "prepare", "data=data.yaml", expect=2)
    assert "data.yaml" in output and "'val'" in output


# -- c. annotations edited after preparing -----------------------------------------------

def test_edited_coco_annotations_are_prepared_again(tmp_path):
    write_coco_export(tmp_path)
    first = instance_counts(tfseg(tmp_path, "data", "prepare", "data=mine.yaml", "prepare_workers=0"))
    again = tfseg(tmp_path, "data", "prepare", "data=mine.yaml", "prepare_workers=0")
    assert "(reused)" in again and instance_counts(again) == first

    ann_file = tmp_path / "mine" / "ann" / "val.json"
    content = json.loads(ann_file.read_text())
    extra = dict(content["annotations"][0], id=max(a["id"] for a in content["annotations"]) + 1)
    content["annotations"].append(extra)
    ann_file.write_text(json.dumps(content))
    edited = tfseg(tmp_path, "data", "prepare", "data=mine.yaml", "prepare_workers=0")
    assert "out of date: the val annotations changed" in edited
    assert "(reused)" not in edited
    assert instance_counts(edited) == {"train": first["train"], "val": first["val"] + 1}

    viewed = tfseg(tmp_path, "data", "view", "data=mine.yaml", "imgsz=64", "--output",
                   "batch.png")
    assert (tmp_path / "batch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "images at 64 px" in viewed
    # Multi-scale: the batch is drawn at a multiple of 32 within 64 x (1 +/- 0.5).
    viewed = tfseg(tmp_path, "data", "view", "data=mine.yaml", "imgsz=64", "multi_scale=0.5",
                   "--output", "scaled.png")
    size = int(re.search(r"images at (\d+) px", viewed).group(1))
    assert size in (32, 64, 96)
    assert cv2.imread(str(tmp_path / "scaled.png")).shape[1] == 4 * size  # 4 columns


def test_edited_yolo_labels_are_prepared_again(tmp_path):
    data_yaml = write_ultralytics_folder(tmp_path)
    first = instance_counts(tfseg(tmp_path, "data", "prepare", "data=shapes_yolo/data.yaml",
                                  "prepare_workers=0"))
    label = next(p for p in sorted((data_yaml.parent / "labels" / "train").glob("*.txt"))
                 if p.read_text().strip())
    lines = label.read_text().splitlines()
    label.write_text("".join(line + "\n" for line in lines[1:]))  # one instance fewer
    edited = tfseg(tmp_path, "data", "prepare", "data=shapes_yolo/data.yaml", "prepare_workers=0")
    assert "out of date: the train annotations changed" in edited
    assert instance_counts(edited) == {"train": first["train"] - 1, "val": first["val"]}

    tfseg(tmp_path, "data", "convert", "--to", "coco", "data=shapes_yolo/data.yaml",
          "--output", "back")
    for split, count in instance_counts(edited).items():
        coco = json.loads((tmp_path / "back" / "annotations" / f"instances_{split}.json").read_text())
        assert len(coco["annotations"]) == count
        assert [c["name"] for c in coco["categories"]] == NAMES
