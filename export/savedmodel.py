"""SavedModel for TF Serving: ``<dir>/<name>/<version>/`` with fixed-shape signatures.

Written by ``write_archive`` (tf.saved_model.save of the endpoints' traced functions, with
the weights as real variables) into a temporary folder beside the target and renamed into
place, so a Serving instance watching ``<dir>/<name>`` never sees half a version.

Signatures:
    serving_default   image_bytes string [B] -> boxes (ORIGINAL pixels, xyxy), scores, classes,
                      masks_png_bytes [B, N] (one PNG per row), num_detections, letterbox [B, 5]
    serving_pixels    images uint8 [B, S, S, 3] letterboxed -> boxes (input pixels, xyxy),
                      scores, classes, masks [B, N, P, P] float32, num_detections
    serving_thresholds, serving_pixels_thresholds
                      the same two with run-time inputs score_threshold float32 [B],
                      iou_threshold float32 [B], max_detections int32 [B] (-1: the export's)

Thresholds are separate signatures, not inputs with defaults, so that requests with images
alone stay as they are and TF Serving's batching (which concatenates every input along
axis 0) works for both: a signature default would be fed as-is to a batch of any size.

Beside ``<name>/`` the export writes ``models.config`` (base_path inside the container, see
CONTAINER_MODELS) and ``batching_parameters.txt`` for ``--enable_batching``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf

from tfseg.errors import ExportError
from tfseg.export import signatures
from tfseg.export.warmup import write_warmup_requests

Endpoint = tuple[Callable, list]  # (function, input_signature)

# Where docs/export.md's `docker run -v <export dir>:/models` mounts the export folder: TF Serving
# reads models.config inside the container, so base_path must be a container path.
CONTAINER_MODELS = "/models"
MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"


def write_archive(model: keras.Model, post: keras.layers.Layer,
                  endpoints: dict[str, Endpoint], path: str | os.PathLike) -> None:
    """Write a SavedModel holding ``model``'s weights and the given endpoints as signatures.

    Each endpoint is traced once, and the SavedModel tracks the network's TensorFlow
    variables alone (each Keras variable's ``value``), so the files keep the weights as real
    variables, which is what TFLiteConverter.from_saved_model freezes. Keras'
    ``ExportArchive`` writes the same signatures but traces every endpoint twice (once to
    find its variables, once more in ``tf.saved_model.save``) and walks every layer's
    trackables: measured on 2 cores, the end-to-end endpoint at 64 px took 27 s to write
    through it against 7-13 s here, with byte-identical .tflite files converted from either.

    Args:
        model: the network; its variables are saved.
        post: the PostProcess layer (no variables, so nothing to track; kept in the
            signature for symmetry with the endpoints that close over it).
        endpoints: signature name -> (function, input signature of tf.TensorSpec).
        path: folder to write (must not exist).
    """
    holder = tf.Module()
    # A Keras variable wraps the tf.Variable that the traced graphs capture: track that one.
    holder.weights = [getattr(variable, "value", variable) for variable in model.variables]
    functions = {name: tf.function(fn, input_signature=spec, autograph=False)
                 .get_concrete_function() for name, (fn, spec) in endpoints.items()}
    # No gradient functions: the files serve inference, and tracing the gradient of every
    # custom-gradient op (each SiLU) took about 45% of the write on 2 cores.
    tf.saved_model.save(holder, os.fspath(path), signatures=functions,
                        options=tf.saved_model.SaveOptions(experimental_custom_gradients=False))


def serving_endpoints(model: keras.Model, post: keras.layers.Layer,
                      image_size: int) -> dict[str, Endpoint]:
    """The four TF Serving signatures, batch dimension free (Serving batches requests).

    The functions' parameter names are the signatures' input names.
    """
    def from_bytes(image_bytes):
        return signatures.bytes_detections(model, post, image_bytes, image_size)

    def from_pixels(images):
        return signatures.pixels_detections(model, post, images)

    def from_bytes_thresholds(image_bytes, score_threshold, iou_threshold, max_detections):
        return signatures.bytes_detections(model, post, image_bytes, image_size, dict(zip(
            signatures.THRESHOLD_INPUTS, (score_threshold, iou_threshold, max_detections))))

    def from_pixels_thresholds(images, score_threshold, iou_threshold, max_detections):
        return signatures.pixels_detections(model, post, images, dict(zip(
            signatures.THRESHOLD_INPUTS, (score_threshold, iou_threshold, max_detections))))

    image_bytes = [tf.TensorSpec([None], tf.string, name=signatures.INPUT_BYTES)]
    pixels = [tf.TensorSpec([None, image_size, image_size, 3], tf.uint8,
                            name=signatures.INPUT_PIXELS)]
    thresholds = signatures.threshold_specs(None)
    return {
        signatures.SERVING_BYTES: (from_bytes, image_bytes),
        signatures.SERVING_PIXELS: (from_pixels, pixels),
        signatures.SERVING_BYTES_THRESHOLDS: (from_bytes_thresholds, image_bytes + thresholds),
        signatures.SERVING_PIXELS_THRESHOLDS: (from_pixels_thresholds, pixels + thresholds),
    }


def batching_parameters(max_batch_size: int = 8, batch_timeout_micros: int = 2000,
                        max_enqueued_batches: int = 100, num_batch_threads: int = 4) -> str:
    """TF Serving ``--batching_parameters_file`` (text-format BatchingParameters).

    Every input of our signatures has the batch on axis 0 and a fixed size otherwise, so
    requests concatenate without padding. The defaults suit a CPU server: a batch waits at
    most 2 ms for company, up to 8 images run together, 4 batches at once.
    """
    return (
        "# TF Serving batching (docker ... --enable_batching "
        f"--batching_parameters_file={CONTAINER_MODELS}/{BATCHING_PARAMETERS}).\n"
        "# Largest batch the model runs; more images per request are split.\n"
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        "# How long the first request of a batch waits for others (latency cost).\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        "# Queue length in batches before requests are refused (back-pressure).\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
        "# Batches run in parallel: about the number of cores / threads per batch.\n"
        f"num_batch_threads {{ value: {num_batch_threads} }}\n"
        "# Inputs are fixed-size (images [S, S, 3] or one encoded string each).\n"
        "pad_variable_length_inputs: false\n")


def models_config(name: str, base_path: str) -> str:
    """A TF Serving ``--model_config_file`` (text protobuf) serving every version.

    Args:
        name: the model name clients address (``/v1/models/<name>``).
        base_path: the folder holding the version folders, as the server sees it (inside
            the container: ``/models/<name>``).
    """
    return (
        "model_config_list {\n"
        "  config {\n"
        f"    name: \"{name}\"\n"
        f"    base_path: \"{base_path}\"\n"
        "    model_platform: \"tensorflow\"\n"
        "    model_version_policy { all {} }\n"
        "  }\n"
        "}\n")


def export_savedmodel(model: keras.Model, post: keras.layers.Layer, image_size: int,
                      output_dir: str | os.PathLike, name: str, version: int,
                      warmup_images: list[bytes] | None = None,
                      extra_files: dict[str, str] | None = None) -> Path:
    """Write ``<output_dir>/<name>/<version>/`` atomically, with warmup, models.config and
    batching_parameters.txt (for docs/export.md's ``docker run`` mount of ``output_dir``).

    Args:
        model: the network (float32 [B, S, S, 3] in [0, 1] -> RAW_OUTPUTS).
        post: the PostProcess layer with the export's thresholds and N.
        image_size: S.
        output_dir: the export folder; ``<name>/`` is created inside.
        name: the TF Serving model name.
        version: the version number (a positive integer, TF Serving's folder name).
        warmup_images: encoded images for ``assets.extra/tf_serving_warmup_requests``;
            None or empty writes no warmup file.
        extra_files: file name -> text written into the version folder (e.g. metadata).

    Returns:
        The version folder.

    Raises:
        ExportError: the version is not a positive integer or already exists.
    """
    if not isinstance(version, int) or version < 1:
        raise ExportError(f"export.serving_version: must be a positive integer, got {version!r}")
    model_root = Path(output_dir) / name
    target = model_root / str(version)
    if target.exists():
        raise ExportError(f"{target} already exists: TF Serving versions are immutable, "
                          "choose another export.serving_version")
    model_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=model_root))
    try:
        write_archive(model, post, serving_endpoints(model, post, image_size), staging / "sm")
        if warmup_images:
            write_warmup_requests(staging / "sm" / "assets.extra" / "tf_serving_warmup_requests",
                                  name, warmup_images)
        for file_name, text in (extra_files or {}).items():
            (staging / "sm" / file_name).parent.mkdir(parents=True, exist_ok=True)
            (staging / "sm" / file_name).write_text(text)
        os.replace(staging / "sm", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (Path(output_dir) / MODELS_CONFIG).write_text(
        models_config(name, f"{CONTAINER_MODELS}/{name}"))
    (Path(output_dir) / BATCHING_PARAMETERS).write_text(batching_parameters())
    return target
