import json
import os

from tfseg.config import load_config
from tfseg.runs import new_run_dir, save_config, write_atomic, write_json


def test_run_directories_auto_increment_and_never_reuse(tmp_path):
    first = new_run_dir(tmp_path, "train")
    (first / "marker").write_text("keep me")
    second = new_run_dir(tmp_path, "train")
    third = new_run_dir(tmp_path, "train", name="exp")
    assert (first.name, second.name, third.name) == ("train", "train2", "exp")
    assert (first / "marker").read_text() == "keep me"
    assert new_run_dir(tmp_path, "train", name="exp").name == "exp2"


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "metrics.json"
    write_json(target, {"map": 0.5})
    write_json(target, {"map": 0.75})
    assert json.loads(target.read_text()) == {"map": 0.75}
    assert sorted(os.listdir(target.parent)) == ["metrics.json"]


def test_failed_write_keeps_the_old_content(tmp_path):
    target = tmp_path / "a.txt"
    write_atomic(target, "old")

    class Boom:  # bytes() of this fails inside write_atomic, after the temp file exists
        pass

    try:
        write_atomic(target, Boom())  # type: ignore[arg-type]
    except Exception:
        pass
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_config_snapshot_is_what_was_used(tmp_path):
    cfg = load_config(["epochs=2", "imgsz=96"])
    path = save_config(tmp_path, cfg)
    assert load_config([f"cfg={path}"]) == cfg
