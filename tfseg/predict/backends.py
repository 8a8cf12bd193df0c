"""Backends: letterboxed uint8 images -> the DETECTIONS contract, whatever runs the network.

Every backend has ``image_size`` (S) and ``detect(images)`` taking ``[B, S, S, 3]`` uint8
RGB and returning numpy arrays of the DETECTIONS contract (tfseg/contracts.py): boxes
``[B, N, 4]`` xyxy input pixels, scores ``[B, N]``, classes ``[B, N]``, masks
``[B, N, S/4, S/4]``, num_detections ``[B]``. The Keras backend is here; SavedModel and
TFLite backends (added by the export stage) implement the same two members.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Protocol

import numpy as np
import tensorflow as tf

from tfseg.optional import litert_interpreter
from tfseg.postprocess import PostProcess
from tfseg.postprocess.tta import AugmentedPostProcess


class Backend(Protocol):
    """What predict needs from a backend."""

    image_size: int

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """``[B, S, S, 3]`` uint8 RGB letterboxed -> DETECTIONS dict of numpy arrays."""


class KerasBackend:
    """A Keras model (images float32 [0, 1] -> raw outputs) followed by PostProcess.

    Args:
        model: Keras model with a static square input ``[B, S, S, 3]``.
        conf: score threshold; iou: NMS IoU threshold; max_det: N; agnostic: class-agnostic NMS.
        end2end: a one-to-one head's top-k, no NMS (YOLO26; PostProcess end_to_end).
        augment: test-time augmentation: the network runs on the views of
            tfseg.postprocess.tta in one batch, merged into one detection set per image.
    """

    def __init__(self, model, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 agnostic: bool = False, end2end: bool = True, augment: bool = False):
        shape = model.inputs[0].shape
        if shape[1] is None or shape[1] != shape[2]:
            raise ValueError(f"KerasBackend needs a static square input, got {shape}")
        self.image_size = int(shape[1])
        self.model = model
        post = AugmentedPostProcess if augment else PostProcess
        self.post = post(score_threshold=conf, iou_threshold=iou, max_detections=max_det,
                         agnostic=agnostic, end_to_end=end2end)
        self.augment = bool(augment)
        self._detect = tf.function(self._graph, reduce_retracing=True)

    def _graph(self, images):
        # Cast once, compute in float (uint8 arithmetic is not a TFLite builtin).
        images = tf.cast(images, tf.float32) / 255.0
        raw = self.model(self.post.views(images) if self.augment else images, training=False)
        return self.post(raw)

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._detect(tf.constant(images, tf.uint8)).items()}


# SavedModel and TFLite backends (added by the export stage). They read what the export
# wrote (tfseg.export: signatures "serving_pixels" and "detect"), so predict runs the very
# files users deploy; they depend on TensorFlow / ai-edge-litert only, not on tfseg.export.

class _WithoutCustomGradientWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "unsaved custom gradients" not in record.getMessage()


@contextlib.contextmanager
def without_custom_gradient_warnings():
    """Within it, TensorFlow's loader does not warn, once per function of a tfseg SavedModel
    it loads (``tf.saved_model.load``, the TFLite converter), that the function has "unsaved
    custom gradients": the export leaves gradient functions out on purpose (inference
    files: tfseg.export.savedmodel), so the warning tells the user nothing. Every other
    log line passes."""
    absl_logger, quiet = logging.getLogger("absl"), _WithoutCustomGradientWarnings()
    absl_logger.addFilter(quiet)
    try:
        yield
    finally:
        absl_logger.removeFilter(quiet)


def load_savedmodel(path):
    """``tf.saved_model.load`` of a tfseg SavedModel (without_custom_gradient_warnings)."""
    with without_custom_gradient_warnings():
        return tf.saved_model.load(str(path))


class SavedModelBackend:
    """A tfseg SavedModel's ``serving_pixels`` signature (letterboxed uint8 -> DETECTIONS).

    Args:
        path: the version folder (``<name>/<version>``) holding saved_model.pb.
        signature: the signature to call.

    Thresholds and N are those chosen at export time.
    """

    def __init__(self, path, signature: str = "serving_pixels"):
        loaded = load_savedmodel(path)
        self._loaded = loaded  # keep the trackable alive with its function
        self._fn = loaded.signatures[signature]
        spec = self._fn.structured_input_signature[1]
        shape = next(iter(spec.values())).shape
        self.image_size = int(shape[1])
        self._input = next(iter(spec))
        self.num_classes = None  # not stored in the graph: read the export's metadata.json

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        out = self._fn(**{self._input: tf.constant(images, tf.uint8)})
        return {k: v.numpy() for k, v in out.items() if k != "letterbox"}


class TFLiteBackend:
    """An end-to-end .tflite (signature ``detect``) run by ai-edge-litert's signature runner.

    Outputs are read by name (the flatbuffer's output order differs from the signature's),
    and the boxes are turned back from normalized [ymin, xmin, ymax, xmax] into the
    contract's xyxy input pixels. The file takes one image at a time; a batch is looped.

    A signature runner must be fed every input: the run-time thresholds of the file
    (score_threshold, iou_threshold, max_detections, shape [1] each) get the values given
    here, -1 (the export's own) for those not given.

    Args:
        path: the .tflite file.
        num_threads: CPU threads for the interpreter.
        signature: signature key.
        thresholds: run-time values by input name, e.g. ``{"score_threshold": 0.5}``.
    """

    def __init__(self, path, num_threads: int = 2, signature: str = "detect",
                 thresholds: dict[str, float] | None = None):
        interpreter_class = litert_interpreter("running a .tflite file")
        self._interpreter = interpreter_class(model_path=str(path), num_threads=num_threads)
        self._runner = self._interpreter.get_signature_runner(signature)
        details = self._runner.get_input_details()
        self._input = next(name for name, d in details.items() if len(d["shape"]) == 4)
        self._thresholds = {name: np.array([(thresholds or {}).get(name, -1)], d["dtype"])
                            for name, d in details.items() if name != self._input}
        self.image_size = int(details[self._input]["shape"][1])
        self.num_classes = None  # in the file's tfseg_metadata (tfseg.export.metadata)

    def _one(self, image: np.ndarray) -> dict[str, np.ndarray]:
        out = self._runner(**{self._input: image[None]}, **self._thresholds)
        mask_key = "box_masks" if "box_masks" in out else "masks"
        if mask_key not in out:
            raise ValueError("this .tflite has no masks (exported with export.standard_outputs="
                             "true, for the TFLite object detectors): predict needs a file "
                             "exported without it")
        # [ymin, xmin, ymax, xmax] -> [xmin, ymin, xmax, ymax]: the same pair swap both ways.
        boxes = tf.gather(tf.constant(out["boxes"]), [1, 0, 3, 2], axis=-1).numpy()
        return {"boxes": boxes * float(self.image_size), "scores": out["scores"],
                "classes": out["classes"].astype(np.int32), mask_key: out[mask_key],
                "num_detections": out["num_detections"].astype(np.int32)}

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        parts = [self._one(np.asarray(image, np.uint8)) for image in images]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
