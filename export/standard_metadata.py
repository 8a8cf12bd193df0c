"""Standard TFLite metadata (the ``TFLITE_METADATA`` entry) and its packed label file.

What the TFLite Task Library, MediaPipe Tasks and Android Studio's model binding read:
a ``ModelMetadata`` flatbuffer (metadata_schema.fbs of tensorflow/tflite-support, file
identifier ``M001``) in a model buffer named by the model's ``TFLITE_METADATA`` metadata
entry, and the associated files (here ``labels.txt``, one class name per line) packed as a
zip archive (stored, not compressed) appended after the flatbuffer (export/tflite_file.py,
which every later rewrite of the file goes through, so the archive stays). The runtime
ignores both. Written here with ``flatbuffers.Builder`` alone, because tflite-support (which
carries the generated schema code and the official writer) has no wheels for Python 3.12.

Only the tables this file writes are built; the slot numbers below are the field order of
each table in metadata_schema.fbs (schema version 1.5.0; a union field takes two slots:
its type, then its value). ``min_parser_version`` is 1.2.0: output_tensor_groups is the
newest field written.
"""

from __future__ import annotations

import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema

from tfseg.errors import ExportError
from tfseg.export import tflite_file

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.2.0"
LABELS_FILE = "labels.txt"
# The names the Task Library's and MediaPipe's object detectors look up outputs by.
STANDARD_NAMES = {"locations": "location", "classes": "category", "scores": "score",
                  "num_detections": "number of detections"}

# enum values (metadata_schema.fbs)
TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS = 2, 3
RGB = 1
BOUNDARIES, RATIO = 1, 0
FEATURE_PROPERTIES, IMAGE_PROPERTIES, BOUNDING_BOX_PROPERTIES = 1, 2, 3  # ContentProperties
NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions


def _strings(builder: flatbuffers.Builder, offsets: list[int]) -> int:
    """A vector of already-built offsets (strings or tables)."""
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector()


def _numbers(builder: flatbuffers.Builder, values, prepend) -> int:
    builder.StartVector(4, len(values), 4)
    for value in reversed(values):
        prepend(value)
    return builder.EndVector()


def _table(builder: flatbuffers.Builder, num_slots: int, offsets: dict, scalars: dict) -> int:
    """A table: ``offsets`` slot -> offset (0 = absent), ``scalars`` slot -> (prepend, value)."""
    builder.StartObject(num_slots)
    for slot, offset in offsets.items():
        if offset:
            builder.PrependUOffsetTRelativeSlot(slot, offset, 0)
    for slot, (prepend, value) in scalars.items():
        prepend(slot, value, 0)
    return builder.EndObject()


def _associated_file(builder, name: str, description: str, file_type: int) -> int:
    name_off, description_off = builder.CreateString(name), builder.CreateString(description)
    return _table(builder, 5, {0: name_off, 1: description_off},
                  {2: (builder.PrependInt8Slot, file_type)})


def _content(builder, kind: int, properties: int, value_dim: int | None = None) -> int:
    """Content: content_properties_type 0, content_properties 1, range 2 (ValueRange)."""
    value_range = 0
    if value_dim is not None:
        value_range = _table(builder, 2, {}, {0: (builder.PrependInt32Slot, value_dim),
                                              1: (builder.PrependInt32Slot, value_dim)})
    return _table(builder, 3, {1: properties, 2: value_range},
                  {0: (builder.PrependUint8Slot, kind)})


def _input_tensor(builder, name: str, description: str, size: int) -> int:
    """The image input: RGB, default size S x S, normalization mean 0 std 1, range 0..255."""
    image_size = _table(builder, 2, {}, {0: (builder.PrependUint32Slot, size),
                                         1: (builder.PrependUint32Slot, size)})
    properties = _table(builder, 2, {1: image_size}, {0: (builder.PrependInt8Slot, RGB)})
    content = _content(builder, IMAGE_PROPERTIES, properties)
    mean = _numbers(builder, [0.0], builder.PrependFloat32)
    std = _numbers(builder, [1.0], builder.PrependFloat32)
    normalization = _table(builder, 2, {0: mean, 1: std}, {})
    unit = _table(builder, 2, {1: normalization},
                  {0: (builder.PrependUint8Slot, NORMALIZATION_OPTIONS)})
    stats = _table(builder, 2, {0: _numbers(builder, [255.0], builder.PrependFloat32),
                                1: _numbers(builder, [0.0], builder.PrependFloat32)}, {})
    return _tensor(builder, name, description, content, [unit], stats, [])


def _tensor(builder, name: str, description: str, content: int, units: list[int], stats: int,
            files: list[int]) -> int:
    """TensorMetadata: name 0, description 1, dimension_names 2, content 3, process_units 4,
    stats 5, associated_files 6."""
    name_off, description_off = builder.CreateString(name), builder.CreateString(description)
    return _table(builder, 7, {0: name_off, 1: description_off, 3: content,
                               4: _strings(builder, units) if units else 0, 5: stats,
                               6: _strings(builder, files) if files else 0}, {})


def _output_tensor(builder, name: str, description: str, role: str) -> int:
    """One output's TensorMetadata; ``role`` says which standard content it carries."""
    content, files = 0, []
    if role == "location":  # [ymin, xmin, ymax, xmax] normalized: index of left, top, right, bottom
        index = _numbers(builder, [1, 0, 3, 2], builder.PrependUint32)
        properties = _table(builder, 3, {0: index}, {1: (builder.PrependInt8Slot, BOUNDARIES),
                                                     2: (builder.PrependInt8Slot, RATIO)})
        content = _content(builder, BOUNDING_BOX_PROPERTIES, properties, value_dim=2)
    elif role in ("category", "score", "logits"):
        content = _content(builder, FEATURE_PROPERTIES, _table(builder, 0, {}, {}), value_dim=2)
    if role == "category":
        files = [_associated_file(builder, LABELS_FILE, "class names, line i = class index i",
                                  TENSOR_VALUE_LABELS)]
    elif role == "logits":
        files = [_associated_file(builder, LABELS_FILE, "class names along the last axis",
                                  TENSOR_AXIS_LABELS)]
    elif role == "masks":  # MediaPipe's ImageSegmenter names its channels from this file
        files = [_associated_file(builder, LABELS_FILE, "channel names along the last axis",
                                  TENSOR_AXIS_LABELS)]
    return _tensor(builder, name, description, content, [], 0, files)


def build_model_metadata(name: str, description: str, version: str, input_tensor: tuple,
                         outputs: list[tuple[str, str, str]]) -> bytes:
    """The ModelMetadata flatbuffer of a one-subgraph model.

    Args:
        name, description, version: the model's.
        input_tensor: (name, description, S) of the image input.
        outputs: (metadata name, description, role) per output in the subgraph's output
            order; role is "location", "category", "score", "logits", "masks" (per-class
            masks, channels last) or "" (plain).

    Returns:
        The flatbuffer bytes (file identifier M001).
    """
    builder = flatbuffers.Builder(1024)
    inputs = _strings(builder, [_input_tensor(builder, *input_tensor)])
    output_offsets = [_output_tensor(builder, *output) for output in outputs]
    output_vector = _strings(builder, output_offsets)
    groups = 0
    standard = [n for n, _, role in outputs if role in ("location", "category", "score")]
    if len(standard) == 3:  # the standard detection result group
        group_names = _strings(builder, [builder.CreateString(n) for n in
                                         ("location", "category", "score")])
        group = _table(builder, 2, {0: builder.CreateString("detection_result"),
                                    1: group_names}, {})
        groups = _strings(builder, [group])
    subgraph = _table(builder, 10, {0: builder.CreateString(name), 2: inputs,
                                    3: output_vector, 8: groups}, {})
    strings = {0: builder.CreateString(name), 1: builder.CreateString(description),
               2: builder.CreateString(version), 4: builder.CreateString("tfseg"),
               7: builder.CreateString(MIN_PARSER_VERSION)}
    root = _table(builder, 8, {**strings, 3: _strings(builder, [subgraph])}, {})
    builder.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(builder.Output())


def _signature_outputs(model: schema.Model) -> tuple[list[str], str]:
    """Output names in the subgraph's output order, and the input's signature name."""
    if not model.SignatureDefsLength():
        raise ExportError("the .tflite has no signature: the standard metadata names its "
                          "inputs and outputs after the signature's")
    signature = model.SignatureDefs(0)
    graph = model.Subgraphs(signature.SubgraphIndex())
    by_tensor = {signature.Outputs(i).TensorIndex(): signature.Outputs(i).Name().decode()
                 for i in range(signature.OutputsLength())}
    names = [by_tensor[graph.Outputs(i)] for i in range(graph.OutputsLength())]
    return names, signature.Inputs(0).Name().decode()


def _roles(names: list[str]) -> list[tuple[str, str]]:
    """(metadata name, role) per output: standard names where the output is a standard one."""
    if set(STANDARD_NAMES) <= set(names):
        return [(STANDARD_NAMES.get(n, n), {"locations": "location", "classes": "category",
                                            "scores": "score"}.get(n, "")) for n in names]
    return [(n, {"classes": "category", "class_logits": "logits",
                 "confidence_masks": "masks"}.get(n, "")) for n in names]


def embed_standard_metadata(model_bytes: bytes, info: dict, descriptions: dict[str, str],
                            labels: list[str] | None = None) -> bytes:
    """The .tflite with a TFLITE_METADATA entry and labels.txt appended as a zip.

    Args:
        model_bytes: the .tflite (its first signature names inputs and outputs); an existing
            TFLITE_METADATA entry is replaced, an appended labels.txt too (other appended
            files are kept).
        info: the tfseg export metadata (export/metadata.py): model_name, class_names,
            input size, format.
        descriptions: output name -> description (what each output holds).
        labels: the lines of labels.txt (default: the class names).

    Returns:
        The new file's bytes.
    """
    model = schema.Model.GetRootAsModel(bytearray(tflite_file.flatbuffer_part(model_bytes)), 0)
    names, input_name = _signature_outputs(model)
    outputs = [(meta, descriptions.get(name, name), role)
               for name, (meta, role) in zip(names, _roles(names))]
    size = int(info["input"]["size"])
    metadata = build_model_metadata(
        info["model_name"], f"{info['model_name']} instance segmentation (tfseg), "
        f"{len(info['class_names'])} classes, input letterboxed {size} x {size}",
        info["format"], (input_name, "RGB uint8 0..255, letterboxed to S x S (pad 114)", size),
        outputs)

    def edit(unpacked: schema.ModelT) -> None:
        buffer = schema.BufferT()
        buffer.data = list(metadata)
        unpacked.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = METADATA_NAME
        entry.buffer = len(unpacked.buffers) - 1
        unpacked.metadata = [m for m in (unpacked.metadata or [])
                             if m.name not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    return tflite_file.rewrite(model_bytes, edit,
                               {LABELS_FILE: "\n".join(labels or info["class_names"]) + "\n"})
