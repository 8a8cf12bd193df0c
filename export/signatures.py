"""The exported functions over (model, PostProcess), with fixed shapes.

Every function takes uint8 pixels (or encoded bytes) and casts once to float: uint8
arithmetic is not a TFLite builtin, and one cast at the input is the only op the GPU
delegate has to leave to the CPU before the network.

    pixels_detections   uint8 [B, S, S, 3] letterboxed -> DETECTIONS (xyxy input pixels)
    bytes_detections    string [B] encoded JPEG/PNG    -> DETECTIONS in ORIGINAL pixels + letterbox,
                                                          masks as PNG bytes (compact for REST)
    tflite_detections   uint8 [1, S, S, 3] letterboxed -> DETECTIONS, boxes normalized yxyx
    standard_detections uint8 [1, S, S, 3] letterboxed -> the four outputs of the TFLite
                        object detectors (locations, classes, scores, num_detections)
    raw_outputs         uint8 [B, S, S, 3] letterboxed -> RAW_OUTPUTS (the network alone; with
                        a one-to-one head also END_TO_END_OUTPUTS; never the training-only ones)

The detection functions take optional run-time thresholds (THRESHOLD_INPUTS: score and IoU
threshold, max_detections), one value per image; a negative value means the export's own
(PostProcess's constructor values). The output shapes never change: N is the capacity.

Signature names and output names of each export are the constants below; the metadata
(export/metadata.py) and docs/export.md state them for clients.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tfseg.ops.boxes import xyxy_to_yxyx
from tfseg.ops.letterbox import letterbox_image, letterbox_inverse_boxes
from tfseg.postprocess.masks import decode_masks, encode_masks, resample_to_boxes

# Signature keys of the SavedModel (TF Serving) and the .tflite files.
SERVING_BYTES = "serving_default"
SERVING_PIXELS = "serving_pixels"
SERVING_BYTES_THRESHOLDS = "serving_thresholds"  # serving_default + the threshold inputs
SERVING_PIXELS_THRESHOLDS = "serving_pixels_thresholds"  # serving_pixels + the threshold inputs
TFLITE_DETECT = "detect"
TFLITE_RAW = "raw"
INPUT_BYTES = "image_bytes"
INPUT_PIXELS = "images"
# Run-time threshold inputs, one value per image ([B]; [1] in the .tflite); negative = default.
INPUT_SCORE = "score_threshold"
INPUT_IOU = "iou_threshold"
INPUT_MAX_DETECTIONS = "max_detections"
THRESHOLD_INPUTS = (INPUT_SCORE, INPUT_IOU, INPUT_MAX_DETECTIONS)
USE_DEFAULT = -1  # the value of a threshold input that selects the export's own

DETECTION_OUTPUTS = ("boxes", "scores", "classes", "masks", "num_detections")
# serving_default's masks: one PNG per row. TF Serving's REST API writes string outputs whose
# name ends in "_bytes" as {"b64": ...}; PNG keeps the masks exact to 1/255 at ~1% of the size.
MASKS_PNG = "masks_png_bytes"
SERVING_OUTPUTS = ("boxes", "scores", "classes", MASKS_PNG, "num_detections", "letterbox")


def threshold_specs(batch: int | None) -> list[tf.TensorSpec]:
    """Input specs of the run-time thresholds: float32, float32, int32, each ``[batch]``."""
    return [tf.TensorSpec([batch], tf.float32, name=INPUT_SCORE),
            tf.TensorSpec([batch], tf.float32, name=INPUT_IOU),
            tf.TensorSpec([batch], tf.int32, name=INPUT_MAX_DETECTIONS)]


STANDARD_OUTPUTS = ("locations", "classes", "scores", "num_detections")
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


def pixels_detections(model: keras.Model, post: keras.layers.Layer, images: tf.Tensor,
                      thresholds: dict[str, tf.Tensor] | None = None) -> dict[str, tf.Tensor]:
    """Network + PostProcess on letterboxed pixels.

    Args:
        images: ``[B, S, S, 3]`` uint8 letterboxed RGB.
        thresholds: None (the export's values) or THRESHOLD_INPUTS name -> ``[B]`` tensor
            (PostProcess's run-time arguments; negative entries take the export's value).

    Returns:
        DETECTIONS: boxes ``[B, N, 4]`` xyxy input pixels, scores ``[B, N]``, classes
        ``[B, N]`` int32, masks ``[B, N, P, P]``, num_detections ``[B]`` int32.
    """
    return post(model(_network_input(images), training=False), **(thresholds or {}))


def tflite_detections(model: keras.Model, post: keras.layers.Layer, images: tf.Tensor,
                      thresholds: dict[str, tf.Tensor] | None = None) -> dict[str, tf.Tensor]:
    """The end-to-end TFLite function: boxes normalized [ymin, xmin, ymax, xmax].

    Args:
        images: ``[1, S, S, 3]`` uint8 letterboxed RGB.
        thresholds: THRESHOLD_INPUTS name -> ``[1]`` tensor (a TFLite signature has no
            optional inputs: the app passes each, -1 for the export's value); None: the
            export's values (the standard-outputs file, whose image is its only input).

    Returns:
        boxes ``[1, N, 4]`` float32 normalized yxyx of the letterboxed input, scores
        ``[1, N]``, classes ``[1, N]`` int32, masks ``[1, N, P, P]``, num_detections ``[1]``.
    """
    size = float(images.shape[1])
    detections = dict(pixels_detections(model, post, images, thresholds))
    detections["boxes"] = xyxy_to_yxyx(detections["boxes"]) * (1.0 / size)
    return detections


def standard_detections(model: keras.Model, post: keras.layers.Layer,
                        images: tf.Tensor) -> dict[str, tf.Tensor]:
    """The four outputs the TFLite Task Library's and MediaPipe's object detectors take.

    Both refuse a model with any other number of outputs, so masks are not among them.

    Args:
        images: ``[1, S, S, 3]`` uint8 letterboxed RGB.

    Returns:
        locations ``[1, N, 4]`` float32 normalized [ymin, xmin, ymax, xmax], classes
        ``[1, N]`` float32 class index, scores ``[1, N]`` float32, num_detections ``[1]``
        float32.
    """
    detections = tflite_detections(model, post, images)
    return {"locations": detections["boxes"],
            "classes": tf.cast(detections["classes"], tf.float32),
            "scores": detections["scores"],
            "num_detections": tf.cast(detections["num_detections"], tf.float32)}


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


def encode_masks_png(masks: tf.Tensor, num_detections: tf.Tensor) -> tf.Tensor:
    """Mask probabilities -> one grey PNG per row (uint8 round(255 p)); "" past the valid rows.

    Args:
        masks: ``[B, N, P, P]`` float32 probabilities in [0, 1].
        num_detections: ``[B]`` int32.

    Returns:
        ``[B, N]`` string: PNG bytes of a P x P uint8 image, empty for padding rows.
    """
    n, p = masks.shape[1], masks.shape[2]
    valid = tf.reshape(tf.range(n)[None, :] < num_detections[:, None], [-1])  # [B*N]
    pixels = tf.cast(tf.round(tf.reshape(masks, [-1, p, p, 1]) * 255.0), tf.uint8)  # [BN,P,P,1]
    encoded = tf.map_fn(
        lambda args: tf.cond(args[1], lambda: tf.io.encode_png(args[0]), lambda: tf.constant("")),
        (pixels, valid), fn_output_signature=tf.TensorSpec([], tf.string))  # [B*N]
    return tf.reshape(encoded, [-1, n])


def bytes_detections(model: keras.Model, post: keras.layers.Layer, image_bytes: tf.Tensor,
                     size: int, thresholds: dict[str, tf.Tensor] | None = None
                     ) -> dict[str, tf.Tensor]:
    """The TF Serving default: encoded images -> detections on the original images.

    Args:
        image_bytes: ``[B]`` string, encoded JPEG/PNG/GIF/BMP.
        size: S.
        thresholds: as in :func:`pixels_detections`.

    Returns:
        SERVING_OUTPUTS: boxes ``[B, N, 4]`` xyxy ORIGINAL-image pixels (clipped), scores,
        classes, num_detections as in DETECTIONS; masks_png_bytes ``[B, N]`` string, each a
        grey PNG of the mask probabilities x 255 (empty past num_detections): P x P on the
        letterboxed prototype grid, or, exported with ``mask_size`` m, m x m spanning the
        returned (clipped) box; letterbox ``[B, 5]`` (orig_height, orig_width, scale,
        pad_top, pad_left) to place the grid masks.
    """
    images, letterbox = decode_and_letterbox(image_bytes, size)
    detections = dict(pixels_detections(model, post, images, thresholds))
    n = detections["scores"].shape[1]
    valid = tf.range(n)[None, :] < detections["num_detections"][:, None]  # [B, N]
    valid = tf.cast(valid, tf.float32)[..., None]  # [B, N, 1]
    # Padding rows stay zero after the inverse map (it would move them to -pad / scale).
    unclipped = letterbox_inverse_boxes(detections["boxes"], letterbox, clip=False) * valid
    detections["boxes"] = letterbox_inverse_boxes(detections["boxes"], letterbox) * valid
    if "box_masks" in detections:  # re-span the masks from the unclipped to the clipped box
        box_masks = detections["box_masks"]
        resampled = resample_to_boxes(decode_masks(box_masks), unclipped, detections["boxes"],
                                      int(box_masks.shape[-1]))
        detections["box_masks"] = encode_masks(resampled, box_masks.dtype.name)
    detections["letterbox"] = letterbox
    masks = detections.pop("box_masks") if "box_masks" in detections else detections.pop("masks")
    detections[MASKS_PNG] = encode_masks_png(decode_masks(masks), detections["num_detections"])
    return detections
