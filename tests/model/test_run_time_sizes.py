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
    own = build_model(name, 3, 96)  # what a network built for 96 px computes
    own.set_weights(model.get_weights())
    images = tf.random.stateless_uniform([1, 96, 96, 3], [96, 1])
    ours, theirs = step(images), own(images, training=False)
    for key, value in theirs.items():
        np.testing.assert_allclose(ours[key], value, atol=1e-4, err_msg=f"{name} {key}")
    small = step(tf.zeros([2, 32, 32, 3]))  # the same trace at another size
    assert small["box_logits"].shape[:2] == (2, 16 + 4 + 1)
    assert small["prototypes"].shape[1:3] == (8, 8)
    assert step.experimental_get_tracing_count() == 1
