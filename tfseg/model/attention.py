"""Attention blocks of YOLO11 and YOLO26: PSA attention, C2PSA, and C3k2 with attention.

Split from layers.py (which holds the convolutional blocks these build on). YOLO11 uses
C2PSA after SPPF; YOLO26 also ends its neck with a C3k2 whose inner blocks are a Bottleneck
followed by a PSABlock.
"""

from __future__ import annotations

import keras
from keras import ops

from tfseg.model.layers import Block, Bottleneck, C3k2, ConvBNSiLU


@keras.saving.register_keras_serializable(package="tfseg")
class Attention(Block):
    """Multi-head self-attention over the pixels of a feature map, plus a depthwise 3x3
    positional term on the values (YOLO11's PSA attention).

    Per head: keys and queries have ``key_dim = head_dim * attn_ratio`` channels, values
    ``head_dim = dim / num_heads``. One 1x1 conv makes q, k, v, laid out per head as
    [q (key_dim), k (key_dim), v (head_dim)], the reference's channel order.

    Args:
        dim: input and output channels.
        num_heads: attention heads.
        attn_ratio: key_dim / head_dim.

    Input ``[B, H, W, dim]`` -> ``[B, H, W, dim]``.
    """

    def __init__(self, dim: int, num_heads: int, attn_ratio: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads, self.attn_ratio = dim, num_heads, attn_ratio
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        qkv_channels = dim + 2 * self.key_dim * num_heads
        self.qkv = ConvBNSiLU(qkv_channels, 1, activation=False, name="qkv")
        self.proj = ConvBNSiLU(dim, 1, activation=False, name="proj")
        self.pe = ConvBNSiLU(dim, 3, depthwise=True, activation=False, name="pe")

    def call(self, x, training=None):
        # Static sizes where known (exports see constants), run-time ones otherwise
        # (multi-scale training traces one step for every size).
        height, width = ops.shape(x)[1], ops.shape(x)[2]
        pixels = height * width
        qkv = self.qkv(x, training=training)  # [B, H, W, heads * (2 key_dim + head_dim)]
        qkv = ops.reshape(qkv, (-1, pixels, self.num_heads, 2 * self.key_dim + self.head_dim))
        qkv = ops.transpose(qkv, (0, 2, 1, 3))  # [B, heads, N, 2 key_dim + head_dim]
        q = qkv[..., :self.key_dim]
        k = qkv[..., self.key_dim:2 * self.key_dim]
        v = qkv[..., 2 * self.key_dim:]  # [B, heads, N, head_dim]
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) * self.scale  # [B, heads, N, N]
        weights = ops.softmax(scores, axis=-1)
        attended = ops.matmul(weights, v)  # [B, heads, N, head_dim]
        attended = ops.reshape(ops.transpose(attended, (0, 2, 1, 3)), (-1, height, width, self.dim))
        values = ops.reshape(ops.transpose(v, (0, 2, 1, 3)), (-1, height, width, self.dim))
        return self.proj(attended + self.pe(values, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads,
                "attn_ratio": self.attn_ratio}


@keras.saving.register_keras_serializable(package="tfseg")
class PSABlock(Block):
    """Attention then a 1x1 feed-forward pair, each with a residual.

    Args:
        dim: channels.
        num_heads: attention heads.
    """

    def __init__(self, dim: int, num_heads: int, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.num_heads = dim, num_heads
        self.attn = Attention(dim, num_heads, attn_ratio=0.5, name="attn")
        self.ffn1 = ConvBNSiLU(2 * dim, 1, name="ffn1")
        self.ffn2 = ConvBNSiLU(dim, 1, activation=False, name="ffn2")

    def call(self, x, training=None):
        x = x + self.attn(x, training=training)
        return x + self.ffn2(self.ffn1(x, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "num_heads": self.num_heads}


@keras.saving.register_keras_serializable(package="tfseg")
class C2PSA(Block):
    """YOLO11's C2PSA: a 1x1 conv split in two halves, PSA blocks on the second, fused.

    Args:
        filters: input and output channels (the design requires them equal).
        repeats: PSA blocks.
        expansion: half width c = int(filters * expansion); heads = c // 64.
    """

    def __init__(self, filters: int, repeats: int = 1, expansion: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.repeats, self.expansion = filters, repeats, expansion
        self.hidden = int(filters * expansion)
        self.cv1 = ConvBNSiLU(2 * self.hidden, 1, name="cv1")
        self.cv2 = ConvBNSiLU(filters, 1, name="cv2")
        self.blocks = [PSABlock(self.hidden, max(self.hidden // 64, 1), name=f"m{i}")
                       for i in range(repeats)]

    def call(self, x, training=None):
        y = self.cv1(x, training=training)  # [B, H, W, 2c]
        kept, attended = ops.split(y, 2, axis=-1)  # 2 x [B, H, W, c] (see C2f.call)
        for block in self.blocks:
            attended = block(attended, training=training)
        return self.cv2(ops.concatenate([kept, attended], axis=-1), training=training)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "repeats": self.repeats,
                "expansion": self.expansion}


@keras.saving.register_keras_serializable(package="tfseg")
class BottleneckPSA(Block):
    """A residual Bottleneck (half-width hidden) followed by a PSABlock: YOLO26's attention
    inner block of C3k2.

    Args:
        dim: input and output channels; heads = max(dim // 64, 1).

    Input ``[B, H, W, dim]`` -> ``[B, H, W, dim]``.
    """

    def __init__(self, dim: int, **kwargs):
        super().__init__(**kwargs)
        self.dim = dim
        self.bottleneck = Bottleneck(dim, int(dim * 0.5), shortcut=True, name="bottleneck")
        self.psa = PSABlock(dim, max(dim // 64, 1), name="psa")

    def call(self, x, training=None):
        return self.psa(self.bottleneck(x, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "dim": self.dim}


@keras.saving.register_keras_serializable(package="tfseg")
class C3k2PSA(C3k2):
    """C3k2 whose inner blocks are BottleneckPSA (YOLO26's last neck block).

    Args: those of C3k2 (``c3k`` is ignored: attention takes precedence, as published).
    """

    def _inner_block(self, index: int):
        return BottleneckPSA(self.hidden, name=f"m{index}")
