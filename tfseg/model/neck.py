"""PAN-FPN necks: a top-down path (P5 -> P4 -> P3) then a bottom-up path back to P5.

    P5 ─ up ─ cat(P4) ─ block ─ up ─ cat(P3) ─ block ──────────────────── out P3
                         │                      └ down ─ cat ─ block ──── out P4
                         └──────────────────────────────┘      └ down ─ cat(P5) ─ block ─ out P5

YOLOv8 uses C2f blocks without residuals; YOLO11 C3k2 blocks (C3k only in the last one
unless the scale switches it on everywhere); YOLO26 C3k2 blocks with C3k everywhere, the last
one with attention inner blocks instead (C3k2PSA, one repeat).
"""

from __future__ import annotations

from keras import layers

from tfseg.model.attention import C3k2PSA
from tfseg.model.layers import C2f, C3k2, ConvBNSiLU, NearestUpsample2x
from tfseg.model.scales import ModelSpec


def _pan(features: dict, spec: ModelSpec, make_block) -> list:
    """The PAN-FPN wiring shared by both families.

    Args:
        features: ``{"p3", "p4", "p5"}`` backbone outputs.
        spec: the model's scale.
        make_block: ``(base_channels, name, last) -> Layer`` for the fusion blocks.

    Returns:
        ``[P3, P4, P5]`` outputs at strides 8, 16, 32.
    """
    ch = spec.channels
    x = NearestUpsample2x(name="up_p4")(features["p5"])
    x = layers.Concatenate(name="cat_p4")([x, features["p4"]])
    top_down_p4 = make_block(512, "top_down_p4", False)(x)
    x = NearestUpsample2x(name="up_p3")(top_down_p4)
    x = layers.Concatenate(name="cat_p3")([x, features["p3"]])
    out_p3 = make_block(256, "out_p3", False)(x)
    x = ConvBNSiLU(ch(256), 3, 2, name="down_p3")(out_p3)
    x = layers.Concatenate(name="cat_out_p4")([x, top_down_p4])
    out_p4 = make_block(512, "out_p4", False)(x)
    x = ConvBNSiLU(ch(512), 3, 2, name="down_p4")(out_p4)
    x = layers.Concatenate(name="cat_out_p5")([x, features["p5"]])
    out_p5 = make_block(1024, "out_p5", True)(x)
    return [out_p3, out_p4, out_p5]


def yolov8_neck(features: dict, spec: ModelSpec) -> list:
    """YOLOv8's PAN-FPN with C2f blocks (3 base repeats, no residual)."""
    def block(base, name, last):
        return C2f(spec.channels(base), spec.repeats(3), shortcut=False, name=name)
    return _pan(features, spec, block)


def yolo11_neck(features: dict, spec: ModelSpec) -> list:
    """YOLO11's PAN-FPN with C3k2 blocks (2 base repeats; C3k in the P5 block)."""
    def block(base, name, last):
        return C3k2(spec.channels(base), spec.repeats(2), c3k=last or spec.c3k, name=name)
    return _pan(features, spec, block)


def yolo26_neck(features: dict, spec: ModelSpec) -> list:
    """YOLO26's PAN-FPN: C3k2 blocks with C3k (2 base repeats), the P5 block a C3k2PSA."""
    def block(base, name, last):
        if last:
            return C3k2PSA(spec.channels(base), 1, name=name)
        return C3k2(spec.channels(base), spec.repeats(2), c3k=True, name=name)
    return _pan(features, spec, block)
