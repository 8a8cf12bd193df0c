"""Post-processing, written once: raw outputs -> detections (graph) -> original image (host).

Graph side (TF ops, exported): :class:`PostProcess` composing ``decode``, ``nms``, ``masks``.
Host side (numpy, cv2, pycocotools): :mod:`tfseg.postprocess.host`.
"""

from tfseg.postprocess.layer import PostProcess

__all__ = ["PostProcess"]
