"""A .tflite for MediaPipe's ImageSegmenter: instance masks composed into per-class masks.

MediaPipe Tasks' ``ImageSegmenter`` takes a model with one subgraph and one output
``[1, H, W, K]`` (K confidence channels), names the channels from the labels file of that
output (TENSOR_AXIS_LABELS), returns one confidence mask per channel and a category mask
(the channel with the highest value), each resized to the image it was given.

File: ``<stem>_segmenter_<mode>.tflite``, signature ``segment``: uint8 ``[1, S, S, 3]``
letterboxed RGB (the same input as the detector file) -> ``confidence_masks`` float32
``[1, S, S, C + 1]``:

    channel 0       background: 1 - the largest class confidence
    channel 1 + c   class c: at each pixel, the largest mask probability of the
                    detections of class c (the export's thresholds, NMS and N)

The detections are the end-to-end file's (tfseg.postprocess.PostProcess); only the
composition is new, in builtin ops: each detection's prototype-grid mask resized to S x S
(bilinear, half-pixel centres), then UNSORTED_SEGMENT_MAX over the detections by class. A
pixel's category is a class exactly where some detection of that class has probability
above the background's, i.e. above 0.5 when one class is present there. The labels file
holds ``background`` and the class names, in channel order.

Cost: the resized masks are N x S x S floats (N = 100 at 640 px: 164 MB while the file
runs) and the output (C + 1) x S x S (81 channels at 640 px: 133 MB). This file is for
MediaPipe users, who get masks no other way; the end-to-end file keeps masks on the
prototype grid and places them on the host.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf

from tfseg.export import signatures, tflite_file
from tfseg.export.metadata import embed_in_tflite
from tfseg.export.savedmodel import write_archive
from tfseg.export.standard_metadata import embed_standard_metadata

SEGMENT = "segment"
OUTPUT = "confidence_masks"
BACKGROUND = "background"


def class_confidence_masks(detections: dict[str, tf.Tensor], num_classes: int,
                           image_size: int) -> tf.Tensor:
    """One image's detections -> per-class confidence masks on the input grid.

    Args:
        detections: the DETECTIONS contract of one image: masks ``[1, N, P, P]``
            probabilities, classes ``[1, N]`` int32, num_detections ``[1]`` int32.
        num_classes: C.
        image_size: S.

    Returns:
        ``[1, S, S, C + 1]`` float32 in [0, 1]: background first, then class c at 1 + c.
    """
    with tf.name_scope("class_confidence_masks"):
        masks = detections["masks"][0]  # [N, P, P]
        rows = tf.shape(masks)[0]
        valid = tf.range(rows) < detections["num_detections"][0]  # [N]
        masks = tf.where(valid[:, None, None], masks, tf.zeros_like(masks))
        classes = tf.where(valid, detections["classes"][0], tf.zeros_like(detections["classes"][0]))
        # Each mask is resized before the classes are composed: the maximum of resized masks
        # is what thresholding each instance on the host gives; resizing the maximum would
        # widen every class where instances meet (bilinear weights are positive).
        masks = tf.image.resize(masks[..., None], [image_size, image_size],
                                method="bilinear")[..., 0]  # [N, S, S]
        # A class without detections gets the lowest float: clamp to 0.
        per_class = tf.maximum(tf.math.unsorted_segment_max(masks, classes, num_classes), 0.0)
        per_class = tf.transpose(per_class, [1, 2, 0])  # [S, S, C]
        background = 1.0 - tf.reduce_max(per_class, axis=-1, keepdims=True)  # [S, S, 1]
        return tf.concat([background, per_class], axis=-1)[None]  # [1, S, S, C + 1]


def _endpoint(model: keras.Model, post: keras.layers.Layer, num_classes: int,
              image_size: int) -> tuple[Callable, list]:
    spec = [tf.TensorSpec([1, image_size, image_size, 3], tf.uint8, name=signatures.INPUT_PIXELS)]

    def segment(images):
        detections = signatures.tflite_detections(model, post, images)
        return {OUTPUT: class_confidence_masks(detections, num_classes, image_size)}
    return segment, spec


def segmenter_outputs(num_classes: int) -> dict:
    """The export metadata's description of the ``segment`` signature's output."""
    return {OUTPUT: {"dtype": "float32", "shape": f"[1, S, S, {num_classes + 1}]",
                     "meaning": "per-class confidence on the letterboxed input: channel 0 "
                                "background (1 - the largest class value), channel 1 + c the "
                                "largest mask probability of the detections of class c"}}


def export_segmenter(model: keras.Model, post: keras.layers.Layer, image_size: int,
                     output_dir: str | Path, stem: str, modes: Iterable[str],
                     metadata: dict,
                     calibration: Callable[[], Iterable[np.ndarray]] | None = None
                     ) -> dict[str, Path]:
    """Write ``<stem>_segmenter_<mode>.tflite`` for every mode.

    Args:
        model: the network.
        post: PostProcess with the export's thresholds and N, prototype-grid float masks.
        image_size: S.
        output_dir: folder for the files.
        stem: file name stem, e.g. ``yolov8-seg-n_640``.
        modes: some of tfseg.export.tflite.MODES.
        metadata: the export metadata (class_names, model_name, input size), embedded
            with ``tflite_file`` added, and the standard metadata with the labels
            ``background`` + class names on the output.
        calibration: uint8 ``[S, S, 3]`` letterboxed images (int8 only).

    Returns:
        ``{"segmenter_<mode>": path}``.
    """
    from tfseg.export.tflite import convert_saved_model

    num_classes = len(metadata["class_names"])
    labels = [BACKGROUND] + list(metadata["class_names"])
    description = {OUTPUT: f"float32 [1, S, S, {num_classes + 1}]: "
                           + segmenter_outputs(num_classes)[OUTPUT]["meaning"]}
    written = {}
    with tempfile.TemporaryDirectory(prefix="tfseg-segmenter-") as scratch:
        saved = Path(scratch) / SEGMENT
        write_archive(model, post, {SEGMENT: _endpoint(model, post, num_classes, image_size)},
                      saved)
        for mode in modes:
            data = convert_saved_model(saved, SEGMENT, mode, True, calibration, image_size)
            name = f"segmenter_{mode}"
            data = embed_in_tflite(data, {**metadata, "tflite_file": name})
            data = embed_standard_metadata(data, metadata, description, labels=labels)
            written[name] = tflite_file.write_atomically(
                Path(output_dir) / f"{stem}_{name}.tflite", data)
    return written
