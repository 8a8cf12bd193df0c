"""A network built for one size runs, in one trace, at any multiple of 32 (multi-scale
training), giving what a network built for that size gives; its exports keep static shapes."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.model import build_model


# YOLO11 and YOLO26 hold every layer kind of the three (attention, the upsampling, the heads).
@pytest.mark.parametrize("name", ["yolo11-seg-n", "yolo26-seg-n"])
def test_one_trace_serves_every_size_with_the_outputs_of_a_network_built_for_it(name):
    model = build_model(name, 3, 64)
    step = tf.function(lambda x: model(x, training=False),
                       input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    for size in (32, 96):
        own = build_model(name, 3, size)
        own.set_weights(model.get_weights())
        images = tf.random.stateless_uniform([1, size, size, 3], [size, 1])
        ours, theirs = step(images), own(images, training=False)
        assert ours["box_logits"].shape[1] == sum((size // s) ** 2 for s in (8, 16, 32))
        for key, value in theirs.items():
            np.testing.assert_allclose(ours[key], value, atol=1e-4, err_msg=f"{name} {key}")
    assert step.experimental_get_tracing_count() == 1
