"""The tfseg command as a user runs it: a real subprocess, real files."""

import json
import subprocess
import sys

import pytest


def tfseg(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tfseg", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_help_at_every_level_lists_the_verbs():
    top = tfseg("--help")
    assert top.returncode == 0
    for verb in ("data", "train", "val", "predict", "export", "benchmark", "demo", "info"):
        assert verb in top.stdout
    sub = tfseg("train", "--help")
    assert sub.returncode == 0 and "key=value" in sub.stdout


@pytest.mark.parametrize("args, message", [
    (["train", "epoch=3"], "unknown config key 'epoch'; did you mean epochs?"),
    (["train", "imgsz=abc"], "'model.image_size' must be int, got 'abc'"),
    (["train", "data=/no/such/dataset.yaml"], "dataset config not found"),
    (["data", "shapes", "shapes_train=x"], "'data.shapes_train' must be int"),
])
def test_bad_input_is_one_line_with_exit_2_and_no_traceback(args, message):
    out = tfseg(*args)
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_unknown_subcommand_fails_with_the_choices():
    out = tfseg("trian")
    assert out.returncode == 2
    assert "invalid choice: 'trian'" in out.stderr and "Traceback" not in out.stderr


def test_data_shapes_writes_a_coco_dataset_where_asked(tmp_path):
    out = tfseg("data", "shapes", "--output", str(tmp_path / "sh"), "shapes_train=3", "shapes_val=2")
    assert out.returncode == 0, out.stderr
    train = json.loads((tmp_path / "sh/annotations/instances_train.json").read_text())
    assert len(train["images"]) == 3
    assert all((tmp_path / "sh/images/train" / im["file_name"]).is_file() for im in train["images"])
