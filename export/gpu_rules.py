"""Our own TFLite GPU-delegate compatibility report (``tfseg export --check-gpu file.tflite``).

``tf.lite.experimental.Analyzer(gpu_compatibility=True)`` calls every model here compatible,
NMS and Flex included, so it proves nothing (DESIGN.md). This module applies the delegate's
published per-op rules (tensorflow/lite/tools/versioning/gpu_compatibility.cc and the rank
limit of the delegate's model builder, restated here in our own words) to the ops of the main
subgraph, then splits it into GPU and CPU node subsets following the data dependencies, as
TFLite's partitioner does.

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

The delegate's default ``max_delegated_partitions`` is 1: only the largest GPU subset is
delegated and everything else runs on the CPU, which ``effective_partitions`` reports.
The report is a static reading of published rules, not a run on a device: a driver may still
refuse an op the rules allow.
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
# The first op of the end-to-end graph's CPU tail: NMS, or a loop that holds it, or the
# top-k of a one-to-one head (YOLO26: no NMS; the delegate runs no TOPK_V2 either).
_TAIL_STARTS = {"NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "WHILE", "TOPK_V2"}


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
    """Ops that run together on one device (a node subset, as the delegate forms them)."""
    device: str  # "GPU" or "CPU"
    indices: list[int]
    ops: list[str]
    reasons: list[str]

    @property
    def first(self) -> int:
        return min(self.indices)

    @property
    def last(self) -> int:
        return max(self.indices)

    def __str__(self) -> str:
        names = sorted(set(self.ops))
        text = (f"{self.device} {len(self.ops)} ops (indices {self.first}-{self.last}): "
                f"{', '.join(names)}")
        if self.reasons:
            text += "\n    not on GPU: " + "; ".join(self.reasons)
        return text


def partitions(facts: ModelFacts) -> list[Partition]:
    """Split the main subgraph into GPU / CPU node subsets, dependencies first.

    As TFLite's partitioner does: starting from the graph inputs and constants, take every
    ready op of the current kind (repeatedly, as their outputs make more ops ready), close
    the subset, switch kind. An op independent of a CPU op (e.g. the prototype convolutions
    beside NMS) therefore joins the GPU subset even if it comes later in the file's order.
    """
    graph = facts.subgraphs[0]
    verdicts = {op.index: op_verdict(op, graph) for op in graph.operators}
    ready = set(graph.inputs) | {t.index for t in graph.tensors if t.is_const} | {-1}
    remaining = [op for op in graph.operators]
    result: list[Partition] = []
    device = "GPU"
    while remaining:
        taken = _take_ready(remaining, ready, verdicts, device)
        if taken:
            result.append(Partition(device, [op.index for op in taken], [op.name for op in taken],
                                    [f"op {op.index} {verdicts[op.index]}" for op in taken
                                     if verdicts[op.index]]))
        elif not any(set(op.inputs) <= ready for op in remaining):
            raise ValueError("graph has ops whose inputs are never produced")
        device = "CPU" if device == "GPU" else "GPU"
    return result


def _take_ready(remaining: list[Operator], ready: set[int], verdicts: dict, device: str
                ) -> list[Operator]:
    """Remove and return, in file order, every op of ``device`` that becomes ready."""
    taken, progress = [], True
    while progress:
        progress = False
        for op in list(remaining):
            on_gpu = verdicts[op.index] is None
            if (on_gpu == (device == "GPU")) and set(op.inputs) <= ready:
                remaining.remove(op)
                ready.update(op.outputs)
                taken.append(op)
                progress = True
    return sorted(taken, key=lambda op: op.index)


def effective_partitions(parts: list[Partition]) -> list[Partition]:
    """Partitions as the delegate runs them by default: the largest GPU subset, the rest CPU."""
    gpu = [p for p in parts if p.device == "GPU"]
    largest = max(gpu, key=lambda p: len(p.ops)) if gpu else None
    merged: list[Partition] = []
    for part in parts:
        device = "GPU" if part is largest else "CPU"
        if merged and merged[-1].device == device == "CPU":
            merged[-1].indices += part.indices
            merged[-1].ops += part.ops
            merged[-1].reasons += part.reasons
        else:
            merged.append(Partition(device, list(part.indices), list(part.ops),
                                    list(part.reasons)))
    return merged


def _downstream(graph: Subgraph, starts: list[int]) -> set[int]:
    """Indices of ``starts`` and every op that consumes, transitively, their outputs."""
    produced, found = set(), set(starts)
    for index in starts:
        produced.update(graph.operators[index].outputs)
    for op in graph.operators:  # the file order is a topological order
        if op.index not in found and produced & set(op.inputs):
            found.add(op.index)
            produced.update(op.outputs)
    return found


@dataclass
class GpuReport:
    path: str
    graph: Subgraph
    parts: list[Partition]
    effective: list[Partition]

    @property
    def op_names(self) -> list[str]:
        return [op.name for op in self.graph.operators]

    def problems(self, end_to_end: bool) -> list[str]:
        """What breaks our layout rule, op by op (empty if it holds).

        raw: every op but the uint8 -> float input CAST runs on the GPU.
        end-to-end: the same for every op outside the NMS tail (the CPU subset holding
        NMS, or the WHILE loop around it, and everything downstream of it).
        """
        tail: set[int] = set()
        if end_to_end:
            # The tail: the CPU subset holding NMS (ops that only feed NMS run with it)
            # and everything downstream of it.
            starts = {op.index for op in self.graph.operators if op.name in _TAIL_STARTS}
            for part in self.parts:
                if part.device == "CPU" and starts & set(part.indices):
                    starts |= set(part.indices)
            tail = _downstream(self.graph, sorted(starts))
        input_casts = {op.index for op in self.graph.operators
                       if op.name == "CAST" and set(op.inputs) <= set(self.graph.inputs)}
        return [reason for part in self.parts if part.device == "CPU"
                for index, reason in zip(_cpu_indices(part), part.reasons)
                if index not in tail and index not in input_casts]

    def __str__(self) -> str:
        lines = [f"GPU delegate report for {self.path}", "partitions (dependency order):"]
        lines += [f"  {p}" for p in self.parts]
        lines.append("as delegated by default (max_delegated_partitions=1):")
        lines += [f"  {p.device} {len(p.ops)} ops" for p in self.effective]
        return "\n".join(lines)


def _cpu_indices(part: Partition) -> list[int]:
    """Op indices of a CPU partition's reasons (each reason starts with "op <index> ")."""
    return [int(reason.split()[1]) for reason in part.reasons]


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
    return GpuReport(name, facts.subgraphs[0], parts, effective_partitions(parts))
