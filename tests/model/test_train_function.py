"""On a CPU the train step runs without grappler's rewrites, and only the train step: read
from TensorFlow's own log of what its graph optimizer rewrote, in a fresh process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

# One train step of a tiny model, then an inference graph of the same network.
SCRIPT = """
import sys
import keras
import tensorflow as tf
from tfseg.model.yolo_seg import build_model
from tiny_batch import tiny_batch

model = build_model("yolov8-seg-n", 2, 64)
model.configure_loss()
model.compile(optimizer=keras.optimizers.SGD(0.01))
images, targets = tiny_batch()
model.train_on_batch(images, targets)
print("TRAINED", file=sys.stderr, flush=True)
tf.function(lambda x: model(x, training=False))(images)
print("FORWARD", file=sys.stderr, flush=True)
print(tf.config.optimizer.get_experimental_options().get("disable_meta_optimizer", False))
"""


def rewritten_sizes(log: str) -> list[int]:
    """Node counts of the graphs grappler rewrote (its meta optimizer's verbose lines)."""
    return [int(n) for n in re.findall(r"meta_optimizer\.cc.*Graph size after: (\d+) nodes", log)]


@pytest.mark.slow  # traces a train step
def test_the_train_step_skips_graph_rewrites_and_inference_keeps_them(tmp_path):
    script = tmp_path / "step.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0", "TF_CPP_VMODULE": "meta_optimizer=1",
           "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(TESTS)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    training, rest = out.stderr.split("TRAINED", 1)
    inference = rest.split("FORWARD", 1)[0]
    # The train step (about 7,700 nodes at this size) was not rewritten; a tf.data function
    # of a few nodes may be.
    assert max(rewritten_sizes(training), default=0) < 500, training[-3000:]
    # The inference graph of the same network was (so the log did report rewrites), and the
    # option is back as it was for every later graph.
    assert max(rewritten_sizes(inference), default=0) > 1000, inference[-3000:]
    assert out.stdout.split() == ["False"]
