"""The exported functions over (model, PostProcess), with fixed shapes.

Every function takes uint8 pixels (or encoded bytes) and casts once to float: uint8
arithmetic is not a TFLite builtin, and one cast at the input is the only op the GPU
delegate has to leave to the CPU before the network.

    pixels_detections   uint8 [B, S, S, 3] letterboxed -> DETECTIONS (xyxy input pixels)
    bytes_detections    string [B] encoded JPEG/PNG    -> DETECTIONS in ORIGINAL pixels + letterbox
    tflite_detections   uint8 [1, S, S, 3] letterboxed -> DETECTIONS, boxes normalized yxyx
    raw_outputs         uint8 [B, S, S, 3] letterboxed -> RAW_OUTPUTS (the network alone; with
                        a one-to-one head also END_TO_END_OUTPUTS; never the training-only ones)

Signature names and output names of each export are the constants below; the metadata
(export/metadata.py) and the README state them for clients.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfseg.ops.boxes import xyxy_to_yxyx
from tfseg.ops.letterbox import letterbox_image, letterbox_inverse_boxes

# Signature keys of the SavedModel (TF Serving) and the .tflite files.
SERVING_BYTES = "serving_default"
SERVING_PIXELS = "serving_pixels"
TFLITE_DETECT = "detect"
TFLITE_RAW = "raw"
INPUT_BYTES = "image_bytes"
INPUT_PIXELS = "images"

DETECTION_OUTPUTS = ("boxes", "scores", "classes", "masks", "num_detections")
RAW_OUTPUTS = ("box_logits", "class_logits", "mask_coefficients", "prototypes")
END_TO_END_RAW_OUTPUTS = ("o2o_box_logits", "o2o_class_logits", "o2o_mask_coefficients")


def _network_input(images: tf.Tensor) -> tf.Tensor:
    """uint8 [B, S, S, 3] -> float32 [B, S, S, 3] in [0, 1], the model's input contract."""
    return tf.cast(images, tf.float32) * (1.0 / 255.0)


def raw_outputs(model: keras.Model, images: tf.Tensor) -> dict[str, tf.Tensor]:
    """The network alone on letterboxed pixels.

    Args:
        model: the YoloSeg network (float32 [B, S, S, 3] in [0, 1] -> RAW_OUTPUTS).
        images: ``[B, S, S, 3]`` uint8 letterboxed RGB.

    Returns:
        dict of RAW_OUTPUTS: box_logits ``[B, A, 4 * reg_max]``, class_logits ``[B, A, C]``,
        mask_coefficients ``[B, A, 32]``, prototypes ``[B, P, P, 32]``, float32; models with a
        one-to-one head add its END_TO_END_RAW_OUTPUTS (same layouts).
    """
    outputs = model(_network_input(images), training=False)
    names = RAW_OUTPUTS + tuple(n for n in END_TO_END_RAW_OUTPUTS if n in outputs)
    return {name: outputs[name] for name in names}


def pixels_detections(model: keras.Model, post: keras.layers.Layer,
                      images: tf.Tensor) -> dict[str, tf.Tensor]:
    """Network + PostProcess on letterboxed pixels.

    Args:
        images: ``[B, S, S, 3]`` uint8 letterboxed RGB.

    Returns:
        DETECTIONS: boxes ``[B, N, 4]`` xyxy input pixels, scores ``[B, N]``, classes
        ``[B, N]`` int32, masks ``[B, N, P, P]``, num_detections ``[B]`` int32.
    """
    return post(model(_network_input(images), training=False))


def tflite_detections(model: keras.Model, post: keras.layers.Layer,
                      images: tf.Tensor) -> dict[str, tf.Tensor]:
    """The end-to-end TFLite function: boxes normalized [ymin, xmin, ymax, xmax].

    Args:
        images: ``[1, S, S, 3]`` uint8 letterboxed RGB.

    Returns:
        boxes ``[1, N, 4]`` float32 normalized yxyx of the letterboxed input, scores
        ``[1, N]``, classes ``[1, N]`` int32, masks ``[1, N, P, P]``, num_detections ``[1]``.
    """
    size = float(images.shape[1])
    detections = dict(pixels_detections(model, post, images))
    detections["boxes"] = xyxy_to_yxyx(detections["boxes"]) * (1.0 / size)
    return detections


def decode_and_letterbox(image_bytes: tf.Tensor, size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Encoded images -> letterboxed uint8 pixels and their letterbox info.

    Any of JPEG, PNG, GIF (first frame), BMP; grayscale and RGBA become RGB. Bytes that are
    not an image fail the request with InvalidArgumentError ("Unknown image file format"):
    TF Serving returns that as the request's error status and keeps serving.

    Args:
        image_bytes: ``[B]`` string, encoded images.
        size: S.

    Returns:
        images: ``[B, S, S, 3]`` uint8 letterboxed RGB (rounded like the pipeline's input).
        letterbox: ``[B, 5]`` float32 letterbox info (contracts.LETTERBOX_INFO).
    """
    def one(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)  # [H, W, 3]
        image.set_shape([None, None, 3])
        boxed, info = letterbox_image(image, size)  # [S, S, 3] float 0..255, [5]
        return tf.cast(tf.clip_by_value(tf.round(boxed), 0.0, 255.0), tf.uint8), info

    signature = (tf.TensorSpec([size, size, 3], tf.uint8), tf.TensorSpec([5], tf.float32))
    return tf.map_fn(one, image_bytes, fn_output_signature=signature)


def bytes_detections(model: keras.Model, post: keras.layers.Layer, image_bytes: tf.Tensor,
                     size: int) -> dict[str, tf.Tensor]:
    """The TF Serving default: encoded images -> detections on the original images.

    Args:
        image_bytes: ``[B]`` string, encoded JPEG/PNG/GIF/BMP.
        size: S.

    Returns:
        DETECTIONS with boxes ``[B, N, 4]`` xyxy ORIGINAL-image pixels (clipped), masks
        ``[B, N, P, P]`` still on the letterboxed prototype grid, plus letterbox ``[B, 5]``
        (orig_height, orig_width, scale, pad_top, pad_left) to place the masks.
    """
    images, letterbox = decode_and_letterbox(image_bytes, size)
    detections = dict(pixels_detections(model, post, images))
    n = detections["scores"].shape[1]
    valid = tf.range(n)[None, :] < detections["num_detections"][:, None]  # [B, N]
    valid = tf.cast(valid, tf.float32)[..., None]  # [B, N, 1]
    # Padding rows stay zero after the inverse map (it would move them to -pad / scale).
    detections["boxes"] = letterbox_inverse_boxes(detections["boxes"], letterbox) * valid
    detections["letterbox"] = letterbox
    return detections
