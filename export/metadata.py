"""Export metadata: one JSON beside every export, and the same JSON inside each .tflite.

Inside a .tflite it is a flatbuffer ``Model.metadata`` entry named ``tfseg_metadata`` whose
buffer holds the UTF-8 JSON (the mechanism the TFLite schema provides for named blobs; the
runtime ignores entries it does not know). Read it back with :func:`read_tflite_metadata`
(or any flatbuffer reader: metadata name -> buffer index -> bytes).

Fields (``FIELDS`` below): what a client needs to run the export without tfseg. Exports made
from a model artifact also carry ``model``: its metadata (tfseg.model.artifact: architecture,
image size, class names, category ids, source and the recipe it was trained with).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema

from tfseg.contracts import (DETECTIONS, END_TO_END_OUTPUTS, LETTERBOX_INFO, LETTERBOX_PAD_VALUE, RAW_OUTPUTS,
                             proto_size)
from tfseg.export import signatures

TFLITE_METADATA_NAME = "tfseg_metadata"
FIELDS = ("format", "model_name", "num_classes", "class_names", "category_ids", "input",
          "thresholds", "box_convention", "signatures", "outputs")

_TFLITE_DETECTION_MEANINGS = {
    "boxes": ("float32", "[1, N, 4]",
              "normalized [ymin, xmin, ymax, xmax] of the letterboxed S x S input; zeros past "
              "num_detections"),
    "scores": ("float32", "[1, N]", "confidence; zeros past num_detections"),
    "classes": ("int32", "[1, N]", "class index into class_names"),
    "masks": ("float32", "[1, N, P, P]",
              "sigmoid mask probabilities on the letterboxed input at 1/4 resolution, zero "
              "outside the box"),
    "num_detections": ("int32", "[1]", "valid rows"),
}


def _contract_outputs(table: dict, names, overrides: dict | None = None) -> dict:
    out = {}
    for name in names:
        spec = table[name]
        out[name] = {"dtype": spec.dtype, "shape": spec.shape, "meaning": spec.meaning}
        if overrides and name in overrides:
            dtype, shape, meaning = overrides[name]
            out[name] = {"dtype": dtype, "shape": shape, "meaning": meaning}
    return out


def build_metadata(model_name: str, num_classes: int, image_size: int, class_names: list[str],
                   category_ids: list[int], score_threshold: float, iou_threshold: float,
                   max_detections: int, agnostic: bool, end_to_end: bool = False) -> dict:
    """The metadata dict of an export (the same for every file of one export).

    Args:
        model_name: e.g. ``yolov8-seg-n``.
        num_classes: C.
        image_size: S.
        class_names: C names, class index order.
        category_ids: C source category ids (class index -> dataset category id).
        score_threshold, iou_threshold, max_detections, agnostic: the PostProcess options.
        end_to_end: the detections are the one-to-one head's top-k (no NMS; the IoU
            threshold and agnostic do not apply), and the raw file has its ``o2o_`` outputs.

    Returns:
        A JSON-serializable dict with the keys of ``FIELDS``.
    """
    raw_contract = {**RAW_OUTPUTS, **(END_TO_END_OUTPUTS if end_to_end else {})}
    sizes = {"S": image_size, "P": proto_size(image_size), "N": max_detections, "C": num_classes}
    serving_default = _contract_outputs(DETECTIONS, signatures.DETECTION_OUTPUTS, {
        "boxes": ("float32", "[B, N, 4]", "xyxy ORIGINAL-image pixels, clipped; zeros past "
                                          "num_detections")})
    serving_default["letterbox"] = {"dtype": "float32", "shape": "[B, 5]",
                                    "meaning": LETTERBOX_INFO["letterbox"].meaning}
    return {
        "format": "tfseg-export/1",
        "model_name": model_name,
        "num_classes": num_classes,
        "class_names": list(class_names),
        "category_ids": [int(c) for c in category_ids],
        "input": {
            "size": image_size, "dtype": "uint8", "layout": "[B, S, S, 3] NHWC, RGB",
            "normalization": "none outside the graph: uint8 0..255, divided by 255 inside",
            "letterbox": ("scale = min(S / h, S / w); resize bilinear (half-pixel centres) to "
                          "round(h * scale) x round(w * scale); pad_top = (S - new_h) // 2, "
                          f"pad_left = (S - new_w) // 2; pad value {LETTERBOX_PAD_VALUE}"),
        },
        "thresholds": {"score": float(score_threshold), "iou": float(iou_threshold),
                       "max_detections": int(max_detections), "agnostic": bool(agnostic)},
        "post_processing": ("top-k of the one-to-one head, no NMS" if end_to_end
                            else "NMS of the one-to-many head"),
        "box_convention": {
            "savedmodel " + signatures.SERVING_BYTES: "xyxy, original-image pixels",
            "savedmodel " + signatures.SERVING_PIXELS: "xyxy, letterboxed input pixels",
            "tflite " + signatures.TFLITE_DETECT: "normalized [ymin, xmin, ymax, xmax] of the "
                                                   "letterboxed input",
            "tflite " + signatures.TFLITE_RAW: "none: DFL logits, decode on the host "
                                                "(tfseg.postprocess.PostProcess)",
        },
        "signatures": {
            "savedmodel": {signatures.SERVING_BYTES: {"inputs": {signatures.INPUT_BYTES:
                                                                 "string [B] encoded image"}},
                           signatures.SERVING_PIXELS: {"inputs": {signatures.INPUT_PIXELS:
                                                                  "uint8 [B, S, S, 3]"}}},
            "tflite": {signatures.TFLITE_DETECT: {"inputs": {signatures.INPUT_PIXELS:
                                                             "uint8 [1, S, S, 3]"}},
                       signatures.TFLITE_RAW: {"inputs": {signatures.INPUT_PIXELS:
                                                          "uint8 [1, S, S, 3]"}}},
        },
        "sizes": sizes,
        "outputs": {
            "savedmodel " + signatures.SERVING_BYTES: serving_default,
            "savedmodel " + signatures.SERVING_PIXELS: _contract_outputs(
                DETECTIONS, signatures.DETECTION_OUTPUTS),
            "tflite " + signatures.TFLITE_DETECT: _contract_outputs(
                DETECTIONS, signatures.DETECTION_OUTPUTS, _TFLITE_DETECTION_MEANINGS),
            "tflite " + signatures.TFLITE_RAW: _contract_outputs(
                raw_contract, tuple(raw_contract)),
        },
    }


def to_json(metadata: dict) -> str:
    return json.dumps(metadata, indent=2, sort_keys=False) + "\n"


def write_json(metadata: dict, path: str | os.PathLike) -> Path:
    """Write the metadata JSON atomically."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(to_json(metadata))
    os.replace(tmp, path)
    return path


def embed_in_tflite(model_bytes: bytes, metadata: dict) -> bytes:
    """The .tflite bytes with the metadata JSON added as a ``tfseg_metadata`` entry.

    An existing ``tfseg_metadata`` entry is replaced. Signatures, ops and weights are
    kept as they are (the flatbuffer object API rewrites the same model).
    """
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(model_bytes), 0))
    buffer = schema.BufferT()
    buffer.data = list(to_json(metadata).encode())
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = TFLITE_METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or [])
                      if m.name not in (TFLITE_METADATA_NAME, TFLITE_METADATA_NAME.encode())]
    model.metadata.append(entry)
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_tflite_metadata(path: str | os.PathLike | bytes) -> dict | None:
    """The ``tfseg_metadata`` JSON of a .tflite file (or bytes); None if it has none."""
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else Path(path).read_bytes()
    model = schema.Model.GetRootAsModel(bytearray(data), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == TFLITE_METADATA_NAME:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
    return None
