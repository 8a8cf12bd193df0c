"""TFLite exports: SavedModel (savedmodel.write_archive) -> ``TFLiteConverter.from_saved_model``.

Files (``<stem>`` = ``<model name>_<S>``):
    <stem>_<mode>.tflite       end-to-end: uint8 [1, S, S, 3] + run-time thresholds (score,
                               IoU, max_detections; [1] each, -1 = the export's) -> detections
                               (signature "detect")
    <stem>_raw_<mode>.tflite   the network alone: uint8 [1, S, S, 3] -> raw outputs ("raw")

Modes:
    float32        no quantization.
    float16        weights stored as float16 (dequantized at load; the GPU delegate runs fp16).
    dynamic_int8   weights int8, activations float (dynamic-range quantization).
    int8           network weights AND activations int8 (calibrated on representative
                   images), post-processing float: calibrate the whole graph, then quantize
                   with every op of the post-processing (and of the signature after it)
                   denylisted and stripped of its calibration statistics, so decode, NMS
                   and masks stay float32 and boxes are never rounded to 8 bits. Input
                   uint8 and outputs float. Needs a graph without a WHILE loop (TF 2.21's
                   calibrator crashes on one): tfseg.postprocess.nms unrolls the batch.
                   tests/export/test_tflite.py checks that nothing after NMS is quantized.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from tfseg.contracts import O2O_PREFIX
from tfseg.errors import ExportError
from tfseg.export import signatures, tflite_file
from tfseg.export.metadata import embed_in_tflite
from tfseg.export.savedmodel import write_archive
from tfseg.export.standard_metadata import embed_standard_metadata
from tfseg.predict.backends import without_custom_gradient_warnings

MODES = ("float32", "float16", "dynamic_int8", "int8")
# Name scope of the PostProcess layer inside the exported graph: every tensor whose name
# contains it belongs to the post-processing (kept float in int8 mode).
POSTPROCESS_SCOPE = "post_process"


def _endpoint(model: keras.Model, post: keras.layers.Layer, image_size: int,
              end_to_end: bool, standard_outputs: bool = False) -> tuple[str, Callable, list]:
    spec = [tf.TensorSpec([1, image_size, image_size, 3], tf.uint8, name=signatures.INPUT_PIXELS)]
    if end_to_end:
        if standard_outputs:  # the object detectors feed the image alone: export defaults
            return (signatures.TFLITE_DETECT,
                    lambda images: signatures.standard_detections(model, post, images), spec)

        # The parameter names are the signature's input names.
        def detect(images, score_threshold, iou_threshold, max_detections):
            thresholds = dict(zip(signatures.THRESHOLD_INPUTS,
                                  (score_threshold, iou_threshold, max_detections)))
            return signatures.tflite_detections(model, post, images, thresholds)
        return signatures.TFLITE_DETECT, detect, spec + signatures.threshold_specs(1)
    return (signatures.TFLITE_RAW, lambda images: signatures.raw_outputs(model, images), spec)


def _representative(calibration: Callable[[], Iterable[np.ndarray]], image_size: int,
                    key: str) -> Callable:
    """Wrap the user's calibration images as the converter's representative dataset."""
    def dataset():
        count = 0
        for image in calibration():
            image = np.asarray(image)
            if image.shape != (image_size, image_size, 3) or image.dtype != np.uint8:
                raise ExportError(f"calibration image {count}: expected uint8 "
                                  f"[{image_size}, {image_size}, 3] letterboxed pixels, "
                                  f"got {image.dtype} {list(image.shape)}")
            count += 1
            sample = {signatures.INPUT_PIXELS: image[None]}
            if key == signatures.TFLITE_DETECT:  # the export's thresholds
                sample.update({name: np.full([1], signatures.USE_DEFAULT, dtype) for name, dtype
                               in zip(signatures.THRESHOLD_INPUTS,
                                      (np.float32, np.float32, np.int32))})
            yield sample
        if count == 0:
            raise ExportError("the representative (calibration) dataset is empty: int8 "
                              "needs at least one training image (export.calibration_images)")
    return dataset


def _check_calibration_nonempty(calibration: Callable | None) -> None:
    if calibration is None:
        raise ExportError("tflite mode int8 needs calibration images (a representative "
                          "dataset from the training set); none was given")
    for _ in calibration():
        return
    raise ExportError("the representative (calibration) dataset is empty: int8 needs at "
                      "least one training image (export.calibration_images)")


def _int8_selective(converter: tf.lite.TFLiteConverter, end_to_end: bool) -> bytes:
    """Calibrate the whole graph, quantize all but the post-processing ops."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.inference_input_type = tf.uint8
    if not end_to_end:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        return converter.convert()
    from tensorflow.lite.python import convert as lite_convert
    converter._experimental_calibrate_only = True  # pylint: disable=protected-access
    calibrated = converter.convert()
    names = _postprocess_tensor_names(calibrated)
    return lite_convert.mlir_quantize(
        _drop_statistics(calibrated, names), disable_per_channel=False, fully_quantize=False,
        denylisted_nodes=sorted(names))


def _postprocess_tensor_names(model_bytes: bytes) -> set[str]:
    """Output tensor names of the post-processing ops of a calibrated .tflite.

    An op is post-processing if it is in the PostProcess layer's name scope or consumes,
    transitively, such an op's output: the signature's own ops after the layer (yxyx
    boxes, normalization) and the ops whose outputs were renamed to the signature's output
    names carry no scope, and quantizing them would round boxes, scores and masks to 8 bits.

    Args:
        model_bytes: the calibrated (still float) .tflite.

    Returns:
        The tensor names (also the quantizer's node names of single-output ops).
    """
    from tfseg.export.structure import inspect_tflite

    graph = inspect_tflite(model_bytes).subgraphs[0]
    names = {t.index: t.name for t in graph.tensors}
    produced: set[int] = set()
    for op in graph.operators:  # the file order is a topological order
        if produced & set(op.inputs) or any(_stays_float(names[i]) for i in op.outputs):
            produced.update(op.outputs)
    return {names[i] for i in produced}


def _stays_float(tensor_name: str) -> bool:
    """Post-processing, or the box prediction of a one-to-one (YOLO26) branch.

    A one-to-one head has no NMS behind it, and its box branch predicts the four side
    distances themselves (reg_max 1, no DFL bins). At 8 bits a trained YOLO26-seg-n lost 7 box
    and 1.3 mask mAP50-95 points end to end; with its three box prediction convolutions
    float (1 x 1, four outputs each: a negligible cost) it loses 0.1 and 0.2. Keeping the class
    or coefficient predictions float as well changed nothing measurable.
    """
    return POSTPROCESS_SCOPE in tensor_name or (
        f"/{O2O_PREFIX}box" in tensor_name and "/predict" in tensor_name)


def _drop_statistics(model_bytes: bytes, names: set[str]) -> bytes:
    """The calibrated .tflite without the min/max statistics of the tensors in ``names``.

    The quantizer's node denylist matches single-name ops only: a multi-output op (UNPACK,
    SPLIT) has a fused name and would still be quantized between two denylisted ops. A
    tensor without statistics gets no quantize/dequantize pair, so it stays float.
    """
    def edit(model) -> None:
        for tensor in model.subgraphs[0].tensors:
            if tensor.name.decode() in names:
                tensor.quantization = None
    return tflite_file.rewrite(model_bytes, edit)


def convert_saved_model(saved_model_dir: str | os.PathLike, signature_key: str, mode: str,
                        end_to_end: bool,
                        calibration: Callable[[], Iterable[np.ndarray]] | None = None,
                        image_size: int | None = None) -> bytes:
    """Convert one signature of a SavedModel to TFLite bytes in ``mode``.

    Args:
        saved_model_dir: the SavedModel written by :func:`write_archive`.
        signature_key: the signature to convert (it becomes the .tflite's signature key).
        mode: one of MODES.
        end_to_end: the signature contains the post-processing (int8 keeps it float).
        calibration: for int8, a callable returning an iterable of uint8 ``[S, S, 3]``
            letterboxed training images.
        image_size: S (to check calibration images).

    Returns:
        The .tflite flatbuffer.

    Raises:
        ExportError: unknown mode; int8 without (or with an empty) calibration dataset.
    """
    if mode not in MODES:
        raise ExportError(f"export.tflite_modes: unknown mode {mode!r}, expected one of {MODES}")
    with without_custom_gradient_warnings():  # the converter loads the SavedModel
        return _convert(saved_model_dir, signature_key, mode, end_to_end, calibration,
                        image_size)


def _convert(saved_model_dir, signature_key, mode, end_to_end, calibration, image_size):
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model_dir), signature_keys=[signature_key])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "int8":
        _check_calibration_nonempty(calibration)
        converter.representative_dataset = _representative(calibration, image_size, signature_key)
        return _int8_selective(converter, end_to_end)
    return converter.convert()


def _descriptions(metadata: dict, signature: str) -> dict[str, str]:
    """Output name -> meaning, from the export metadata's outputs of ``signature``."""
    outputs = metadata.get("outputs", {}).get(f"tflite {signature}", {})
    return {name: f"{spec['dtype']} {spec['shape']}: {spec['meaning']}"
            for name, spec in outputs.items()}


def export_tflite(model: keras.Model, post: keras.layers.Layer, image_size: int,
                  output_dir: str | os.PathLike, stem: str, modes: Iterable[str],
                  raw: bool = True, end_to_end: bool = True,
                  calibration: Callable[[], Iterable[np.ndarray]] | None = None,
                  metadata: dict | None = None, standard_outputs: bool = False
                  ) -> dict[str, Path]:
    """Write the end-to-end (and raw) .tflite files for every mode.

    Args:
        model: the network.
        post: PostProcess with the export's thresholds and N.
        image_size: S.
        output_dir: folder for the .tflite files.
        stem: file name stem, e.g. ``yolov8-seg-n_640``.
        modes: subset of MODES.
        raw: write the network-only files.
        end_to_end: write the end-to-end files.
        calibration: callable returning uint8 [S, S, 3] letterboxed images (int8 only).
        metadata: the export metadata, embedded in every file (with ``tflite_file`` added),
            and the standard TFLite metadata (export/standard_metadata.py) made from it.
        standard_outputs: the end-to-end file returns the four outputs of the TFLite object
            detectors (signatures.standard_detections) instead of the detections and masks.

    Returns:
        ``{"<mode>": path, "raw_<mode>": path, ...}``.
    """
    modes = list(modes)
    for mode in modes:
        if mode not in MODES:
            raise ExportError(f"export.tflite_modes: unknown mode {mode!r}, "
                              f"expected one of {MODES}")
    if "int8" in modes:
        _check_calibration_nonempty(calibration)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    kinds = [kind for kind, wanted in ((True, end_to_end), (False, raw)) if wanted]
    endpoints = {full: _endpoint(model, post, image_size, full, standard_outputs)
                 for full in kinds}
    with tempfile.TemporaryDirectory(prefix="tfseg-tflite-") as scratch:
        # One SavedModel holds both endpoints: each file converts its own signature, and the
        # weights are written once.
        saved = Path(scratch) / "endpoints"
        write_archive(model, post, {key: (fn, spec) for key, fn, spec in endpoints.values()},
                      saved)
        for full in kinds:
            key = endpoints[full][0]
            for mode in modes:
                data = convert_saved_model(saved, key, mode, full, calibration, image_size)
                name = mode if full else f"raw_{mode}"
                if metadata is not None:
                    data = embed_in_tflite(data, {**metadata, "tflite_file": name})
                    data = embed_standard_metadata(data, metadata, _descriptions(metadata, key))
                written[name] = tflite_file.write_atomically(
                    output_dir / f"{stem}_{name}.tflite", data)
    return written
