"""The latency floor of a network on this machine: its multiply-adds over the measured peak.

    tflite_macs(path)             multiply-accumulates of one call of a .tflite file
    peak_kernels(threads)         kernels near the peak: a TF matmul and a LiteRT conv (fp32),
                                  the same conv fully int8 (LiteRT), each with its MACs
    peaks(kernels, min_ms)        fp32 and int8 MAC/s from their measured times
    floor_ms(macs, macs_per_s)    the time the work would take at that peak

MACs are counted from the graph that runs, so the same counter applies to our files and to
the reference's: CONV_2D (output cells x kh x kw x Cin), DEPTHWISE_CONV_2D (output cells x
kh x kw), TRANSPOSE_CONV (input cells x kh x kw x Cout), FULLY_CONNECTED (output cells x
input features) and BATCH_MATMUL (output cells x the contracted size). Element-wise work is
left out, so the floor is a lower bound no runtime reaches: the ratio to it says how much of
the machine a file uses.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import numpy as np

from tfseg.optional import litert_interpreter

# A 3x3 convolution of 128 -> 128 channels on a 40 x 40 map (0.24 G MACs): its weights and
# activations stay in cache, so it runs at the arithmetic peak (256 channels at 40 x 40 ran
# 2.6x slower in float32 and 2x in int8 here, bound by memory, below what the models reach).
PEAK_CONV = {"size": 40, "channels": 128, "kernel": 3}


def _op_macs(name: str, shapes: list[list[int]], out: list[int]) -> int:
    """MACs of one TFLite op given its input shapes and first output shape."""
    cells = int(np.prod(out)) if out else 0
    if name == "CONV_2D":  # filter [Cout, kh, kw, Cin]
        _, kh, kw, cin = shapes[1]
        return cells * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, Cout]
        return cells * shapes[1][1] * shapes[1][2]
    if name == "TRANSPOSE_CONV":  # (output shape, filter [Cout, kh, kw, Cin], input)
        cout, kh, kw, _ = shapes[1]
        return int(np.prod(shapes[2])) * kh * kw * cout
    if name == "FULLY_CONNECTED":  # filter [units, features]
        return cells * shapes[1][-1]
    if name == "BATCH_MATMUL":  # a [..., M, K] (or K, M), b [..., K, N] (or N, K) -> [..., M, N]
        m_n = out[-2] * out[-1]
        contracted = math.isqrt(int(np.prod(shapes[0][-2:]) * np.prod(shapes[1][-2:])) // m_n)
        return cells * contracted
    return 0


def tflite_macs(path: str | os.PathLike) -> int:
    """Multiply-accumulates of one invocation of a .tflite file (every subgraph once).

    Args:
        path: the .tflite file.

    Returns:
        The MAC count of its convolutions, fully connected layers and matrix products.
    """
    from tfseg.export.structure import inspect_tflite

    total = 0
    for graph in inspect_tflite(Path(path)).subgraphs:
        for op in graph.operators:
            shapes = [graph.tensors[i].shape if i >= 0 else [] for i in op.inputs]
            out = graph.tensors[op.outputs[0]].shape if op.outputs else []
            total += _op_macs(op.name, shapes, out)
    return total


def floor_ms(macs: int, macs_per_s: float) -> float:
    """Milliseconds ``macs`` multiply-accumulates take at ``macs_per_s``."""
    return 1000.0 * macs / macs_per_s


def _conv_tflite(int8: bool) -> bytes:
    """The peak convolution as a .tflite: float32, or int8 weights and activations."""
    import tensorflow as tf

    size, channels, k = PEAK_CONV["size"], PEAK_CONV["channels"], PEAK_CONV["kernel"]
    rng = np.random.default_rng(0)
    kernel = tf.constant(rng.normal(0, 0.05, (k, k, channels, channels)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, channels], tf.float32)])
    def conv(x):
        return tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME"))

    converter = tf.lite.TFLiteConverter.from_concrete_functions([conv.get_concrete_function()],
                                                                conv)
    if int8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(0, 1, (1, size, size, channels)).astype(np.float32)] for _ in range(4))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def _litert_call(model: bytes, threads: int) -> Callable[[], None]:
    interpreter_class = litert_interpreter("timing a .tflite model")
    interpreter = interpreter_class(model_content=model, num_threads=threads)
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
    return interpreter.invoke


def peak_kernels(threads: int = 2) -> dict[str, tuple[Callable[[], object], int, str]]:
    """Kernels that run near this machine's peak, to be timed beside the models.

    The peak is measured under the same load as the files it is compared with: time these
    in the same interleaved rounds, then :func:`peaks` turns the times into MAC/s.

    Args:
        threads: LiteRT threads (set TF's intra-op threads to the same count before
            TensorFlow starts, for the matmul).

    Returns:
        name -> (call, MACs per call, "fp32" or "int8"): a 1024 x 1024 TF matmul, and the
        peak convolution in LiteRT (XNNPACK, the kernels our files run on) in float32 and
        fully int8.
    """
    import tensorflow as tf

    n = 1024
    a = tf.constant(np.random.default_rng(0).normal(size=(n, n)).astype(np.float32))
    size, channels, k = PEAK_CONV["size"], PEAK_CONV["channels"], PEAK_CONV["kernel"]
    conv_macs = size * size * channels * channels * k * k
    return {"peak fp32 TF matmul": (lambda: tf.linalg.matmul(a, a).numpy(), n ** 3, "fp32"),
            "peak fp32 LiteRT conv": (_litert_call(_conv_tflite(False), threads), conv_macs,
                                      "fp32"),
            "peak int8 LiteRT conv": (_litert_call(_conv_tflite(True), threads), conv_macs,
                                      "int8")}


def peaks(kernels: dict, min_ms: dict[str, float]) -> dict[str, float]:
    """MAC/s per precision: the fastest kernel of each, from its minimum time.

    Args:
        kernels: :func:`peak_kernels`'s result.
        min_ms: kernel name -> its minimum milliseconds per call.

    Returns:
        ``{"fp32": MAC/s, "int8": MAC/s}``.
    """
    best: dict[str, float] = {}
    for name, (_, macs, precision) in kernels.items():
        best[precision] = max(best.get(precision, 0.0), macs / (min_ms[name] / 1000.0))
    return best
