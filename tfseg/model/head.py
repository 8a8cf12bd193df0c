"""The segmentation head: per-level box / class / mask-coefficient branches and Proto.

Decoupled and anchor-free, as published for YOLOv8 and kept by YOLO11: at each of the
strides 8, 16, 32 three small branches predict DFL box logits (4 * reg_max), class logits
and mask coefficients for every cell; Proto turns the stride-8 features into prototype
masks at stride 4. Outputs are flattened to the raw-output contract (tfseg/contracts.py):
anchors stride 8 first, row-major within a level.
"""

from __future__ import annotations

import math

import keras
from keras import layers, ops

from tfseg.contracts import STRIDES
from tfseg.model.layers import Block, ConvBNSiLU, torch_like_initializer

REFERENCE_INPUT_SIZE = 640  # the class-bias prior is stated for 640-pixel inputs


def class_bias_prior(num_classes: int, stride: int) -> float:
    """Initial class bias: about 5 objects per 640-pixel image spread over C classes and
    all cells of a level, so initial scores start near that prior instead of 0.5.
    """
    return math.log(5.0 / num_classes / (REFERENCE_INPUT_SIZE / stride) ** 2)


@keras.saving.register_keras_serializable(package="tfseg")
class HeadBranch(Block):
    """Two feature convs and a 1x1 prediction conv with bias, for one level.

    Args:
        hidden: channels of the two feature convs.
        outputs: channels of the prediction.
        lightweight: YOLO11's class branch: each feature conv is a depthwise 3x3 followed
            by a pointwise 1x1 (both ConvBNSiLU); otherwise two plain 3x3 ConvBNSiLU.
        bias_init: constant initial bias of the prediction (None: zeros).

    Input ``[B, H, W, Cin]`` -> ``[B, H, W, outputs]``.
    """

    def __init__(self, hidden: int, outputs: int, lightweight: bool = False,
                 bias_init: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.outputs = hidden, outputs
        self.lightweight, self.bias_init = lightweight, bias_init
        if lightweight:
            self.dw1 = ConvBNSiLU(0, 3, depthwise=True, name="dw1")
            self.pw1 = ConvBNSiLU(hidden, 1, name="pw1")
            self.dw2 = ConvBNSiLU(0, 3, depthwise=True, name="dw2")
            self.pw2 = ConvBNSiLU(hidden, 1, name="pw2")
            self.features = [self.dw1, self.pw1, self.dw2, self.pw2]
        else:
            self.cv1 = ConvBNSiLU(hidden, 3, name="cv1")
            self.cv2 = ConvBNSiLU(hidden, 3, name="cv2")
            self.features = [self.cv1, self.cv2]
        bias = (keras.initializers.Zeros() if bias_init is None
                else keras.initializers.Constant(bias_init))
        self.predict = layers.Conv2D(outputs, 1, name="predict", bias_initializer=bias,
                                     kernel_initializer=torch_like_initializer())

    def call(self, x, training=None):
        for layer in self.features:
            x = layer(x, training=training)
        return self.predict(x)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "outputs": self.outputs,
                "lightweight": self.lightweight, "bias_init": self.bias_init}


@keras.saving.register_keras_serializable(package="tfseg")
class Proto(Block):
    """Prototype masks: 3x3 conv, 2x transposed-conv upsampling, 3x3 conv, 1x1 conv.

    Args:
        hidden: channels of the inner convs.
        num_masks: prototypes out.

    Input P3 features ``[B, S/8, S/8, C]`` -> ``[B, S/4, S/4, num_masks]``.
    """

    def __init__(self, hidden: int, num_masks: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.num_masks = hidden, num_masks
        self.cv1 = ConvBNSiLU(hidden, 3, name="cv1")
        # Kernel 2, stride 2, no padding: each input cell paints its own 2x2 output block.
        self.upsample = layers.Conv2DTranspose(hidden, 2, strides=2, padding="valid",
                                               name="upsample",
                                               kernel_initializer=torch_like_initializer())
        self.cv2 = ConvBNSiLU(hidden, 3, name="cv2")
        self.cv3 = ConvBNSiLU(num_masks, 1, name="cv3")

    def call(self, x, training=None):
        x = self.upsample(self.cv1(x, training=training))
        return self.cv3(self.cv2(x, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "num_masks": self.num_masks}


@keras.saving.register_keras_serializable(package="tfseg")
class SegmentHead(Block):
    """Box, class and coefficient branches over three levels, flattened, plus Proto.

    Args:
        num_classes: C.
        level_channels: channels of the P3, P4, P5 inputs (hidden widths derive from
            the P3 channels, as in the published head).
        proto_channels: hidden channels of Proto.
        reg_max: DFL bins per box side.
        num_masks: prototypes and coefficients per anchor.
        lightweight_class_branch: YOLO11's depthwise class branch.

    Inputs: ``[p3, p4, p5]`` NHWC. Returns a dict (the raw-output contract):
        box_logits ``[B, A, 4 * reg_max]``, class_logits ``[B, A, C]``,
        mask_coefficients ``[B, A, num_masks]``, prototypes ``[B, S/4, S/4, num_masks]``.
    """

    def __init__(self, num_classes: int, level_channels: list[int], proto_channels: int,
                 reg_max: int = 16, num_masks: int = 32,
                 lightweight_class_branch: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_classes, self.level_channels = num_classes, list(level_channels)
        self.proto_channels, self.reg_max, self.num_masks = proto_channels, reg_max, num_masks
        self.lightweight_class_branch = lightweight_class_branch
        first = self.level_channels[0]
        box_hidden = max(16, first // 4, 4 * reg_max)
        class_hidden = max(first, min(num_classes, 100))
        mask_hidden = max(first // 4, num_masks)
        self.hidden = {"box": box_hidden, "class": class_hidden, "mask": mask_hidden}
        self.box_branches, self.class_branches, self.mask_branches = self._branches("")
        self.proto = self._make_proto()

    BOX_BIAS = 1.0  # initial box output (the DFL bins start uniform; any constant does)

    def _branches(self, prefix: str) -> tuple[list, list, list]:
        """The box, class and coefficient branches of every level, names prefixed."""
        hidden, levels = self.hidden, range(len(STRIDES))
        box = [HeadBranch(hidden["box"], 4 * self.reg_max, bias_init=self.BOX_BIAS,
                          name=f"{prefix}box{i}") for i in levels]
        cls = [HeadBranch(hidden["class"], self.num_classes,
                          lightweight=self.lightweight_class_branch,
                          bias_init=class_bias_prior(self.num_classes, stride),
                          name=f"{prefix}cls{i}") for i, stride in enumerate(STRIDES)]
        coef = [HeadBranch(hidden["mask"], self.num_masks, name=f"{prefix}coef{i}")
                for i in levels]
        return box, cls, coef

    def _make_proto(self) -> layers.Layer:
        return Proto(self.proto_channels, self.num_masks, name="proto")

    @staticmethod
    def _flatten(levels: list) -> object:
        # each [B, H, W, K] -> [B, H * W, K] (row-major), then stride 8 first: [B, A, K]
        # (static sizes where known, run-time ones under multi-scale training)
        flat = [ops.reshape(x, (-1, ops.shape(x)[1] * ops.shape(x)[2], x.shape[3]))
                for x in levels]
        return ops.concatenate(flat, axis=1)

    def _run(self, branches: list, features: list, training=None):
        """One kind of branch over the levels, flattened: ``[B, A, K]``."""
        return self._flatten([b(f, training=training) for b, f in zip(branches, features)])

    def call(self, features, training=None):
        outputs = {
            "box_logits": self._run(self.box_branches, features, training),
            "class_logits": self._run(self.class_branches, features, training),
            "mask_coefficients": self._run(self.mask_branches, features, training),
            "prototypes": self.proto(features[0], training=training),
        }
        # The contract is float32 even when the layers compute in float16 (mixed precision).
        return {name: ops.cast(value, "float32") for name, value in outputs.items()}

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes,
                "level_channels": self.level_channels, "proto_channels": self.proto_channels,
                "reg_max": self.reg_max, "num_masks": self.num_masks,
                "lightweight_class_branch": self.lightweight_class_branch}
