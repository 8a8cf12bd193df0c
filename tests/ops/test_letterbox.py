"""Letterbox parameters, forward and inverse maps, checked on hand-worked numbers."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.contracts import LETTERBOX_PAD_VALUE
from tfseg.ops.letterbox import (letterbox_boxes, letterbox_image, letterbox_info,
                                 letterbox_inverse_boxes, letterbox_masks, letterbox_params)

# (height, width, size) -> (scale, resized_h, resized_w, pad_top, pad_left), worked by hand.
HAND_WORKED = [
    ((480, 640, 320), (0.5, 240, 320, 40, 0)),
    ((100, 50, 64), (0.64, 64, 32, 0, 16)),
    ((64, 64, 64), (1.0, 64, 64, 0, 0)),
    ((3, 7, 64), (64 / 7, 27, 64, 18, 0)),  # 3 * 64/7 = 27.43 -> 27; (64 - 27) // 2 = 18
    ((50, 100, 160), (1.6, 80, 160, 40, 0)),
    ((33, 20, 96), (96 / 33, 96, 58, 0, 19)),  # 20 * 96/33 = 58.18 -> 58; (96 - 58) // 2 = 19
]


@pytest.mark.parametrize("args,expected", HAND_WORKED)
def test_params_hand_worked(args, expected):
    scale, rh, rw, top, left = letterbox_params(*args)
    assert float(scale) == pytest.approx(expected[0], rel=1e-6)
    assert (int(rh), int(rw), int(top), int(left)) == expected[1:]
    info = letterbox_info(*args).numpy()
    np.testing.assert_allclose(info, [args[0], args[1], expected[0], expected[3], expected[4]], rtol=1e-6)


@pytest.mark.parametrize("args,expected", HAND_WORKED)
def test_box_round_trip_exact(args, expected):
    height, width, size = args
    boxes = tf.constant([[0, 0, width, height], [1.5, 0.25, width / 2, height / 3]], tf.float32)
    info = letterbox_info(height, width, size)
    forward = letterbox_boxes(boxes, info)
    # The whole image maps onto the content window (within the sub-pixel rounding of resized).
    _, rh, rw, top, left = expected
    np.testing.assert_allclose(forward[0], [left, top, left + width * expected[0], top + height * expected[0]],
                               rtol=1e-6)
    assert abs(float(forward[0, 2]) - (left + rw)) <= 0.5 and abs(float(forward[0, 3]) - (top + rh)) <= 0.5
    np.testing.assert_allclose(letterbox_inverse_boxes(forward, info), boxes, atol=1e-4)


def test_inverse_boxes_batched_and_clipped():
    info = tf.stack([letterbox_info(480, 640, 320), letterbox_info(100, 50, 64)])  # [2, 5]
    boxes = tf.constant([[[0, 40, 160, 280]], [[16, 0, 48, 64]]], tf.float32)  # [2, 1, 4]
    expected = [[[0, 0, 320, 480]], [[0, 0, 50, 100]]]
    np.testing.assert_allclose(letterbox_inverse_boxes(boxes, info), expected, atol=1e-4)
    outside = tf.constant([[[-10, 0, 330, 300]], [[0, -5, 70, 64]]], tf.float32)  # into the padding
    clipped = letterbox_inverse_boxes(outside, info).numpy()
    assert clipped[0, 0, 0] == 0 and clipped[0, 0, 1] == 0 and clipped[0, 0, 3] == 480
    assert clipped[1, 0, 0] == 0 and clipped[1, 0, 2] == 50
    unclipped = letterbox_inverse_boxes(outside, info, clip=False).numpy()
    assert unclipped[0, 0, 1] == pytest.approx(-80.0)


def test_image_content_and_padding():
    image = tf.fill([480, 640, 3], tf.constant(200, tf.uint8))
    out, info = letterbox_image(image, 320)
    out = out.numpy()
    assert out.shape == (320, 320, 3) and out.dtype == np.float32
    assert np.all(out[:40] == LETTERBOX_PAD_VALUE) and np.all(out[280:] == LETTERBOX_PAD_VALUE)
    np.testing.assert_allclose(out[40:280], 200.0, atol=1e-3)
    np.testing.assert_allclose(info, [480, 640, 0.5, 40, 0])


def test_masks_follow_the_image():
    masks = np.zeros([2, 100, 200], np.uint8)
    masks[0, 20:40, 50:150] = 1  # downscale by 2 -> rows 10:20, cols 25:75, then pad_top 25
    out = letterbox_masks(tf.constant(masks), 100).numpy()
    assert out.shape == (2, 100, 100) and out.dtype == np.uint8
    expected = np.zeros([100, 100], np.uint8)
    expected[35:45, 25:75] = 1
    np.testing.assert_array_equal(out[0], expected)
    assert out[1].sum() == 0


def test_lowers_to_tflite_builtins(tmp_path):
    """The letterbox of a fixed-size image converts without Flex ops and matches TF."""
    from ai_edge_litert.interpreter import Interpreter

    @tf.function(input_signature=[tf.TensorSpec([48, 64, 3], tf.uint8)])
    def fn(image):
        out, info = letterbox_image(image, 32)
        return {"image": out, "info": info}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # fails on Flex
    model = converter.convert()
    image = np.random.default_rng(0).integers(0, 256, [48, 64, 3]).astype(np.uint8)
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    got = {tuple(d["shape"]): interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()}
    want = fn(tf.constant(image))
    np.testing.assert_allclose(got[(32, 32, 3)], want["image"], atol=1e-3)
    np.testing.assert_allclose(got[(5,)], want["info"], atol=1e-6)
