"""The convolutional building blocks of YOLOv8, YOLO11 and YOLO26, one small Keras layer per
block, NHWC.

Written from the published designs (YOLOv8: C2f, SPPF; YOLO11: C3k2; YOLO26: the residual
SPPF); the attention blocks are in attention.py. Conventions kept for weight parity with
the reference: convolutions without bias followed by batch-norm with PyTorch's eps 1e-3 and
momentum 0.03 (Keras momentum 0.97), SiLU, and symmetric zero padding of k // 2 on every side.
"""

from __future__ import annotations

import keras
from keras import layers, ops

BN_EPSILON = 1e-3
BN_MOMENTUM = 0.97  # Keras keeps `momentum` of the old value: PyTorch momentum 0.03


@keras.saving.register_keras_serializable(package="tfseg")
class FusedBatchNormalization(layers.BatchNormalization):
    """Keras batch-norm whose training step runs TensorFlow's fused kernel.

    Keras 3 computes training-mode batch-norm from separate moments, subtract, rsqrt and
    multiply ops (and as many gradient ops), each a full pass over the activations; the
    fused kernel does the forward in one op and the backward in one. On the 2-core CPU it
    cuts about a tenth of a YOLOv8-seg-n train step. The kernel also updates the moving
    statistics (its ``exponential_avg_factor``), so a layer adds a handful of ops to the
    train step's graph rather than some thirty: the step of a yolov8-seg-n has 66 of them,
    and tracing is paid per op at the start of every run.

    Same variables as Keras' layer, and its outputs and gradients (to float rounding): the
    output uses the biased batch variance. The moving variance follows the unbiased one
    (n / (n - 1) times the biased, n the values per channel), as PyTorch's batch-norm and
    so the reference's training do; Keras' own layer uses the biased one. Inference, frozen
    layers, masks and other backends take Keras' path unchanged (exports see no change).

    Input ``[B, H, W, C]`` (channels last) -> same shape.
    """

    def call(self, inputs, training=None, mask=None):
        fusable = (training and self.trainable and mask is None and not self.synchronized
                   and not self.renorm and len(inputs.shape) == 4
                   and self.axis in (-1, 3) and self.scale and self.center
                   and keras.backend.backend() == "tensorflow")
        if not fusable:
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # the fused kernel has no keras.ops equivalent

        # The kernel takes float32, bfloat16 or float16 activations and always keeps its
        # statistics, scale and offset in float32 (what Keras does by casting up): under a
        # mixed policy the activations go in and come out in half precision, so no float32
        # copy of each activation is made and kept for the backward pass (docs/benchmarks.md's
        # speed section has what that saves).
        x = inputs if inputs.dtype in (tf.float32, tf.bfloat16, tf.float16) else tf.cast(
            inputs, tf.float32)
        # With an averaging factor f the kernel returns the moving statistics moved by f
        # towards the batch's: (1 - f) * moving + f * batch, the variance unbiased.
        y, moving_mean, moving_variance = tf.compat.v1.nn.fused_batch_norm(
            x, tf.cast(self.gamma, tf.float32), tf.cast(self.beta, tf.float32),
            mean=self.moving_mean.value, variance=self.moving_variance.value,
            epsilon=self.epsilon, data_format="NHWC", is_training=True,
            exponential_avg_factor=1.0 - self.momentum)
        self.moving_mean.assign(moving_mean)
        self.moving_variance.assign(moving_variance)
        return tf.cast(y, self.compute_dtype)


def torch_like_initializer() -> keras.initializers.Initializer:
    """PyTorch's default conv init (kaiming uniform, a=sqrt(5)): U(+-1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in",
                                              distribution="uniform")


class Block(layers.Layer):
    """Base of our composite layers: builds the inner layers by tracing ``call`` once on
    symbolic inputs, since their input shapes follow from the call (Keras would otherwise
    mark the layer built with its inner layers unbuilt when a saved model is loaded).

    A block built inside such a trace (a block within a block, or within the model's own
    symbolic call) skips its own: the call that follows its build builds its inner layers
    on their first use. Without the skip every convolution of a block nested d deep was
    traced d times (a YOLO26-seg-n took 15 s to build on 2 cores).

    A block first called on symbolic inputs (the functional model's construction) skips its
    own trace too: Keras' symbolic call traces ``call`` right after the build, and that trace
    builds the inner layers. Tracing in the build as well added about a third to every
    model's build time.
    """

    def __call__(self, *args, **kwargs):
        if not self.built and any(isinstance(x, keras.KerasTensor)
                                  for x in keras.tree.flatten((args, kwargs))):
            self._inner_built_by_call = True
        return super().__call__(*args, **kwargs)

    def build(self, input_shape):
        import tensorflow as tf

        # The trace around this build (or the symbolic call after it) runs call, which builds
        if tf.inside_function() or getattr(self, "_inner_built_by_call", False):
            self.built = True
            return
        def symbolic(shape):
            if isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple)):
                return [symbolic(s) for s in shape]
            return keras.KerasTensor(tuple(shape), dtype=self.compute_dtype)

        self.compute_output_spec(symbolic(input_shape))
        self.built = True


@keras.saving.register_keras_serializable(package="tfseg")
class ConvBNSiLU(Block):
    """Convolution (no bias) -> batch-norm -> SiLU, padded k // 2 on every side.

    Args:
        filters: output channels (ignored with ``depthwise``: output = input channels).
        kernel_size: square kernel size (odd).
        strides: 1 or 2.
        depthwise: one filter per input channel (the reference's DWConv with c1 == c2).
        activation: apply SiLU; False gives conv + BN only (used inside attention).

    Input ``[B, H, W, Cin]`` -> output ``[B, H / strides, W / strides, filters]``.
    """

    def __init__(self, filters: int, kernel_size: int = 1, strides: int = 1,
                 depthwise: bool = False, activation: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.strides = filters, kernel_size, strides
        self.depthwise, self.activation = depthwise, activation
        pad = kernel_size // 2
        # Keras "same" pads asymmetrically when strides > 1 (0 before, 1 after); the
        # reference pads k // 2 on both sides, so pad explicitly and convolve "valid".
        self.pad = layers.ZeroPadding2D(pad, name="pad") if pad and strides > 1 else None
        padding = "valid" if self.pad is not None or pad == 0 else "same"
        if depthwise:
            self.conv = layers.DepthwiseConv2D(kernel_size, strides, padding=padding,
                                               use_bias=False, name="conv",
                                               depthwise_initializer=torch_like_initializer())
        else:
            self.conv = layers.Conv2D(filters, kernel_size, strides, padding=padding,
                                      use_bias=False, name="conv",
                                      kernel_initializer=torch_like_initializer())
        self.bn = FusedBatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="bn")

    def call(self, x, training=None):
        if self.pad is not None:
            x = self.pad(x)
        x = self.bn(self.conv(x), training=training)
        return ops.silu(x) if self.activation else x

    def get_config(self):
        return {**super().get_config(), "filters": self.filters,
                "kernel_size": self.kernel_size, "strides": self.strides,
                "depthwise": self.depthwise, "activation": self.activation}


@keras.saving.register_keras_serializable(package="tfseg")
class Bottleneck(Block):
    """Two 3x3 ConvBNSiLU with an optional residual: ``x + cv2(cv1(x))``.

    Args:
        filters: output channels.
        hidden: channels between the two convolutions.
        shortcut: add the input (only when input channels == filters).
    """

    def __init__(self, filters: int, hidden: int, shortcut: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.hidden, self.shortcut = filters, hidden, shortcut
        self.cv1 = ConvBNSiLU(hidden, 3, name="cv1")
        self.cv2 = ConvBNSiLU(filters, 3, name="cv2")

    def call(self, x, training=None):
        y = self.cv2(self.cv1(x, training=training), training=training)
        add = self.shortcut and x.shape[-1] == self.filters
        return x + y if add else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "hidden": self.hidden,
                "shortcut": self.shortcut}


@keras.saving.register_keras_serializable(package="tfseg")
class C2f(Block):
    """YOLOv8's C2f: split a 1x1 conv in two halves, chain n inner blocks on the second,
    concatenate every intermediate and fuse with a 1x1 conv.

    Args:
        filters: output channels.
        repeats: number of inner blocks n.
        shortcut: residual inside the inner blocks.
        expansion: hidden channels c = int(filters * expansion).

    Input ``[B, H, W, Cin]`` -> ``[B, H, W, filters]``.
    """

    def __init__(self, filters: int, repeats: int = 1, shortcut: bool = False,
                 expansion: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.repeats = filters, repeats
        self.shortcut, self.expansion = shortcut, expansion
        self.hidden = int(filters * expansion)
        self.cv1 = ConvBNSiLU(2 * self.hidden, 1, name="cv1")
        self.cv2 = ConvBNSiLU(filters, 1, name="cv2")
        self.blocks = [self._inner_block(i) for i in range(repeats)]

    def _inner_block(self, index: int) -> layers.Layer:
        # C2f keeps full width inside its bottlenecks (expansion 1.0).
        return Bottleneck(self.hidden, self.hidden, self.shortcut, name=f"m{index}")

    def call(self, x, training=None):
        y = self.cv1(x, training=training)  # [B, H, W, 2c]
        # split, not two slices: the gradient of a split is one concat, that of each slice a
        # full-size zero-padded tensor summed afterwards
        parts = list(ops.split(y, 2, axis=-1))  # 2 x [B, H, W, c]
        for block in self.blocks:
            parts.append(block(parts[-1], training=training))
        return self.cv2(ops.concatenate(parts, axis=-1), training=training)  # from (2 + n) c

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "repeats": self.repeats,
                "shortcut": self.shortcut, "expansion": self.expansion}


@keras.saving.register_keras_serializable(package="tfseg")
class C3k(Block):
    """CSP block with two branches (YOLO11's C3k): ``cv3([blocks(cv1(x)), cv2(x)])``.

    Args:
        filters: output channels.
        repeats: inner bottlenecks (full width, 3x3 kernels).
        shortcut: residual inside the bottlenecks.
        expansion: branch channels int(filters * expansion).
    """

    def __init__(self, filters: int, repeats: int = 2, shortcut: bool = True,
                 expansion: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.repeats = filters, repeats
        self.shortcut, self.expansion = shortcut, expansion
        hidden = int(filters * expansion)
        self.cv1 = ConvBNSiLU(hidden, 1, name="cv1")
        self.cv2 = ConvBNSiLU(hidden, 1, name="cv2")
        self.cv3 = ConvBNSiLU(filters, 1, name="cv3")
        self.blocks = [Bottleneck(hidden, hidden, shortcut, name=f"m{i}") for i in range(repeats)]

    def call(self, x, training=None):
        y = self.cv1(x, training=training)
        for block in self.blocks:
            y = block(y, training=training)
        both = ops.concatenate([y, self.cv2(x, training=training)], axis=-1)
        return self.cv3(both, training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "repeats": self.repeats,
                "shortcut": self.shortcut, "expansion": self.expansion}


@keras.saving.register_keras_serializable(package="tfseg")
class C3k2(C2f):
    """YOLO11's C3k2: C2f whose inner blocks are C3k (``c3k``) or half-width bottlenecks.

    Args (beyond C2f's):
        c3k: inner blocks are C3k with 2 bottlenecks each; otherwise a Bottleneck whose
            hidden width is half of c.
    """

    def __init__(self, filters: int, repeats: int = 1, c3k: bool = False,
                 shortcut: bool = True, expansion: float = 0.5, **kwargs):
        self.c3k = c3k
        super().__init__(filters, repeats, shortcut, expansion, **kwargs)

    def _inner_block(self, index: int) -> layers.Layer:
        if self.c3k:
            return C3k(self.hidden, 2, self.shortcut, name=f"m{index}")
        return Bottleneck(self.hidden, int(self.hidden * 0.5), self.shortcut, name=f"m{index}")

    def get_config(self):
        return {**super().get_config(), "c3k": self.c3k}


@keras.saving.register_keras_serializable(package="tfseg")
class SPPF(Block):
    """Spatial pyramid pooling, fast: three chained 5x5 max-pools, concatenated.

    Stride-1 "same" max-pooling ignores padded cells, like PyTorch's -inf padding.

    Args:
        filters: output channels.
        hidden: channels after the first 1x1 conv (the reference uses input channels // 2).
        pool_size: max-pool kernel size.
        residual: add the input to the output when channels agree (YOLO26).
        hidden_activation: SiLU after the first 1x1 conv (YOLOv8/11); YOLO26 has none.
    """

    def __init__(self, filters: int, hidden: int, pool_size: int = 5, residual: bool = False,
                 hidden_activation: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.hidden, self.pool_size = filters, hidden, pool_size
        self.residual, self.hidden_activation = residual, hidden_activation
        self.cv1 = ConvBNSiLU(hidden, 1, activation=hidden_activation, name="cv1")
        self.cv2 = ConvBNSiLU(filters, 1, name="cv2")
        self.pool = layers.MaxPooling2D(pool_size, strides=1, padding="same", name="pool")

    def call(self, x, training=None):
        parts = [self.cv1(x, training=training)]
        for _ in range(3):
            parts.append(self.pool(parts[-1]))
        y = self.cv2(ops.concatenate(parts, axis=-1), training=training)  # from 4 * hidden
        return x + y if self.residual and x.shape[-1] == self.filters else y

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "hidden": self.hidden,
                "pool_size": self.pool_size, "residual": self.residual,
                "hidden_activation": self.hidden_activation}


@keras.saving.register_keras_serializable(package="tfseg")
class NearestUpsample2x(layers.Layer):
    """2x nearest-neighbour upsampling as one image resize.

    Keras' UpSampling2D repeats rows and columns through rank-5 reshapes and tiles, which the
    TFLite GPU delegate does not run (rank above 4); a nearest resize lowers to
    RESIZE_NEAREST_NEIGHBOR, which it does, and gives the same pixels (output i reads input
    i // 2).
    """

    def call(self, x):
        height, width = x.shape[1], x.shape[2]
        if height is None or width is None:  # sizes known at run time (multi-scale training):
            import tensorflow as tf  # the op Keras' resize calls, which takes a size tensor

            shape = tf.shape(x)
            return tf.image.resize(x, 2 * shape[1:3], method="nearest")
        return ops.image.resize(x, (2 * height, 2 * width), interpolation="nearest",
                                data_format="channels_last")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, None if height is None else 2 * height,
                None if width is None else 2 * width, channels)
