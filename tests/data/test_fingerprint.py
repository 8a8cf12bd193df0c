"""Prepared records know their sources: a changed source is prepared again (with a line
saying why), matching records are reused, nothing stale is ever read."""

import json
import os
import shutil
from collections import Counter

import pytest

from tfseg.data.fingerprint import source_fingerprint, stale_reason
from tfseg.data.prepare import load_split, prepare
from tfseg.data.shapes import write_shapes


@pytest.fixture
def small(tmp_path):
    """A fresh small shapes dataset (6 train, 3 val images) and its records folder."""
    paths = write_shapes(str(tmp_path / "ds"), num_train=6, num_val=3, seed=5,
                         min_size=64, max_size=96)
    return paths, str(tmp_path / "records")


def _prepare(paths, records, **options):
    return prepare([paths["train_images"], paths["val_images"]],
                   [paths["train_annotations"], paths["val_annotations"]], records,
                   splits=["train", "val"], num_workers=0, verbose=False, **options)


def _classes_per_image(records, split) -> tuple[dict[int, Counter], dict]:
    dataset, info = load_split(records, split)
    return {int(r["image_id"]): Counter(int(c) for c in r["objects"]["class"])
            for r in dataset.as_numpy_iterator()}, info


def test_edited_annotations_are_prepared_again_and_the_records_follow(small, capsys):
    paths, records = small
    _prepare(paths, records)
    before, info = _classes_per_image(records, "val")

    content = json.loads(open(paths["val_annotations"]).read())
    ann = next(a for a in content["annotations"] if not a["iscrowd"])
    old_class = info["category_ids"].index(ann["category_id"])
    new_class = (old_class + 1) % len(info["category_ids"])
    ann["category_id"] = info["category_ids"][new_class]          # a class fixed
    content["annotations"].append(dict(ann, id=10_000))             # an instance added
    with open(paths["val_annotations"], "w") as f:
        json.dump(content, f)
    capsys.readouterr()
    summary = _prepare(paths, records)

    said = capsys.readouterr().out
    assert "out of date: the val annotations changed (instances_val.json:" in said
    assert not summary["reused"]
    after, _ = _classes_per_image(records, "val")
    expected = {k: Counter(v) for k, v in before.items()}
    expected[ann["image_id"]][old_class] -= 1
    expected[ann["image_id"]][new_class] += 2
    assert after == {k: +v for k, v in expected.items()}
    assert not [name for name in os.listdir(records) if name.endswith(".stale")]


def test_matching_sources_reuse_the_records(small, capsys):
    paths, records = small
    first = _prepare(paths, records)
    capsys.readouterr()
    again = _prepare(paths, records)
    assert again["reused"] and not first["reused"]
    assert "out of date" not in capsys.readouterr().out
    assert again["splits"]["val"]["instances"] == first["splits"]["val"]["instances"]


def test_an_added_image_or_another_option_prepares_again(small, capsys):
    paths, records = small
    _prepare(paths, records)
    image = sorted(os.listdir(paths["train_images"]))[0]
    shutil.copy(f"{paths['train_images']}/{image}", f"{paths['train_images']}/extra_{image}")
    capsys.readouterr()
    _prepare(paths, records)
    assert "the train images changed (6 -> 7 files)" in capsys.readouterr().out
    _prepare(paths, records, strict=True)
    assert "the preparation options changed" in capsys.readouterr().out


def test_stale_reason_names_the_first_difference(small):
    paths, _ = small
    sources = {"train": (paths["train_images"], paths["train_annotations"])}
    current = source_fingerprint(sources, strict=False)
    assert stale_reason(current, current) is None
    assert "no source fingerprint" in stale_reason(None, current)
    assert "record format 0" in stale_reason(dict(current, format_version=0), current)
    with_val = dict(current, splits={**current["splits"], "val": current["splits"]["train"]})
    assert "the splits changed (['train', 'val'] -> ['train'])" in stale_reason(with_val, current)
    resized = json.loads(json.dumps(current))
    resized["splits"]["train"]["annotations"]["size"] += 1
    assert "the train annotations changed (instances_train.json:" in stale_reason(resized, current)
