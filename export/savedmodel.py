"""SavedModel for TF Serving: ``<dir>/<name>/<version>/`` with fixed-shape signatures.

Written through ``keras.export.ExportArchive`` (the path that keeps the weights as real
variables, see DESIGN.md's export facts) into a temporary folder beside the target and
renamed into place, so a Serving instance watching ``<dir>/<name>`` never sees half a version.

Signatures:
    serving_default  image_bytes string [B] -> boxes (ORIGINAL pixels, xyxy), scores, classes,
                     masks [B, N, P, P], num_detections, letterbox [B, 5]
    serving_pixels   images uint8 [B, S, S, 3] letterboxed -> boxes (input pixels, xyxy),
                     scores, classes, masks, num_detections
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


def write_archive(model: keras.Model, post: keras.layers.Layer,
                  endpoints: dict[str, Endpoint], path: str | os.PathLike) -> None:
    """Write a SavedModel holding ``model``'s weights and the given endpoints.

    Args:
        model: the network; its variables are tracked (PostProcess has none).
        post: the PostProcess layer (no variables, so nothing to track; kept in the
            signature for symmetry with the endpoints that close over it).
        endpoints: signature name -> (function, input signature of tf.TensorSpec).
        path: folder to write (must not exist).
    """
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, input_signature) in endpoints.items():
        archive.add_endpoint(name=name, fn=fn, input_signature=input_signature)
    archive.write_out(str(path), verbose=False)


def serving_endpoints(model: keras.Model, post: keras.layers.Layer,
                      image_size: int) -> dict[str, Endpoint]:
    """The two TF Serving signatures, batch dimension free (Serving batches requests)."""
    def from_bytes(image_bytes):
        return signatures.bytes_detections(model, post, image_bytes, image_size)

    def from_pixels(images):
        return signatures.pixels_detections(model, post, images)

    return {
        signatures.SERVING_BYTES: (from_bytes, [
            tf.TensorSpec([None], tf.string, name=signatures.INPUT_BYTES)]),
        signatures.SERVING_PIXELS: (from_pixels, [
            tf.TensorSpec([None, image_size, image_size, 3], tf.uint8,
                          name=signatures.INPUT_PIXELS)]),
    }


def models_config(name: str, base_path: str) -> str:
    """A TF Serving ``--model_config_file`` example (text protobuf) serving every version."""
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
    """Write ``<output_dir>/<name>/<version>/`` atomically, with warmup and models.config.

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
                                  name, signatures.SERVING_BYTES, signatures.INPUT_BYTES,
                                  warmup_images)
        for file_name, text in (extra_files or {}).items():
            (staging / "sm" / file_name).parent.mkdir(parents=True, exist_ok=True)
            (staging / "sm" / file_name).write_text(text)
        os.replace(staging / "sm", target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    (Path(output_dir) / "models.config").write_text(models_config(name, str(model_root.resolve())))
    return target
