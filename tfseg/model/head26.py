"""YOLO26's segmentation head: one-to-many and one-to-one branches over a multi-scale Proto.

As published for YOLO26-seg: boxes are plain distances (``reg_max = 1``, no DFL), and a
second, identically shaped set of box / class / coefficient branches (the one-to-one head)
is trained to give one box per object, so inference needs no NMS. The one-to-one branches
read the neck's features through a stop-gradient: they learn on top of the features the
one-to-many head trains, without pulling on them (a no-op at inference). The prototypes come
from all three levels, fused at stride 8, and a small semantic branch beside them predicts
per-class logits at stride 8 (a training-only auxiliary target; exports leave it out).

Outputs (tfseg/contracts.py, RAW_OUTPUTS and END_TO_END_OUTPUTS): the one-to-many keys of
every family, the one-to-one keys with the ``o2o_`` prefix, and ``semantic_logits``.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from tfseg.model.head import Proto, SegmentHead
from tfseg.model.layers import Block, ConvBNSiLU, NearestUpsample2x, torch_like_initializer


@keras.saving.register_keras_serializable(package="tfseg")
class MultiScaleProto(Block):
    """Prototypes from P3, P4 and P5, and the semantic logits of the fused stride-8 features.

    P4 and P5 go through a 1x1 conv to P3's channels, are upsampled (nearest) to stride 8 and
    added to P3; a 3x3 conv then feeds the usual Proto (3x3, 2x transposed conv, 3x3, 1x1).
    The semantic branch reads the same sum: two 3x3 convs and a 1x1 conv with bias.

    Args:
        level_channels: channels of P3, P4, P5.
        hidden: hidden channels of the fuse conv, Proto and the semantic branch.
        num_masks: prototypes out.
        num_classes: semantic classes out.

    Inputs ``[p3, p4, p5]`` -> (prototypes ``[B, S/4, S/4, num_masks]``,
    semantic logits ``[B, S/8, S/8, num_classes]``).
    """

    def __init__(self, level_channels: list[int], hidden: int, num_masks: int,
                 num_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.level_channels, self.hidden = list(level_channels), hidden
        self.num_masks, self.num_classes = num_masks, num_classes
        first = self.level_channels[0]
        self.refine = [ConvBNSiLU(first, 1, name=f"refine{i}")
                       for i in range(len(self.level_channels) - 1)]
        self.upsample = NearestUpsample2x(name="up")
        self.fuse = ConvBNSiLU(hidden, 3, name="fuse")
        self.proto = Proto(hidden, num_masks, name="proto")
        self.semantic = [ConvBNSiLU(hidden, 3, name="semantic0"),
                         ConvBNSiLU(hidden, 3, name="semantic1")]
        self.semantic_predict = layers.Conv2D(num_classes, 1, name="semantic_predict",
                                              kernel_initializer=torch_like_initializer())

    def call(self, features, training=None):
        fused = features[0]  # [B, S/8, S/8, c3]
        for level, (refine, x) in enumerate(zip(self.refine, features[1:]), start=1):
            x = refine(x, training=training)  # [B, S/8/2^level, ..., c3]
            for _ in range(level):  # nearest 2^level as repeated 2x: same pixels
                x = self.upsample(x)
            fused = fused + x
        prototypes = self.proto(self.fuse(fused, training=training), training=training)
        semantic = fused
        for conv in self.semantic:
            semantic = conv(semantic, training=training)
        return prototypes, self.semantic_predict(semantic)

    def get_config(self):
        return {**super().get_config(), "level_channels": self.level_channels,
                "hidden": self.hidden, "num_masks": self.num_masks,
                "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="tfseg")
class DualSegmentHead(SegmentHead):
    """SegmentHead with a one-to-one copy of its branches and a MultiScaleProto.

    Args: those of SegmentHead (YOLO26 uses ``reg_max=1`` and the lightweight class branch).

    Inputs: ``[p3, p4, p5]`` NHWC. Returns a dict: box_logits ``[B, A, 4 * reg_max]``,
    class_logits ``[B, A, C]``, mask_coefficients ``[B, A, num_masks]``, prototypes
    ``[B, S/4, S/4, num_masks]`` (one-to-many; prototypes shared), o2o_box_logits,
    o2o_class_logits, o2o_mask_coefficients (one-to-one, same shapes) and semantic_logits
    ``[B, S/8, S/8, C]``.
    """

    BOX_BIAS = 2.0  # initial distance of 2 strides per side (reg_max = 1: plain distances)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        (self.o2o_box_branches, self.o2o_class_branches,
         self.o2o_mask_branches) = self._branches("o2o_")

    def _make_proto(self) -> layers.Layer:
        return MultiScaleProto(self.level_channels, self.proto_channels, self.num_masks,
                               self.num_classes, name="proto")

    def call(self, features, training=None):
        detached = [ops.stop_gradient(f) for f in features]
        prototypes, semantic = self.proto(features, training=training)
        outputs = {
            "box_logits": self._run(self.box_branches, features, training),
            "class_logits": self._run(self.class_branches, features, training),
            "mask_coefficients": self._run(self.mask_branches, features, training),
            "prototypes": prototypes,
            "o2o_box_logits": self._run(self.o2o_box_branches, detached, training),
            "o2o_class_logits": self._run(self.o2o_class_branches, detached, training),
            "o2o_mask_coefficients": self._run(self.o2o_mask_branches, detached, training),
            "semantic_logits": semantic,
        }
        return {name: ops.cast(value, "float32") for name, value in outputs.items()}
