"""The Python API behind ``import tfseg``: build, feed, train with Keras, detect, export, load.

Each function is a thin door onto the library functions the CLI uses, so a model trained
with the user's own ``model.compile``/``model.fit`` goes through the same pipeline,
post-processing and export as ``tfseg train``/``predict``/``export``:

    build_model(name, num_classes, image_size)      YoloSeg with its loss set: compile, fit
    build_dataset(data, split, image_size, batch)   the trainer's tf.data pipeline
    detect(model, images)                           numpy images -> ImageDetections
    export_model(model, output_dir, class_names)    TFLite / SavedModel files
    load(path)                                      run folder, weights or export -> LoadedModel

Heavy stages (dataset preparation, export) are imported inside the functions that need them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from tfseg.postprocess.host import ImageDetections
from tfseg.resolve import LoadedModel, resolve_model


def _compiles_with_xla() -> bool:
    """What Keras' ``compile(jit_compile="auto")`` picks on TensorFlow: XLA when a device
    other than the CPU is visible."""
    return any(device.device_type != "CPU" for device in tf.config.list_physical_devices())


def _with_loss(model):
    """Set the reference loss on a Keras YoloSeg, sized for the XLA choice Keras will make."""
    model.configure_loss(model.make_loss(static_shapes=_compiles_with_xla()))
    return model


def build_model(name: str, num_classes: int, image_size: int = 640):
    """A fresh YOLO-seg network, ready for ``model.compile(optimizer)`` and ``model.fit``.

    The model owns its loss (the reference gains, ``compute_loss``), so ``compile`` takes
    only an optimizer; the loss is summed over the batch (Adam-family optimizers do not
    mind; an SGD rate scales with the batch). It is sized for Keras' default
    ``jit_compile="auto"`` (XLA on a GPU, none on a CPU): on a CPU, compile without
    ``jit_compile=True``. Build it inside your ``tf.distribute`` strategy's scope, if any.

    Args:
        name: ``yolov8-seg-{n,s,m,l,x}``, ``yolo11-seg-{...}`` or ``yolo26-seg-{...}``.
        num_classes: C.
        image_size: S, a multiple of 32 (the model takes ``[B, S, S, 3]`` float32 in [0, 1]).

    Returns:
        The Keras model (tfseg.model.yolo_seg.YoloSeg): images -> the raw-output dict.

    Raises:
        ConfigError: unknown name, C < 1, or S not a multiple of 32.

    Example:
        >>> model = tfseg.build_model("yolov8-seg-n", num_classes=3, image_size=320)
        >>> model.compile(optimizer=keras.optimizers.AdamW(1e-3))
    """
    from tfseg.model.yolo_seg import build_model as build_network

    return _with_loss(build_network(name, num_classes, image_size))


def load(path: str | os.PathLike, model_name: str | None = None,
         image_size: int | None = None) -> LoadedModel:
    """Load what ``path`` holds: a run folder, ``.weights.h5`` (with its ``model.json``),
    ``.keras``, an Ultralytics ``.pt``/``.safetensors``, a ``.tflite``, a SavedModel or an
    export folder (the resolver every command uses: tfseg.resolve).

    Args:
        path: the run, weights or export.
        model_name: the architecture expected (an error if the weights are another).
        image_size: the S to build a Keras model at (weights do not depend on it).

    Returns:
        LoadedModel: ``model`` (a Keras YoloSeg with its loss set, ready for ``fit`` and
        :func:`detect`; or an export's backend, for :func:`detect`), ``info`` (class_names,
        image_size, model_name, ...), ``path`` and ``kind``.

    Raises:
        WeightsError: nothing loadable at ``path`` (the message says what is missing).

    Example:
        >>> loaded = tfseg.load("runs/train/train")
        >>> found = tfseg.detect(loaded.model, [image])[0]
        >>> [loaded.info.class_names[c] for c in found.classes]
    """
    loaded = resolve_model(path, model_name, image_size)
    if hasattr(loaded.model, "configure_loss"):
        _with_loss(loaded.model)
    return loaded


def build_dataset(data: str | os.PathLike = "shapes", split: str = "train",
                  image_size: int = 640, batch_size: int = 16, training: bool | None = None,
                  verbose: bool = True, **overrides) -> tf.data.Dataset:
    """The tf.data pipeline ``tfseg train`` feeds to ``fit``, for your own ``fit``.

    ``data`` is what ``data=`` takes on the command line (a shipped dataset name such as
    ``shapes``, a dataset YAML, an Ultralytics ``data.yaml``): the dataset is written
    (``shapes``) and its records prepared on first use, as the commands do. A folder of
    records prepared by ``tfseg data prepare`` is read as it is.

    Args:
        data: dataset name, YAML path, or prepared records folder.
        split: ``train`` or ``val`` (or a TFDS split expression over a records folder).
        image_size: S.
        batch_size: images per batch.
        training: augmented, shuffled and repeated without end (pass ``steps_per_epoch``
            to ``fit``), or letterboxed once with image ids (evaluation); default: whether
            ``split`` is ``train``.
        verbose: say what is written and prepared.
        **overrides: any other config key, as on the command line (``shapes_train=16``,
            ``mosaic=0.5``, ``max_instances=32``). ``prepare_workers`` defaults to 0 here
            (records prepared in this process): worker processes start by importing the
            caller's script, which a script without ``if __name__ == "__main__":`` does
            not survive; set it to -1 (every CPU) from a guarded script for large sets.

    Returns:
        Batches of (images ``[B, S, S, 3]`` float32 in [0, 1], targets: boxes ``[B, M, 4]``
        xyxy input pixels, classes ``[B, M]`` (-1 padding), masks ``[B, M, S/4, S/4]``);
        the dataset's ``class_names`` and ``category_ids`` are attributes of the returned
        object (as Keras' ``image_dataset_from_directory`` does).

    Raises:
        ConfigError / DatasetError: unknown dataset or key, missing files, bad records.

    Example:
        >>> train = tfseg.build_dataset("shapes", "train", image_size=128, batch_size=8)
        >>> model = tfseg.build_model("yolov8-seg-n", len(train.class_names), 128)
    """
    from tfseg.config import load_config
    from tfseg.config.factory import dataset_arguments
    from tfseg.data.prepare import load_split
    from tfseg.pipeline.dataset import build_dataset as build_pipeline

    training = split == "train" if training is None else bool(training)
    prepared = Path(data).is_dir()
    overrides.setdefault("prepare_workers", 0)
    options = [f"{key}={value}" for key, value in overrides.items()]
    sizes = [f"imgsz={image_size}", f"batch={batch_size}", f"eval.batch={batch_size}"]
    if prepared:
        cfg = load_config([*sizes, *options], section="train")
        records_dir = str(data)
    else:
        from tfseg.commands.models import prepared_dataset

        cfg = load_config([f"data={data}", *sizes, *options], section="train")
        cfg, _, _ = prepared_dataset(cfg, verbose=verbose)
        records_dir = cfg.data.records
    _, info = load_split(records_dir, split, decode=False)  # the info alone
    # Training repeats the records, as the trainer does: the mosaic's sliding window yields
    # fewer samples than records, and a small set might not fill one batch.
    dataset = build_pipeline(records_dir, split, repeat=training,
                             **dataset_arguments(cfg, training=training))
    dataset.class_names = list(info["class_names"])
    dataset.category_ids = list(info["category_ids"] or range(len(info["class_names"])))
    return dataset


def detect(model, images: Iterable[np.ndarray], conf: float = 0.25, iou: float = 0.7,
           max_det: int = 300, agnostic: bool = False) -> list[ImageDetections]:
    """Detections of each image, boxes and masks in the image's own pixels.

    The image is letterboxed to the model's S, run through the network and
    tfseg.postprocess.PostProcess (decode, NMS, masks at S/4), and the kept masks are
    placed back on the original image on the host, as ``tfseg predict`` does.

    Args:
        model: a Keras YoloSeg (``build_model``, ``load``), or an export's backend
            (``load("model.tflite").model``; its thresholds and N were set at export).
        images: ``[H, W, 3]`` uint8 RGB arrays, any sizes.
        conf: score threshold; iou, max_det, agnostic: NMS of a Keras model.

    Returns:
        One tfseg.postprocess.host.ImageDetections per image: ``boxes`` ``[n, 4]`` xyxy
        pixels, ``scores`` ``[n]``, ``classes`` ``[n]``, ``full_mask(i)`` ``[H, W]`` bool
        (stored as ``mask_crops`` at ``mask_origins``), ``height``, ``width``.

    Example:
        >>> found = tfseg.detect(model, [image], conf=0.5)[0]
        >>> found.boxes, found.full_mask(0).sum()
    """
    from tfseg.predict.backends import KerasBackend
    from tfseg.predict.loop import detect_image

    backend = model if hasattr(model, "detect") else KerasBackend(model, conf, iou, max_det,
                                                                  agnostic)
    return [detect_image(backend, np.asarray(image, np.uint8), conf) for image in images]


def export_model(model, output_dir: str | os.PathLike, class_names: Sequence[str] | None = None,
                 formats: Iterable[str] = ("tflite", "savedmodel"), **options) -> dict[str, Path]:
    """Export a Keras YoloSeg at its own input size, as ``tfseg export`` does.

    Args:
        model: the Keras model (``build_model`` after ``fit``, or ``load(...).model``).
        output_dir: the export folder (created).
        class_names: C names, written into the metadata (default ``class0`` ...).
        formats: some of ``tflite`` (end-to-end ``.tflite`` with the ``detect`` signature,
            plus the network-only one unless ``raw=False``) and ``savedmodel`` (TF Serving).
        **options: the other arguments of tfseg.export.export (``tflite_modes``,
            ``raw``, ``score_threshold``, ``max_detections``, ``category_ids``, ...).

    Returns:
        ``{"metadata": path, "tflite_float32": path, "savedmodel": folder, ...}``.

    Raises:
        ExportError: unknown format or mode, or what the export checks refuse.

    Example:
        >>> files = tfseg.export_model(model, "export", ["circle", "square"], ["tflite"])
        >>> tfseg.load(files["tflite_float32"])
    """
    from tfseg.export import export

    return export(output_dir, model=model, image_size=int(model.inputs[0].shape[1]),
                  class_names=list(class_names) if class_names is not None else None,
                  formats=list(formats), **options)
