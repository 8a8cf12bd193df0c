"""Our own TFLite GPU-delegate compatibility report (``tfseg export --check-gpu file.tflite``).

``tf.lite.experimental.Analyzer(gpu_compatibility=True)`` calls every model here compatible,
NMS and Flex included, so it proves nothing (DESIGN.md). This module applies the delegate's
published per-op rules (tensorflow/lite/tools/versioning/gpu_compatibility.cc and the rank
limit of the delegate's model builder, restated here in our own words) to the ops of the main
subgraph, then groups consecutive ops into GPU and CPU partitions in execution order.

Rules applied (an op the table does not list is not run by the delegate, e.g.
NON_MAX_SUPPRESSION_V4/V5, TOPK_V2, ARG_MAX, ARG_MIN, WHILE, UNPACK, GATHER_ND):
  - any input or output of rank > 4;
  - CAST other than bool<->float and float/int32<->float/int32 (so uint8 casts stay on CPU);
  - GATHER of int32 data, or with indices that are not 1-D int32;
  - STRIDED_SLICE with an ellipsis, new-axis or shrink-axis mask, or input rank not 3/4;
  - SLICE of an input whose rank is not 3 or 4;
  - SUM / MEAN / REDUCE_MAX / REDUCE_MIN / REDUCE_PROD with non-constant axes;
  - PAD / PADV2 / MIRROR_PAD with paddings not 3x2 or 4x2;
  - SOFTMAX with beta != 1;
  - MUL of two equal-rank tensors each smaller than the other in some dimension (an outer
    product, which the delegate does not broadcast).

The delegate's default ``max_delegated_partitions`` is 1: only the largest GPU partition is
delegated and everything else runs on the CPU, which ``effective_partitions`` reports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from tfseg.export.structure import ModelFacts, Operator, Subgraph, inspect_tflite

_ELEMENTWISE = {
    "ABS", "CEIL", "COS", "ELU", "EXP", "FLOOR", "GELU", "LOG", "LOGISTIC", "NEG", "RSQRT",
    "SIGN", "SIN", "SQRT", "SQUARE", "TANH", "ATAN2", "DIV", "EQUAL", "FLOOR_DIV", "FLOOR_MOD",
    "GREATER", "GREATER_EQUAL", "LOGICAL_AND", "LESS", "LESS_EQUAL", "MAXIMUM", "MINIMUM",
    "NOT_EQUAL", "POW", "SQUARED_DIFFERENCE", "SUB", "RELU", "RELU6", "RELU_N1_TO_1",
    "LEAKY_RELU", "PRELU", "HARD_SWISH",
}
_UNCONDITIONAL = {
    "ADD", "ADD_N", "AVERAGE_POOL_2D", "MAX_POOL_2D", "BATCH_MATMUL", "CONCATENATION",
    "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH",
    "DEQUANTIZE", "QUANTIZE", "FULLY_CONNECTED", "PACK", "RESHAPE", "SELECT", "SELECT_V2",
    "SPLIT", "SPLIT_V", "TILE", "TRANSPOSE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
    "CUMSUM", "ONE_HOT", "DENSIFY", "EMBEDDING_LOOKUP", "DYNAMIC_UPDATE_SLICE",
} | _ELEMENTWISE
_REDUCTIONS = {"SUM", "MEAN", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"}
_PADS = {"PAD", "PADV2", "MIRROR_PAD"}
# The first op of the end-to-end graph's CPU tail: NMS, or a loop that holds it.
_TAIL_STARTS = {"NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "WHILE"}


def _check_cast(op: Operator, graph: Subgraph) -> str | None:
    source, target = graph.tensors[op.inputs[0]].dtype, graph.tensors[op.outputs[0]].dtype
    floats = {"FLOAT32", "FLOAT16"}
    if (source == "BOOL" and target in floats) or (source in floats and target == "BOOL"):
        return None
    if source in {"FLOAT32", "INT32"} and target in {"FLOAT32", "INT32"}:
        return None
    return f"CAST {source} -> {target}"


def _check_gather(op: Operator, graph: Subgraph) -> str | None:
    data, indices = graph.tensors[op.inputs[0]], graph.tensors[op.inputs[1]]
    if data.dtype == "INT32":
        return "GATHER of int32 data"
    if len(indices.shape) != 1 or indices.dtype != "INT32":
        return f"GATHER with {indices.dtype} indices of rank {len(indices.shape)} (needs 1-D int32)"
    return None


def _check_strided_slice(op: Operator, graph: Subgraph) -> str | None:
    for mask in ("ellipsis_mask", "new_axis_mask", "shrink_axis_mask"):
        if op.options.get(mask):
            return f"STRIDED_SLICE with {mask}={op.options[mask]}"
    rank = len(graph.tensors[op.inputs[0]].shape)
    return None if rank in (3, 4) else f"STRIDED_SLICE of a rank-{rank} tensor (needs 3 or 4)"


def _check_slice(op: Operator, graph: Subgraph) -> str | None:
    rank = len(graph.tensors[op.inputs[0]].shape)
    return None if rank in (3, 4) else f"SLICE of a rank-{rank} tensor (needs 3 or 4)"


def _check_reduction(op: Operator, graph: Subgraph) -> str | None:
    axes = graph.tensors[op.inputs[1]]
    return None if axes.is_const and axes.dtype == "INT32" else f"{op.name} with non-constant axes"


def _check_pad(op: Operator, graph: Subgraph) -> str | None:
    paddings = graph.tensors[op.inputs[1]].shape
    return None if paddings in ([3, 2], [4, 2]) else f"{op.name} with paddings {paddings}"


def _check_softmax(op: Operator, graph: Subgraph) -> str | None:
    beta = op.options.get("beta", 1.0)
    return None if beta == 1.0 else f"SOFTMAX with beta {beta}"


def _check_mul(op: Operator, graph: Subgraph) -> str | None:
    a, b = (graph.tensors[i].shape for i in op.inputs[:2])
    if len(a) == len(b) and any(x < y for x, y in zip(a, b)) and any(y < x for x, y in zip(a, b)):
        return f"MUL outer product {a} x {b}"
    return None


_CHECKS: dict[str, Callable[[Operator, Subgraph], str | None]] = {
    "CAST": _check_cast, "GATHER": _check_gather, "STRIDED_SLICE": _check_strided_slice,
    "SLICE": _check_slice, "SOFTMAX": _check_softmax, "MUL": _check_mul,
    **{name: _check_reduction for name in _REDUCTIONS}, **{name: _check_pad for name in _PADS},
}


def op_verdict(op: Operator, graph: Subgraph) -> str | None:
    """None if the GPU delegate runs ``op``, else the reason it does not."""
    for i in op.inputs + op.outputs:
        if i >= 0 and len(graph.tensors[i].shape) > 4:
            return f"{op.name} on a rank-{len(graph.tensors[i].shape)} tensor (max 4)"
    if op.name in _CHECKS:
        return _CHECKS[op.name](op, graph)
    if op.name in _UNCONDITIONAL:
        return None
    return f"{op.name} is not a GPU-delegate op"


@dataclass
class Partition:
    """A run of consecutive ops (execution order) on one device."""
    device: str  # "GPU" or "CPU"
    first: int
    last: int
    ops: list[str]
    reasons: list[str]

    def __str__(self) -> str:
        names = sorted(set(self.ops))
        text = f"{self.device} ops {self.first}-{self.last} ({len(self.ops)}): {', '.join(names)}"
        if self.reasons:
            text += "\n    not on GPU: " + "; ".join(sorted(set(self.reasons)))
        return text


def partitions(facts: ModelFacts) -> list[Partition]:
    """Consecutive GPU / CPU runs over the main subgraph's ops, with the CPU reasons."""
    graph = facts.subgraphs[0]
    result: list[Partition] = []
    for op in graph.operators:
        reason = op_verdict(op, graph)
        device = "CPU" if reason else "GPU"
        if not result or result[-1].device != device:
            result.append(Partition(device, op.index, op.index, [], []))
        part = result[-1]
        part.last = op.index
        part.ops.append(op.name)
        if reason:
            part.reasons.append(f"op {op.index} {reason}")
    return result


def effective_partitions(parts: list[Partition]) -> list[Partition]:
    """Partitions as the delegate runs them by default: the largest GPU run, the rest CPU."""
    gpu = [p for p in parts if p.device == "GPU"]
    if not gpu:
        return [Partition("CPU", parts[0].first, parts[-1].last,
                          [o for p in parts for o in p.ops], [])] if parts else []
    largest = max(gpu, key=lambda p: len(p.ops))
    merged: list[Partition] = []
    for part in parts:
        device = "GPU" if part is largest else "CPU"
        if merged and merged[-1].device == device == "CPU":
            merged[-1].last = part.last
            merged[-1].ops += part.ops
            merged[-1].reasons += part.reasons
        else:
            merged.append(Partition(device, part.first, part.last, list(part.ops),
                                    list(part.reasons)))
    return merged


def _reasons_by_index(part: Partition) -> list[tuple[int, str]]:
    """(op index, reason) of a partition's CPU ops; reasons start with "op <index> "."""
    return [(int(r.split()[1]), r) for r in part.reasons]


@dataclass
class GpuReport:
    path: str
    parts: list[Partition]
    effective: list[Partition]

    @property
    def cpu_partitions(self) -> list[Partition]:
        return [p for p in self.parts if p.device == "CPU"]

    def problems(self, end_to_end: bool) -> list[str]:
        """What breaks our layout rule, op by op (empty if it holds).

        raw: every op but the single uint8 -> float input CAST runs on the GPU.
        end-to-end: the same for every op before the NMS tail, which starts at the first
        NON_MAX_SUPPRESSION op (or the WHILE loop that holds it): one CPU partition after
        the network, whatever runs after NMS.
        """
        ops = [o for p in self.parts for o in range(p.first, p.last + 1)]
        verdicts = {i: r for p in self.parts for i, r in _reasons_by_index(p)}
        tail = len(ops)
        if end_to_end:
            tail = next((i for i in ops if self.op_names[i] in _TAIL_STARTS), len(ops))
        return [verdicts[i] for i in ops[:tail]
                if verdicts.get(i) and not (i == 0 and self.op_names[i] == "CAST")]

    @property
    def op_names(self) -> list[str]:
        return [o for p in self.parts for o in p.ops]

    def __str__(self) -> str:
        lines = [f"GPU delegate report for {self.path}", "partitions (execution order):"]
        lines += [f"  {p}" for p in self.parts]
        lines.append("as delegated by default (max_delegated_partitions=1):")
        lines += [f"  {p.device} ops {p.first}-{p.last} ({len(p.ops)} ops)" for p in self.effective]
        return "\n".join(lines)


def check_gpu(path: str | os.PathLike | bytes) -> GpuReport:
    """The GPU-delegate report of a .tflite file (the ``--check-gpu`` entry).

    Args:
        path: a .tflite file or its bytes.

    Returns:
        GpuReport: partitions with reasons; ``str(report)`` is the printable report.
    """
    facts = inspect_tflite(path)
    parts = partitions(facts)
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else os.fspath(path)
    return GpuReport(name, parts, effective_partitions(parts))
