"""tfseg.export: SavedModel (TF Serving) and TFLite exports. Depends on tfseg, never the reverse.

Entry points:
    export(...)              plain arguments -> files (what ``tfseg export`` calls via api.py)
    check_gpu(path)          GPU-delegate partition report (``tfseg export --check-gpu``)
    inspect_tflite(path)     structure facts of a .tflite

Layout written under ``output_dir``:
    metadata.json                          class names, input, outputs, thresholds, conventions
    <serving_name>/<version>/              SavedModel for TF Serving (+ assets.extra warmup)
    models.config                          TF Serving --model_config_file (base_path /models/<name>)
    batching_parameters.txt                TF Serving --batching_parameters_file
    <model>_<S>_<mode>.tflite              end-to-end (signature "detect", run-time thresholds),
                                           metadata inside
    <model>_<S>_raw_<mode>.tflite          network only (signature "raw"), metadata inside
    <model>_<S>_segmenter_<mode>.tflite    format tflite_segmenter: per-class confidence masks for
                                           MediaPipe's ImageSegmenter (signature "segment")
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from tfseg.errors import ExportError
from tfseg.export.gpu_rules import check_gpu
from tfseg.export.structure import inspect_tflite

FORMATS = ("savedmodel", "tflite", "tflite_segmenter")

__all__ = ["export", "check_gpu", "inspect_tflite", "FORMATS"]


def _check_arguments(image_size: int, num_classes: int, formats, class_names, category_ids):
    if not isinstance(image_size, int) or image_size < 32 or image_size % 32:
        raise ExportError("export image size must be a positive multiple of 32, "
                          f"got {image_size!r}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"export.formats: unknown {unknown or 'empty'}, "
                          f"expected some of {FORMATS}")
    if class_names is not None and len(class_names) != num_classes:
        raise ExportError(f"{len(class_names)} class names for {num_classes} classes")
    if category_ids is not None and len(category_ids) != num_classes:
        raise ExportError(f"{len(category_ids)} category ids for {num_classes} classes")


def _has_one_to_one_head(network) -> bool:
    """Whether the network's raw outputs carry a one-to-one head (YOLO26)."""
    return bool(getattr(getattr(network, "spec", None), "end2end", False))


def export(output_dir: str | os.PathLike, *, model, model_name: str | None = None,
           num_classes: int | None = None,
           image_size: int = 640, class_names: list[str] | None = None,
           category_ids: list[int] | None = None,
           formats: Iterable[str] = FORMATS, tflite_modes: Iterable[str] = ("float32",),
           raw: bool = True, score_threshold: float = 0.25, iou_threshold: float = 0.45,
           max_detections: int = 100, agnostic: bool = False, end_to_end: bool = True,
           serving_name: str = "tfseg",
           serving_version: int = 1,
           calibration: Callable[[], Iterable[np.ndarray]] | None = None,
           warmup_images: list[bytes] | None = None,
           model_info: dict | None = None, mask_size: int = 0, mask_dtype: str = "float32",
           standard_outputs: bool = False) -> dict[str, Path]:
    """Export a trained network to SavedModel (TF Serving) and/or TFLite.

    Args:
        output_dir: export folder (created).
        model: a built Keras YoloSeg (load one from a path with
            ``tfseg.resolve.resolve_model``).
        model_name: ``yolov8-seg-n`` ... for the metadata and file names (default: the
            model's).
        num_classes: C (default: the model's).
        image_size: S, a multiple of 32.
        class_names / category_ids: C names and source category ids (default: class<i>, i).
        formats: some of ("savedmodel", "tflite", "tflite_segmenter"); tflite_segmenter
            writes the MediaPipe ImageSegmenter file (export/segmenter.py) in every mode.
        tflite_modes: some of ("float32", "float16", "dynamic_int8", "int8").
        raw: also write the network-only .tflite files.
        score_threshold, iou_threshold, max_detections, agnostic, end_to_end: PostProcess
            options; the thresholds and max_detections are the defaults of the run-time
            inputs, max_detections also the capacity N of every output (end_to_end: a
            one-to-one head's top-k, no NMS in the graph: YOLO26).
        serving_name, serving_version: TF Serving model name and version folder.
        calibration: callable returning uint8 ``[S, S, 3]`` letterboxed training images
            (int8 only); :func:`tfseg.export.api.calibration_images` makes one from records.
        warmup_images: encoded images for the TF Serving warmup file (default: one grey
            PNG of S x S).
        model_info: the model artifact's metadata (tfseg.model.artifact: architecture,
            classes, recipe), copied into the export metadata as ``model``.
        mask_size: 0 keeps ``masks`` ``[B, N, S/4, S/4]`` on the prototype grid; m > 0
            returns ``box_masks`` ``[B, N, m, m]`` spanning each box instead (every signature).
        mask_dtype: ``"float32"`` probabilities or ``"uint8"`` round(255 p).
        standard_outputs: the end-to-end .tflite returns the four outputs the TFLite
            Task Library's and MediaPipe's object detectors take (no masks).

    Returns:
        ``{"metadata": path, "savedmodel": version folder, "tflite_<mode>": path,
        "tflite_raw_<mode>": path, "tflite_segmenter_<mode>": path, ...}``.

    Raises:
        ExportError: no model, S not a multiple of 32, unknown format or mode, an empty
            calibration set, an existing Serving version.
    """
    from tfseg.export import metadata as meta
    from tfseg.postprocess import PostProcess

    formats = [f.strip() for f in formats if f.strip()]
    tflite_modes = [m.strip() for m in tflite_modes if m.strip()]
    if model is None:
        raise ExportError("nothing to export: no trained model given; a freshly initialised "
                          "network is not an export")
    num_classes = num_classes or getattr(model, "num_classes", None)
    model_name = model_name or getattr(model, "model_name", "yolov8-seg-n")
    _check_arguments(image_size, num_classes, formats, class_names, category_ids)
    _check_mask_options(mask_size, mask_dtype)
    network = model
    input_size = network.inputs[0].shape[1]
    if input_size != image_size:
        raise ExportError(f"the model takes {input_size} px inputs, not the requested {image_size}")
    class_names = list(class_names or [f"class{i}" for i in range(num_classes)])
    category_ids = list(category_ids if category_ids is not None else range(num_classes))
    info = meta.build_metadata(model_name, num_classes, image_size, class_names, category_ids,
                               score_threshold, iou_threshold, max_detections, agnostic,
                               mask_size, mask_dtype, standard_outputs,
                               end_to_end=end_to_end and _has_one_to_one_head(network))
    if model_info:
        info["model"] = dict(model_info)
    if "tflite_segmenter" in formats:
        meta.describe_segmenter(info)
    post = PostProcess(score_threshold, iou_threshold, max_detections, agnostic,
                       mask_size=mask_size, mask_dtype=mask_dtype, end_to_end=end_to_end)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    written = {"metadata": meta.write_json(info, output_dir / "metadata.json")}
    if "tflite" in formats:
        written.update(_export_tflite(network, post, image_size, output_dir, model_name,
                                      tflite_modes, raw, calibration, info,
                                      standard_outputs))
    if "tflite_segmenter" in formats:
        written.update(_export_segmenter(network, image_size, output_dir, model_name,
                                         tflite_modes, calibration, info,
                                         (score_threshold, iou_threshold, max_detections,
                                          agnostic), end_to_end))
    if "savedmodel" in formats:
        from tfseg.export.savedmodel import export_savedmodel

        written["savedmodel"] = export_savedmodel(
            network, post, image_size, output_dir, serving_name, serving_version,
            warmup_images if warmup_images is not None else [_grey_png(image_size)],
            extra_files={"assets.extra/metadata.json": meta.to_json(info)})
    return written


def _check_mask_options(mask_size, mask_dtype) -> None:
    from tfseg.postprocess.masks import MASK_DTYPES

    if not isinstance(mask_size, int) or mask_size < 0:
        raise ExportError(f"export.mask_size: expected 0 (prototype-grid masks) or a positive "
                          f"box-aligned mask size, got {mask_size!r}")
    if mask_dtype not in MASK_DTYPES:
        raise ExportError(f"export.mask_dtype: expected one of {MASK_DTYPES}, "
                          f"got {mask_dtype!r}")


def _export_tflite(network, post, image_size, output_dir, model_name, modes, raw, calibration,
                   info, standard_outputs=False) -> dict[str, Path]:
    from tfseg.export.tflite import export_tflite

    files = export_tflite(network, post, image_size, output_dir, f"{model_name}_{image_size}",
                          modes, raw=raw, calibration=calibration, metadata=info,
                          standard_outputs=standard_outputs)
    return {f"tflite_{name}": path for name, path in files.items()}


def _export_segmenter(network, image_size, output_dir, model_name, modes, calibration, info,
                      thresholds, end_to_end) -> dict[str, Path]:
    from tfseg.export.segmenter import export_segmenter
    from tfseg.postprocess import PostProcess

    # Prototype-grid float masks whatever the export's mask options: they are composed here.
    post = PostProcess(*thresholds, end_to_end=end_to_end)
    files = export_segmenter(network, post, image_size, output_dir, f"{model_name}_{image_size}",
                             modes, info, calibration)
    return {f"tflite_{name}": path for name, path in files.items()}


def _grey_png(size: int) -> bytes:
    import cv2

    ok, encoded = cv2.imencode(".png", np.full((size, size, 3), 114, np.uint8))
    return encoded.tobytes()
