"""The YOLOv8, YOLO11 and YOLO26 backbones: stem, four stride-2 stages, SPPF (and C2PSA for
11 and 26).

Base channels and repeats are the published layouts at width 1.0 and depth 1.0; the
ModelSpec scales them. Each function adds named layers to a functional graph and returns
the features the neck reads.
"""

from __future__ import annotations

from tfseg.model.attention import C2PSA
from tfseg.model.layers import C2f, C3k2, ConvBNSiLU, SPPF
from tfseg.model.scales import ModelSpec


def yolov8_backbone(images, spec: ModelSpec) -> dict:
    """YOLOv8: Conv, Conv, then (Conv stride 2, C2f) per stage, SPPF at the end.

    Args:
        images: ``[B, S, S, 3]`` KerasTensor.
        spec: the model's scale.

    Returns:
        ``{"p3": [B, S/8, S/8, c3], "p4": [B, S/16, S/16, c4], "p5": [B, S/32, S/32, c5]}``.
    """
    ch, rep = spec.channels, spec.repeats
    x = ConvBNSiLU(ch(64), 3, 2, name="stem")(images)  # stride 2
    x = ConvBNSiLU(ch(128), 3, 2, name="down2")(x)  # stride 4
    x = C2f(ch(128), rep(3), shortcut=True, name="stage2")(x)
    x = ConvBNSiLU(ch(256), 3, 2, name="down3")(x)  # stride 8
    p3 = C2f(ch(256), rep(6), shortcut=True, name="stage3")(x)
    x = ConvBNSiLU(ch(512), 3, 2, name="down4")(p3)  # stride 16
    p4 = C2f(ch(512), rep(6), shortcut=True, name="stage4")(x)
    x = ConvBNSiLU(ch(1024), 3, 2, name="down5")(p4)  # stride 32
    x = C2f(ch(1024), rep(3), shortcut=True, name="stage5")(x)
    p5 = SPPF(ch(1024), ch(1024) // 2, name="sppf")(x)
    return {"p3": p3, "p4": p4, "p5": p5}


def _c3k2_backbone(images, spec: ModelSpec, sppf: SPPF) -> dict:
    """The C3k2 backbone of YOLO11 and YOLO26, around the given SPPF block."""
    ch, rep = spec.channels, spec.repeats
    x = ConvBNSiLU(ch(64), 3, 2, name="stem")(images)
    x = ConvBNSiLU(ch(128), 3, 2, name="down2")(x)
    x = C3k2(ch(256), rep(2), c3k=spec.c3k, expansion=0.25, name="stage2")(x)
    x = ConvBNSiLU(ch(256), 3, 2, name="down3")(x)
    p3 = C3k2(ch(512), rep(2), c3k=spec.c3k, expansion=0.25, name="stage3")(x)
    x = ConvBNSiLU(ch(512), 3, 2, name="down4")(p3)
    p4 = C3k2(ch(512), rep(2), c3k=True, name="stage4")(x)
    x = ConvBNSiLU(ch(1024), 3, 2, name="down5")(p4)
    x = C3k2(ch(1024), rep(2), c3k=True, name="stage5")(x)
    x = sppf(x)
    p5 = C2PSA(ch(1024), rep(2), name="c2psa")(x)
    return {"p3": p3, "p4": p4, "p5": p5}


def yolo11_backbone(images, spec: ModelSpec) -> dict:
    """YOLO11: like YOLOv8 with C3k2 stages (narrow ones at strides 4 and 8) and C2PSA.

    Args:
        images: ``[B, S, S, 3]`` KerasTensor.
        spec: the model's scale (``spec.c3k`` switches C3k inner blocks on everywhere).

    Returns:
        ``{"p3", "p4", "p5"}`` as in :func:`yolov8_backbone`.
    """
    c5 = spec.channels(1024)
    return _c3k2_backbone(images, spec, SPPF(c5, c5 // 2, name="sppf"))


def yolo26_backbone(images, spec: ModelSpec) -> dict:
    """YOLO26: YOLO11's backbone with a residual SPPF whose first 1x1 conv has no SiLU.

    Args and returns as :func:`yolo11_backbone`.
    """
    c5 = spec.channels(1024)
    sppf = SPPF(c5, c5 // 2, residual=True, hidden_activation=False, name="sppf")
    return _c3k2_backbone(images, spec, sppf)
