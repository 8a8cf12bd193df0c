"""Parameter counts and GFLOPs of a model, as a short table (``tfseg info``).

Parameters are counted the way the reference reports them: every trainable weight plus
the fixed DFL projection (reg_max values the reference keeps as a non-trainable
parameter; our decoding applies it outside the model). BN moving statistics are not
parameters there either; they are listed on their own line.

GFLOPs are 2 x multiply-accumulates of every convolution, depthwise and transposed
convolution and matrix product in the traced inference graph at the given input size.
Element-wise work (BN, SiLU, adds, pooling) is not counted, so the figure sits a little
below the reference's thop count, which adds BN and activations.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfseg.model.yolo_seg import YoloSeg, build_model

_CONV_OPS = ("Conv2D", "DepthwiseConv2dNative", "Conv2DBackpropInput")
_MATMUL_OPS = ("MatMul", "BatchMatMulV2", "BatchMatMulV3")


def count_parameters(model: YoloSeg) -> dict:
    """Parameter counts of a built model.

    Returns:
        ``{"parameters": reference-convention count, "trainable": trainable weights,
        "bn_statistics": BN moving means and variances}``.
    """
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    statistics = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    dfl = model.spec.reg_max if model.spec.reg_max > 1 else 0  # reg_max 1: no DFL layer
    return {"parameters": trainable + dfl, "trainable": trainable,
            "bn_statistics": statistics}


def _op_macs(op: tf.Operation) -> int:
    """Multiply-accumulates of one graph op (0 for ops not counted)."""
    if op.type in _CONV_OPS:
        out = op.outputs[0].shape.as_list()  # [B, H, W, Cout]
        kernel = op.inputs[1].shape.as_list()  # [kh, kw, Cin, Cout or multiplier]
        if op.type == "Conv2DBackpropInput":  # transposed conv: each input cell x kernel
            source = op.inputs[2].shape.as_list()  # [B, h, w, Cin]
            return int(np.prod(source) * kernel[0] * kernel[1] * kernel[2])
        per_output = kernel[0] * kernel[1] * (1 if op.type.startswith("Depthwise") else kernel[2])
        return int(np.prod(out) * per_output)
    if op.type in _MATMUL_OPS:
        a = op.inputs[0].shape.as_list()
        out = op.outputs[0].shape.as_list()
        inner = a[-2] if op.get_attr("adj_x" if "Batch" in op.type else "transpose_a") else a[-1]
        return int(np.prod(out) * inner)
    return 0


def count_gflops(model: YoloSeg) -> float:
    """GFLOPs (2 x MACs) of one forward pass of a batch of 1 at the model's input size."""
    size = model.image_size
    forward = tf.function(lambda images: model(images, training=False))
    graph = forward.get_concrete_function(
        tf.TensorSpec([1, size, size, 3], tf.float32)).graph
    macs = sum(_op_macs(op) for op in graph.get_operations())
    return 2.0 * macs / 1e9


def model_summary(name: str, num_classes: int = 80, image_size: int = 640) -> dict:
    """Counts of one named model.

    Args:
        name: e.g. ``yolo11-seg-s``.
        num_classes: C (the reference tables use 80).
        image_size: S of the GFLOPs figure.

    Returns:
        ``{"model", "num_classes", "image_size", "parameters", "trainable", "bn_statistics",
        "gflops", "layers"}``.
    """
    model = build_model(name, num_classes, image_size)
    counts = count_parameters(model)
    return {"model": name, "num_classes": num_classes, "image_size": image_size, **counts,
            "gflops": round(count_gflops(model), 2), "layers": len(model.layers)}


def format_summary(summary: dict) -> str:
    """A short table of :func:`model_summary`'s result."""
    rows = [
        ("model", summary["model"]),
        ("classes", f"{summary['num_classes']}"),
        ("parameters", f"{summary['parameters']:,} (reference convention)"),
        ("  trainable", f"{summary['trainable']:,}"),
        ("  BN statistics", f"{summary['bn_statistics']:,} (not counted above)"),
        (f"GFLOPs @ {summary['image_size']}", f"{summary['gflops']:.2f} (2 x conv/matmul MACs)"),
        ("top-level layers", f"{summary['layers']}"),
    ]
    width = max(len(key) for key, _ in rows)
    return "\n".join(f"{key:<{width}}  {value}" for key, value in rows)


def info(model_name: str, num_classes: int = 80, image_size: int = 640) -> str:
    """Entry of ``tfseg info model=<name>``: the summary table as text."""
    return format_summary(model_summary(model_name, num_classes, image_size))
