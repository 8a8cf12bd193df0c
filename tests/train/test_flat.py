"""The flat state of tfseg.train.flat: layout round trips, and what it is for: an optimizer
update (accumulation, clip, weight average) whose graph stays a few ops per variable."""

import collections

import keras
import numpy as np
import tensorflow as tf

from tfseg.train.ema import ModelEMA
from tfseg.train.flat import FlatLayout
from tfseg.train.optim import NesterovSGD, make_optimizer


def test_layout_flattens_and_restores_tensors_of_any_shape():
    shapes = [(2, 3), (), (4,), (1, 2, 2)]
    rng = np.random.default_rng(0)
    tensors = [rng.normal(size=s).astype(np.float32) for s in shapes]
    layout = FlatLayout(shapes)
    flat = layout.flatten([tf.constant(t) for t in tensors])
    assert layout.size == 6 + 1 + 4 + 4 and flat.shape == (15,)
    np.testing.assert_array_equal(flat.numpy()[6], tensors[1])  # order kept: the scalar is 7th
    for back, numpy_back, tensor in zip(layout.unflatten(flat),
                                        layout.unflatten_numpy(flat.numpy()), tensors):
        np.testing.assert_array_equal(back.numpy(), tensor)
        np.testing.assert_array_equal(numpy_back, tensor)


def _dense_pair():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])


def test_a_variable_without_gradient_keeps_its_value_and_its_momentum():
    # Step 1 leaves out the second Dense's kernel; step 2 gives every variable a gradient.
    # That kernel must then move exactly as a fresh optimizer's first step moves it: its
    # momentum (and the kernel decay that would enter it) untouched by step 1.
    model, fresh = _dense_pair(), _dense_pair()
    sgd = NesterovSGD(learning_rate=0.1, momentum=0.9, kernel_decay=0.1)
    variables = model.trainable_variables
    before = [v.numpy().copy() for v in variables]
    grads = [tf.ones(v.shape) for v in variables]
    sgd.apply(grads[:2] + [None] + grads[3:], variables)
    for i, (variable, value) in enumerate(zip(variables, before)):
        assert np.array_equal(variable.numpy(), value) == (i == 2), variable.path
    sgd.apply(grads, variables)
    NesterovSGD(learning_rate=0.1, momentum=0.9, kernel_decay=0.1).apply(
        grads, fresh.trainable_variables)
    np.testing.assert_array_equal(variables[2].numpy(), fresh.trainable_variables[2].numpy())
    assert not np.array_equal(variables[0].numpy(), fresh.trainable_variables[0].numpy())


def _ops(graph, counts):
    for op in graph.get_operations():
        counts[op.type] += 1
    for function in graph._functions.values():  # the condition's branches
        _ops(function.graph, counts)
    return counts


def test_the_update_of_the_real_model_traces_a_few_ops_per_variable():
    # Written per variable, the update with accumulation and the weight average made 27 ops
    # per model weight (9,541 for yolov8-seg-n's 350 weights, 218 of them trainable), most of
    # them the condition's captures; the flat state is there to keep that down.
    from tfseg.model.yolo_seg import build_model

    model = build_model("yolov8-seg-n", 3, 64)
    optimizer, choice = make_optimizer(
        "sgd", lr0=0.01, lrf=0.01, momentum=0.937, weight_decay=5e-4, warmup_epochs=1,
        warmup_bias_lr=0.1, cosine=False, epochs=2, steps_per_epoch=10, batch=8, num_classes=3)
    assert choice.accumulate == 8
    variables = model.trainable_variables
    optimizer.build(variables)
    ModelEMA(model, optimizer)

    @tf.function
    def step(grads):
        optimizer.apply(grads, variables)

    grads = [tf.zeros(v.shape) for v in variables]
    counts = _ops(step.get_concrete_function(grads).graph, collections.Counter())
    per_variable = sum(counts.values()) / len(model.weights)
    assert per_variable < 8, counts.most_common(8)
    # Each weight is read once: the trainable ones by the update, which hands its new values
    # to the average; the others (batch-norm statistics) by the average. Plus the slots,
    # the accumulator, the counters and the shadow.
    assert len(model.weights) <= counts["ReadVariableOp"] <= len(model.weights) + 20
    assert counts["If"] + counts["StatelessIf"] == 2  # the update's condition and the average's
