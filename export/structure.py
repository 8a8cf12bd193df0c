"""Facts about a .tflite file, read from its flatbuffer (TensorFlow's generated schema).

What it answers: the op list (builtin and custom names, per subgraph), whether any Flex
(TensorFlow select) op or VAR_HANDLE / READ_VARIABLE survived (a sign the weights were not
frozen in, see DESIGN.md), whether any input or output has a dynamic dimension
(shape_signature -1), the signature keys with their input/output names, and the file size
against the bytes of the constant buffers (weights).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

_BUILTIN_NAMES = {value: name for name, value in vars(schema.BuiltinOperator).items()
                  if not name.startswith("_")}
_TYPE_NAMES = {value: name for name, value in vars(schema.TensorType).items()
               if not name.startswith("_")}
VARIABLE_OPS = ("VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE")


def read_model(data: bytes | str | os.PathLike) -> "schema.Model":
    """The flatbuffer Model of a .tflite file (path) or its bytes."""
    if not isinstance(data, (bytes, bytearray)):
        data = Path(data).read_bytes()
    return schema.Model.GetRootAsModel(bytearray(data), 0)


@dataclass
class Operator:
    """One op of a subgraph: its name and its input/output tensor indices."""
    index: int
    name: str
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Tensor:
    """One tensor: name, dtype name (FLOAT32, UINT8, ...), shape and shape_signature."""
    index: int
    name: str
    dtype: str
    shape: list[int]
    shape_signature: list[int]
    is_const: bool = False


@dataclass
class Subgraph:
    name: str
    operators: list[Operator]
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]


@dataclass
class ModelFacts:
    """Everything the structure tests and the GPU checker ask of a .tflite."""
    size_bytes: int
    weight_bytes: int
    subgraphs: list[Subgraph]
    signatures: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    @property
    def op_names(self) -> list[str]:
        """Op names of every subgraph, in order."""
        return [op.name for g in self.subgraphs for op in g.operators]

    @property
    def flex_ops(self) -> list[str]:
        return sorted({n for n in self.op_names if n.startswith("Flex")})

    @property
    def variable_ops(self) -> list[str]:
        return sorted({n for n in self.op_names if n in VARIABLE_OPS})

    def dynamic_tensors(self) -> list[str]:
        """Names of main-graph inputs and outputs with a dynamic (-1) dimension."""
        main = self.subgraphs[0]
        return [main.tensors[i].name for i in main.inputs + main.outputs
                if any(d < 0 for d in main.tensors[i].shape_signature)
                or any(d < 0 for d in main.tensors[i].shape)]


def _op_name(model, op) -> str:
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return code.CustomCode().decode()
    return _BUILTIN_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _options(op) -> dict:
    """The builtin options the GPU rules look at (strided-slice masks, softmax beta)."""
    table = op.BuiltinOptions()
    kind = op.BuiltinOptionsType()
    if table is None:
        return {}
    if kind == schema.BuiltinOptions.StridedSliceOptions:
        opts = schema.StridedSliceOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"ellipsis_mask": opts.EllipsisMask(), "new_axis_mask": opts.NewAxisMask(),
                "shrink_axis_mask": opts.ShrinkAxisMask()}
    if kind == schema.BuiltinOptions.SoftmaxOptions:
        opts = schema.SoftmaxOptions()
        opts.Init(table.Bytes, table.Pos)
        return {"beta": opts.Beta()}
    return {}


def _subgraph(model, graph) -> Subgraph:
    tensors = []
    for i in range(graph.TensorsLength()):
        t = graph.Tensors(i)
        shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
        signature = t.ShapeSignatureAsNumpy().tolist() if t.ShapeSignatureLength() else shape
        buffer = model.Buffers(t.Buffer()) if t.Buffer() else None
        # A constant with no elements (the [0] shape of a RESHAPE to a scalar) has an
        # empty buffer but is a constant all the same.
        is_const = bool(buffer is not None and (buffer.DataLength() or buffer.Size()
                                                or 0 in shape))
        tensors.append(Tensor(i, t.Name().decode(), _TYPE_NAMES.get(t.Type(), str(t.Type())),
                              shape, signature, is_const))
    operators = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        inputs = op.InputsAsNumpy().tolist() if op.InputsLength() else []
        outputs = op.OutputsAsNumpy().tolist() if op.OutputsLength() else []
        operators.append(Operator(i, _op_name(model, op), inputs, outputs, _options(op)))
    name = graph.Name().decode() if graph.Name() else ""
    return Subgraph(name, operators, tensors,
                    graph.InputsAsNumpy().tolist() if graph.InputsLength() else [],
                    graph.OutputsAsNumpy().tolist() if graph.OutputsLength() else [])


def _weight_bytes(model, data: bytes) -> int:
    """Bytes of all constant buffers, inline or stored after the flatbuffer (> 2 GB layout)."""
    total = 0
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        total += buffer.DataLength() or int(buffer.Size())
    return total


def _signatures(model, subgraphs: list[Subgraph]) -> dict[str, dict[str, list[str]]]:
    result = {}
    for i in range(model.SignatureDefsLength()):
        sig = model.SignatureDefs(i)
        result[sig.SignatureKey().decode()] = {
            "inputs": [sig.Inputs(j).Name().decode() for j in range(sig.InputsLength())],
            "outputs": [sig.Outputs(j).Name().decode() for j in range(sig.OutputsLength())],
        }
    return result


def inspect_tflite(path: str | os.PathLike | bytes) -> ModelFacts:
    """Read the facts of a .tflite file (or its bytes).

    Returns:
        ModelFacts: sizes, subgraphs (ops and tensors), signatures.
    """
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else Path(path).read_bytes()
    model = read_model(data)
    subgraphs = [_subgraph(model, model.Subgraphs(i)) for i in range(model.SubgraphsLength())]
    return ModelFacts(size_bytes=len(data), weight_bytes=_weight_bytes(model, data),
                      subgraphs=subgraphs, signatures=_signatures(model, subgraphs))


def op_histogram(facts: ModelFacts) -> dict[str, int]:
    """Op name -> count over all subgraphs, sorted by name."""
    names, counts = np.unique(np.array(facts.op_names or [""], dtype=object), return_counts=True)
    return {str(n): int(c) for n, c in zip(names, counts) if n}
