"""The latency floor: MACs counted from a .tflite agree with a hand count; the floor's sums."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.benchmarks.floor import _op_macs, floor_ms, peaks, tflite_macs


def _tiny_tflite(path):
    """conv 3x3 (3 -> 8) -> depthwise 3x3 -> conv 1x1 stride 2 (8 -> 4) -> activation matmul
    -> dense 256 -> 10, on a 16 x 16 input; constant weights, float32."""
    rng = np.random.default_rng(0)
    conv1 = tf.constant(rng.normal(size=(3, 3, 3, 8)).astype(np.float32))
    depthwise = tf.constant(rng.normal(size=(3, 3, 8, 1)).astype(np.float32))
    conv2 = tf.constant(rng.normal(size=(1, 1, 8, 4)).astype(np.float32))
    dense = tf.constant(rng.normal(size=(256, 10)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, 16, 16, 3], tf.float32)])
    def net(x):
        x = tf.nn.relu(tf.nn.conv2d(x, conv1, 1, "SAME"))  # [1, 16, 16, 8]
        x = tf.nn.depthwise_conv2d(x, depthwise, [1, 1, 1, 1], "SAME")  # [1, 16, 16, 8]
        x = tf.nn.conv2d(x, conv2, 2, "SAME")  # [1, 8, 8, 4]
        tokens = tf.reshape(x, [1, 64, 4])  # [1, 64, 4]
        attention = tf.linalg.matmul(tokens, tokens, transpose_b=True)  # [1, 64, 64]
        return tf.matmul(tf.reshape(x, [1, 256]), dense), attention

    converter = tf.lite.TFLiteConverter.from_concrete_functions([net.get_concrete_function()],
                                                                net)
    path.write_bytes(converter.convert())
    return path


def test_macs_of_a_small_graph_equal_the_hand_count(tmp_path):
    hand = (16 * 16 * 8 * (3 * 3 * 3)  # conv 3x3, 3 -> 8: each output cell sums 27 products
            + 16 * 16 * 8 * (3 * 3)  # depthwise: 9 per output cell
            + 8 * 8 * 4 * 8  # 1x1 stride 2, 8 -> 4
            + 64 * 64 * 4  # tokens x tokens^T: 64 x 64 outputs of 4 products
            + 10 * 256)  # dense
    assert tflite_macs(_tiny_tflite(tmp_path / "tiny.tflite")) == hand


def test_transposed_conv_and_unknown_ops():
    # 2x upsampling 4 -> 6 channels, kernel 2x2, on a [1, 5, 5, 4] input: each input cell
    # scatters into kh x kw x Cout outputs.
    assert _op_macs("TRANSPOSE_CONV", [[4], [6, 2, 2, 4], [1, 5, 5, 4]], [1, 10, 10, 6]) == \
        25 * 4 * 2 * 2 * 6
    assert _op_macs("ADD", [[1, 4], [1, 4]], [1, 4]) == 0


def test_peak_is_the_fastest_kernel_per_precision_and_the_floor_is_work_over_it():
    kernels = {"matmul": (None, 10**9, "fp32"), "conv": (None, 2 * 10**9, "fp32"),
               "conv int8": (None, 10**9, "int8")}
    measured = peaks(kernels, {"matmul": 10.0, "conv": 10.0, "conv int8": 2.0})
    assert measured == pytest.approx({"fp32": 2e11, "int8": 5e11})  # MAC/s
    assert floor_ms(6 * 10**9, measured["fp32"]) == pytest.approx(30.0)
