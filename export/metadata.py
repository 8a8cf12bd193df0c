"""Export metadata: one JSON beside every export, and the same JSON inside each .tflite.

Inside a .tflite it is a flatbuffer ``Model.metadata`` entry named ``tfseg_metadata`` whose
buffer holds the UTF-8 JSON (the mechanism the TFLite schema provides for named blobs; the
runtime ignores entries it does not know). Read it back with :func:`read_tflite_metadata`
(or any flatbuffer reader: metadata name -> buffer index -> bytes). The standard TFLite
metadata (``TFLITE_METADATA`` and the appended labels zip) sits beside it
(export/standard_metadata.py); rewriting this entry keeps the appended files.

Fields (``FIELDS`` below): what a client needs to run the export without tfseg. Exports made
from a model artifact also carry ``model``: its metadata (tfseg.model.artifact: architecture,
image size, class names, category ids, source and the recipe it was trained with).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tensorflow.lite.python import schema_py_generated as schema

from tfseg.contracts import (DETECTIONS, END_TO_END_OUTPUTS, LETTERBOX_INFO, LETTERBOX_PAD_VALUE, RAW_OUTPUTS,
                             proto_size)
from tfseg.errors import ExportError
from tfseg.export import signatures, tflite_file

TFLITE_METADATA_NAME = "tfseg_metadata"
_ENTRY_NAMES = (TFLITE_METADATA_NAME, TFLITE_METADATA_NAME.encode())
FIELDS = ("format", "model_name", "num_classes", "class_names", "category_ids", "input",
          "thresholds", "box_convention", "signatures", "outputs", "masks")

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


_SERVING_MASKS_PNG = {
    "dtype": "string", "shape": "[B, N]",
    "meaning": "one grey PNG (P x P uint8, mask probability x 255) per row, on the "
               "letterboxed prototype grid, zero outside the box; empty past num_detections "
               "(TF Serving REST writes it as {\"b64\": ...})"}
_RUNTIME_THRESHOLDS = (
    "signatures with inputs score_threshold, iou_threshold (float32) and max_detections "
    "(int32), one value per image, override these per request; -1 keeps the value here. "
    "max_detections fills at most that many of the N rows (num_detections = min(found, "
    "max_detections)); output shapes stay N. A TFLite signature has no optional inputs: "
    "feed all three, -1 for the export's values")


def _threshold_inputs(batch: str) -> dict:
    return {signatures.INPUT_SCORE: f"float32 [{batch}], -1 = thresholds.score",
            signatures.INPUT_IOU: f"float32 [{batch}] in [0, 1], -1 = thresholds.iou",
            signatures.INPUT_MAX_DETECTIONS: f"int32 [{batch}] <= N, -1 = N"}


def _mask_options(outputs: dict, tflite: bool, mask_size: int, mask_dtype: str) -> dict:
    """The outputs of a detection signature with the export's mask options applied."""
    mask_dtype = str(mask_dtype)
    outputs = dict(outputs)
    masks = outputs.pop("masks")
    if not mask_size:
        outputs["masks"] = {**masks, "dtype": mask_dtype} if mask_dtype != "float32" else masks
        return outputs
    batch = "1" if tflite else "B"
    outputs["box_masks"] = {
        "dtype": mask_dtype, "shape": f"[{batch}, N, {mask_size}, {mask_size}]",
        "meaning": (f"each detection's mask on a {mask_size} x {mask_size} grid spanning its "
                    "box (the boxes output): cell (i, j) centred at (x1 + (j + 0.5) w / m, "
                    "y1 + (i + 0.5) h / m); "
                    + ("round(255 p), 128 and above is inside"
                       if mask_dtype == "uint8" else "probabilities, above 0.5 is inside")
                    + "; zeros past num_detections")}
    return outputs


def _standard_outputs() -> dict:
    return {
        "locations": {"dtype": "float32", "shape": "[1, N, 4]",
                      "meaning": "normalized [ymin, xmin, ymax, xmax] of the letterboxed input"},
        "classes": {"dtype": "float32", "shape": "[1, N]", "meaning": "class index (labels.txt)"},
        "scores": {"dtype": "float32", "shape": "[1, N]", "meaning": "confidence"},
        "num_detections": {"dtype": "float32", "shape": "[1]", "meaning": "valid rows"}}


def _serving_masks_png(mask_size: int) -> dict:
    """serving_default's masks_png_bytes, for the export's mask_size."""
    if not mask_size:
        return _SERVING_MASKS_PNG
    return {**_SERVING_MASKS_PNG,
            "meaning": (f"one grey PNG ({mask_size} x {mask_size} uint8, mask probability x "
                        "255) per row, spanning the row's (clipped) box; empty past "
                        "num_detections (TF Serving REST writes it as {\"b64\": ...})")}


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
                   max_detections: int, agnostic: bool, mask_size: int = 0,
                   mask_dtype: str = "float32", standard_outputs: bool = False,
                   end_to_end: bool = False) -> dict:
    """The metadata dict of an export (the same for every file of one export).

    Args:
        model_name: e.g. ``yolov8-seg-n``.
        num_classes: C.
        image_size: S.
        class_names: C names, class index order.
        category_ids: C source category ids (class index -> dataset category id).
        score_threshold, iou_threshold, max_detections, agnostic: the PostProcess options.
        mask_size, mask_dtype: the PostProcess mask options (box-aligned m x m masks when
            mask_size > 0; float32 or uint8).
        standard_outputs: the end-to-end .tflite has the four object-detector outputs.
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
    serving_default = {name: serving_default[name] if name in serving_default else
                       _serving_masks_png(mask_size) for name in signatures.SERVING_OUTPUTS}
    serving_pixels = _contract_outputs(DETECTIONS, signatures.DETECTION_OUTPUTS)
    info = {
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
                       "max_detections": int(max_detections), "agnostic": bool(agnostic),
                       "runtime": _RUNTIME_THRESHOLDS},
        "post_processing": ("top-k of the one-to-one head, no NMS" if end_to_end
                            else "NMS of the one-to-many head"),
        "box_convention": {
            "savedmodel " + signatures.SERVING_BYTES: "xyxy, original-image pixels",
            "savedmodel " + signatures.SERVING_PIXELS: "xyxy, letterboxed input pixels",
            "savedmodel " + signatures.SERVING_BYTES_THRESHOLDS: "xyxy, original-image pixels",
            "savedmodel " + signatures.SERVING_PIXELS_THRESHOLDS: "xyxy, letterboxed input pixels",
            "tflite " + signatures.TFLITE_DETECT: "normalized [ymin, xmin, ymax, xmax] of the "
                                                   "letterboxed input",
            "tflite " + signatures.TFLITE_RAW: "none: DFL logits, decode on the host "
                                                "(tfseg.postprocess.PostProcess)",
        },
        "signatures": {
            "savedmodel": {
                signatures.SERVING_BYTES: {"inputs": {signatures.INPUT_BYTES:
                                                      "string [B] encoded image"}},
                signatures.SERVING_PIXELS: {"inputs": {signatures.INPUT_PIXELS:
                                                       "uint8 [B, S, S, 3]"}},
                signatures.SERVING_BYTES_THRESHOLDS: {"inputs": {
                    signatures.INPUT_BYTES: "string [B] encoded image", **_threshold_inputs("B")}},
                signatures.SERVING_PIXELS_THRESHOLDS: {"inputs": {
                    signatures.INPUT_PIXELS: "uint8 [B, S, S, 3]", **_threshold_inputs("B")}}},
            "tflite": {signatures.TFLITE_DETECT: {"inputs": {signatures.INPUT_PIXELS:
                                                             "uint8 [1, S, S, 3]",
                                                             **_threshold_inputs("1")}},
                       signatures.TFLITE_RAW: {"inputs": {signatures.INPUT_PIXELS:
                                                          "uint8 [1, S, S, 3]"}}},
        },
        "sizes": sizes,
        "outputs": {
            "savedmodel " + signatures.SERVING_BYTES: serving_default,
            "savedmodel " + signatures.SERVING_PIXELS: serving_pixels,
            "savedmodel " + signatures.SERVING_BYTES_THRESHOLDS: serving_default,
            "savedmodel " + signatures.SERVING_PIXELS_THRESHOLDS: serving_pixels,
            "tflite " + signatures.TFLITE_DETECT: _contract_outputs(
                DETECTIONS, signatures.DETECTION_OUTPUTS, _TFLITE_DETECTION_MEANINGS),
            "tflite " + signatures.TFLITE_RAW: _contract_outputs(
                raw_contract, tuple(raw_contract)),
        },
    }
    outputs = info["outputs"]
    for key in list(outputs):
        if "masks" in outputs[key]:  # not the raw file, nor serving_default's PNG masks
            outputs[key] = _mask_options(outputs[key], key.startswith("tflite"), mask_size,
                                         mask_dtype)
    if standard_outputs:  # the object detectors feed the image alone
        outputs["tflite " + signatures.TFLITE_DETECT] = _standard_outputs()
        info["signatures"]["tflite"][signatures.TFLITE_DETECT] = {
            "inputs": {signatures.INPUT_PIXELS: "uint8 [1, S, S, 3]"}}
    info["masks"] = {"mask_size": int(mask_size), "mask_dtype": str(mask_dtype),
                     "standard_outputs": bool(standard_outputs)}
    return info


def describe_segmenter(info: dict) -> None:
    """Add the MediaPipe segmenter file's signature and output (export/segmenter.py) to
    the metadata of an export that writes one."""
    from tfseg.export.segmenter import SEGMENT, segmenter_outputs

    info["signatures"]["tflite"][SEGMENT] = {
        "inputs": {signatures.INPUT_PIXELS: "uint8 [1, S, S, 3]"}}
    info["outputs"]["tflite " + SEGMENT] = segmenter_outputs(info["num_classes"])
    info["box_convention"]["tflite " + SEGMENT] = "none: per-class masks on the letterboxed input"


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

    An existing ``tfseg_metadata`` entry is replaced. Signatures, ops, weights, the
    standard TFLITE_METADATA entry and the appended associated files are kept as they are
    (export/tflite_file.py rewrites the model and appends the files again).
    """
    def edit(model: schema.ModelT) -> None:
        buffer = schema.BufferT()
        buffer.data = list(to_json(metadata).encode())
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = TFLITE_METADATA_NAME
        entry.buffer = len(model.buffers) - 1
        model.metadata = [m for m in (model.metadata or []) if m.name not in _ENTRY_NAMES]
        model.metadata.append(entry)
    return tflite_file.rewrite(model_bytes, edit)


def read_tflite_metadata(path: str | os.PathLike | bytes) -> dict | None:
    """The ``tfseg_metadata`` JSON of a .tflite file (or bytes); None if it has none."""
    data = bytes(path) if isinstance(path, (bytes, bytearray)) else Path(path).read_bytes()
    model = schema.Model.GetRootAsModel(bytearray(data), 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == TFLITE_METADATA_NAME:
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes().decode())
    return None


def update_tflite_metadata(path: str | os.PathLike, fields: dict) -> None:
    """Add or replace top-level fields of a .tflite's ``tfseg_metadata``, in place.

    The entry's buffer is rewritten (no second copy of the JSON is left in the file); the
    standard metadata and the appended associated files (labels.txt) are kept; the file is
    replaced atomically. Used to add the parity certificate after the file is made.

    Args:
        path: a .tflite written by tfseg (it has a ``tfseg_metadata`` entry).
        fields: top-level keys to set, e.g. ``{"parity": {...}}``.

    Raises:
        ExportError: the file has no ``tfseg_metadata`` entry.
    """
    path = Path(path)

    def edit(model: schema.ModelT) -> None:
        entry = next((m for m in (model.metadata or []) if m.name in _ENTRY_NAMES), None)
        if entry is None:
            raise ExportError(f"{path} has no {TFLITE_METADATA_NAME} entry: not a tfseg export")
        buffer = model.buffers[entry.buffer]
        current = json.loads(bytes(bytearray(buffer.data)).decode())
        buffer.data = list(to_json({**current, **fields}).encode())
    tflite_file.rewrite_file(path, edit)
