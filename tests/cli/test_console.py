"""What a user sees in the console of ``tfseg train``, ``val``, ``predict`` and ``export``.

Run as the user types them, with no logging variable set: no deprecation warning, no
Python warning raised from tfseg's own files, and none of TensorFlow's C++ start-up lines
(CPU instructions, oneDNN, CUDA plugins) unless ``TFSEG_VERBOSE=1`` asks for them. The
training is the shared tiny run (tests/cli/conftest.py), trained with the same console; the
consoles of ``val`` and ``predict`` are checked in the COCO journey (test_journey_data.py),
those of ``export`` and of ``predict`` on an export in the weights journey
(test_journey_weights.py), with the checker below (tests/cli_runner.py).
"""

from __future__ import annotations

import subprocess

import pytest

from cli_runner import CPP_LOG_LINE, TFSEG, our_folders, unwanted_lines, user_console_env


def test_the_checker_flags_what_it_should():
    """The patterns against lines copied from real consoles before the fixes."""
    flagged = [
        "WARNING:tensorflow:From /x/deprecation.py:660: calling map_fn_v2 (from tensorflow.python"
        ".ops.map_fn) with dtype is deprecated and will be removed in a future version.",
        "/x/keras/src/trainers/epoch_iterator.py:74: UserWarning: `shuffle=True` was passed",
        f"{our_folders()[0]}/train/fit.py:12: RuntimeWarning: overflow",
        "I0000 00:00:1796595070.417630   21859 cpu_feature_guard.cc:227] This TensorFlow binary",
        "W0000 00:00:1744708234.960672 1370911 computation_placer.cc:177] computation placer",
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "2024-11-21 15:11:13.384029: I tensorflow/core/util/port.cc:113] oneDNN custom "
        "operations are on.",
        "WARNING:absl:Importing a function (__inference_detect_82634) with ops with unsaved "
        "custom gradients. Will likely fail if a gradient is requested."]
    for line in flagged:
        assert unwanted_lines(line) == [line]
    assert len(unwanted_lines("epoch 1/1  loss 56.23\n/x/other.py:3: RuntimeWarning: y\n")) == 0
    assert len(unwanted_lines("WARNING:absl:`TensorInfo.dtype` is deprecated.")) == 1


@pytest.mark.slow  # the shared tiny training
def test_train_console_is_clean(tiny_run):
    output = tiny_run.train_output.stdout + tiny_run.train_output.stderr
    assert "epoch 1/1" in output  # the run trained and printed its epoch line
    assert unwanted_lines(output) == []


@pytest.mark.slow  # loads TensorFlow
def test_tfseg_verbose_shows_tensorflows_own_lines_again(tmp_path):
    """The hidden lines are one variable away (the consoles above show them hidden without
    it). ``tfseg info`` builds a model, so TensorFlow starts; its CPU-instruction line is an
    INFO line every x86 build prints."""
    loud = subprocess.run([*TFSEG, "info", "model=yolov8-seg-n", "imgsz=64"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={**user_console_env(), "TFSEG_VERBOSE": "1"})
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert any(CPP_LOG_LINE.match(line) for line in loud.stderr.splitlines()), loud.stderr
