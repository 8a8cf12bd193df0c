"""Backends: letterboxed uint8 images -> the DETECTIONS contract, whatever runs the network.

Every backend has ``image_size`` (S) and ``detect(images)`` taking ``[B, S, S, 3]`` uint8
RGB and returning numpy arrays of the DETECTIONS contract (tfseg/contracts.py): boxes
``[B, N, 4]`` xyxy input pixels, scores ``[B, N]``, classes ``[B, N]``, masks
``[B, N, S/4, S/4]``, num_detections ``[B]``. The Keras backend is here; SavedModel and
TFLite backends (added by the export stage) implement the same two members.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import tensorflow as tf

from tfseg.postprocess import PostProcess


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
    """

    def __init__(self, model, conf: float = 0.25, iou: float = 0.7, max_det: int = 300,
                 agnostic: bool = False):
        shape = model.inputs[0].shape
        if shape[1] is None or shape[1] != shape[2]:
            raise ValueError(f"KerasBackend needs a static square input, got {shape}")
        self.image_size = int(shape[1])
        self.model = model
        self.post = PostProcess(conf, iou, max_det, agnostic)
        self._detect = tf.function(self._graph, reduce_retracing=True)

    def _graph(self, images):
        # Cast once, compute in float (uint8 arithmetic is not a TFLite builtin).
        raw = self.model(tf.cast(images, tf.float32) / 255.0, training=False)
        return self.post(raw)

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._detect(tf.constant(images, tf.uint8)).items()}
