"""The train step run without TensorFlow's graph rewrites (grappler) on CPUs.

Before its first run, TensorFlow passes each traced function through grappler, its graph
optimizer (constant folding, pruning, arithmetic and dependency rewrites, the memory
optimizer...). The train step is the biggest graph tfseg runs: about 8,400 ops for
yolov8-seg-n, counted over the step and its condition branches (forward, backward, loss,
optimizer update with gradient accumulation, weight average). On a CPU its rewrites took
several seconds of every run's start and gained nothing: the convolutions of a training
step feed batch normalization, so none of the fusions that speed up inference applies.

Measured with ``tools/measure_start.py data=cocolike imgsz=320 epochs=2 steps_per_epoch=15
batch=8`` on a 2-vCPU AMD EPYC, with and without them, interleaved: the rewrites cost 5-6 s
of the first step and nothing in the steady step (docs/benchmarks.md, "The start of a
training run", has the start as a whole).
Setting and restoring the option around each call costs about 0.2 ms.

Accelerators keep the rewrites (on GPUs the layout optimizer moves convolutions to the
layout cuDNN prefers; XLA compiles the step anyway). Only the train function is affected:
the evaluation, prediction and export graphs are optimized as before.
"""

from __future__ import annotations

import contextlib
import functools

import tensorflow as tf

_OPTION = "disable_meta_optimizer"


@contextlib.contextmanager
def graph_rewrites_off():
    """Functions first called inside run without grappler (TensorFlow reads the option
    when a call is made, and keeps one instance of a function per option set)."""
    before = bool(tf.config.optimizer.get_experimental_options().get(_OPTION, False))
    tf.config.optimizer.set_experimental_options({_OPTION: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({_OPTION: before})


def has_accelerator() -> bool:
    """Whether a GPU or TPU is visible: there the train step keeps grappler's rewrites, and
    ``jit_compile`` takes effect (tfseg/train/fit.py)."""
    return bool(tf.config.list_physical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def without_graph_rewrites(function):
    """``function`` (Keras' train function) called inside ``graph_rewrites_off``."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        with graph_rewrites_off():
            return function(*args, **kwargs)

    return call
