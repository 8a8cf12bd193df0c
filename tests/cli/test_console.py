"""What a user sees in the console of ``tfseg train``, ``val``, ``predict`` and ``export``.

Run as the user types them, with no logging variable set: no deprecation warning, no
Python warning raised from tfseg's own files, and none of TensorFlow's C++ start-up lines
(CPU instructions, oneDNN, CUDA plugins) unless ``TFSEG_VERBOSE=1`` asks for them. The
training is the shared tiny run (tests/cli/conftest.py), trained with the same console.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from cli_runner import TFSEG, run_tfseg, user_console_env

import tfseg
import tfseg.export

# Our own source folders: a warning whose origin is one of these files is ours to fix.
OUR_FOLDERS = tuple(str(Path(m.__file__).parent) for m in (tfseg, tfseg.export))
PYTHON_WARNING = re.compile(r"^(?P<file>\S+\.py):\d+: (?P<kind>\w*Warning): ")
# TensorFlow's C++ log lines: "I0000 00:00:1796... 123 port.cc:113] ..." (absl) or
# "2026-12-06 21:00:00.000: I tensorflow/core/...] ..." (older TensorFlow logging).
CPP_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] )")


def unwanted_lines(output: str) -> list[str]:
    """The console lines a user should not meet: deprecations, warnings from tfseg's files,
    Python warnings and TensorFlow's C++ start-up lines."""
    found = []
    for line in output.splitlines():
        warning = PYTHON_WARNING.match(line)
        if ("deprecat" in line.lower() or CPP_LOG_LINE.match(line)
                or "absl::InitializeLog" in line
                or (warning and (warning["file"].startswith(OUR_FOLDERS)
                                 or warning["kind"] in ("DeprecationWarning", "UserWarning",
                                                        "FutureWarning")))):
            found.append(line)
    return found


def test_the_checker_flags_what_it_should():
    """The patterns against lines copied from real consoles before the fixes."""
    flagged = [
        "WARNING:tensorflow:From /x/deprecation.py:660: calling map_fn_v2 (from tensorflow.python"
        ".ops.map_fn) with dtype is deprecated and will be removed in a future version.",
        "/x/keras/src/trainers/epoch_iterator.py:74: UserWarning: `shuffle=True` was passed",
        f"{OUR_FOLDERS[0]}/train/fit.py:12: RuntimeWarning: overflow",
        "I0000 00:00:1796595070.417630   21859 cpu_feature_guard.cc:227] This TensorFlow binary",
        "W0000 00:00:1744708234.960672 1370911 computation_placer.cc:177] computation placer",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "2024-11-21 15:11:13.384029: I tensorflow/core/util/port.cc:113] oneDNN custom "
        "operations are on."]
    for line in flagged:
        assert unwanted_lines(line) == [line]
    assert len(unwanted_lines("epoch 1/1  loss 56.23\n/x/other.py:3: RuntimeWarning: y\n")) == 0
    assert len(unwanted_lines("WARNING:absl:`TensorInfo.dtype` is deprecated.")) == 1


@pytest.fixture(scope="module")
def workdir(tiny_run, tmp_path_factory) -> Path:
    return tiny_run.copy_into(tmp_path_factory.mktemp("console"))


@pytest.mark.slow  # the shared tiny training
def test_train_console_is_clean(tiny_run):
    output = tiny_run.train_output.stdout + tiny_run.train_output.stderr
    assert "epoch 1/1" in output  # the run trained and printed its epoch line
    assert unwanted_lines(output) == []


def run_as_user(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run_tfseg(cwd, *args, user_console=True)


@pytest.mark.slow  # three more processes that load TensorFlow, and a TFLite conversion
def test_val_predict_and_export_consoles_are_clean(workdir):
    val = run_as_user(workdir, "val", "weights=runs/train/train", "data.root=ds", "imgsz=64",
                      "eval.batch=4", "plots=false")
    assert "mAP50-95" in val.stdout
    predict = run_as_user(workdir, "predict", "weights=runs/train/train", "source=ds/images/val",
                          "imgsz=64", "conf=0.0001", "max_det=5")
    assert "results: " in predict.stdout
    export = run_as_user(workdir, "export", "weights=runs/train/train", "formats=tflite",
                         "tflite_modes=float32", "raw=false", "parity_images=2")
    assert (workdir / "runs/export/train/yolov8-seg-n_64_float32.tflite").is_file()
    for verb, result in (("val", val), ("predict", predict), ("export", export)):
        assert unwanted_lines(result.stdout + result.stderr) == [], verb


@pytest.mark.slow  # loads TensorFlow twice
def test_tfseg_verbose_shows_tensorflows_own_lines_again(tmp_path):
    """The hidden lines are one variable away. ``tfseg info`` builds a model, so TensorFlow
    starts; its CPU-instruction line is an INFO line every x86 build prints."""
    quiet = subprocess.run([*TFSEG, "info", "model=yolov8-seg-n", "imgsz=64"], cwd=tmp_path,
                           capture_output=True, text=True, env=user_console_env(), timeout=600)
    loud = subprocess.run([*TFSEG, "info", "model=yolov8-seg-n", "imgsz=64"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**user_console_env(), "TFSEG_VERBOSE": "1"})
    assert quiet.returncode == 0 and loud.returncode == 0, quiet.stderr[-2000:] + loud.stderr
    assert not any(CPP_LOG_LINE.match(line) for line in quiet.stderr.splitlines())
    assert any(CPP_LOG_LINE.match(line) for line in loud.stderr.splitlines()), loud.stderr
