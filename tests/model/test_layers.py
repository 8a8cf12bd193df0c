"""Blocks of tfseg.model.layers / head: padding, BN conventions, bias priors, round trips."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tfseg.model.head import HeadBranch, Proto, SegmentHead, class_bias_prior
from tfseg.model.attention import C2PSA, Attention, PSABlock
from tfseg.model.layers import C2f, C3k, C3k2, SPPF, Bottleneck, ConvBNSiLU


def _identity_bn(layer: ConvBNSiLU) -> None:
    """BN that passes values through: gamma 1, beta 0, mean 0, var + eps = 1."""
    layer.bn.moving_variance.assign(np.full(layer.bn.moving_variance.shape, 1 - 1e-3, np.float32))


def test_stride2_conv_pads_one_pixel_on_every_side():
    # A 3x3 all-ones kernel at stride 2 over a 4x4 image of ones: with the reference's
    # symmetric padding, output (0,0) sees a 2x2 patch of the image (4), (0,1) a 2x3 (6), (1,1) 3x3 (9).
    # Keras "same" would pad only after and give 9 at (0,0).
    layer = ConvBNSiLU(1, 3, 2, activation=False)
    layer(np.zeros((1, 4, 4, 1), np.float32))
    layer.conv.kernel.assign(np.ones((3, 3, 1, 1), np.float32))
    _identity_bn(layer)
    out = np.asarray(layer(np.ones((1, 4, 4, 1), np.float32)))[0, :, :, 0]
    np.testing.assert_allclose(out, [[4, 6], [6, 9]], rtol=1e-5)


def test_conv_bn_silu_uses_reference_bn_conventions_and_silu():
    layer = ConvBNSiLU(2, 1)
    layer(np.zeros((1, 2, 2, 1), np.float32))
    assert layer.bn.epsilon == pytest.approx(1e-3) and layer.bn.momentum == pytest.approx(0.97)
    layer.conv.kernel.assign(np.array([[[[1.0, -2.0]]]], np.float32))
    _identity_bn(layer)
    out = np.asarray(layer(np.full((1, 1, 1, 1), 1.5, np.float32)))[0, 0, 0]
    silu = lambda v: v / (1 + math.exp(-v))  # noqa: E731
    np.testing.assert_allclose(out, [silu(1.5), silu(-3.0)], rtol=1e-5)


def test_sppf_pooling_ignores_padding_like_minus_infinity_padding():
    # All-negative features: zero padding would make border maxima 0; the reference pads
    # with -inf, so every pooled value stays the (only) input value.
    layer = SPPF(1, 1)
    layer(np.zeros((1, 6, 6, 1), np.float32))
    pooled = np.asarray(layer.pool(np.full((1, 6, 6, 1), -3.0, np.float32)))
    np.testing.assert_array_equal(pooled, np.full((1, 6, 6, 1), -3.0))


def test_class_and_box_bias_priors():
    # log(5 / C / (640 / stride)^2): C = 3 at stride 8 -> log(5 / 3 / 6400) = -8.2532
    assert class_bias_prior(3, 8) == pytest.approx(-8.25316, abs=1e-4)
    head = SegmentHead(3, [16, 32, 64], proto_channels=16)
    head([np.zeros((1, 8, 8, 16), np.float32), np.zeros((1, 4, 4, 32), np.float32),
          np.zeros((1, 2, 2, 64), np.float32)])
    for branch, stride in zip(head.class_branches, (8, 16, 32)):
        np.testing.assert_allclose(branch.predict.bias, math.log(5 / 3 / (640 / stride) ** 2),
                                   rtol=1e-6)
    for branch in head.box_branches:
        np.testing.assert_array_equal(branch.predict.bias, np.ones(64))


def test_attention_matches_the_formula_in_numpy():
    # One head over 4 pixels with identity-like BN: softmax(q^T k * scale) applied to v,
    # plus the depthwise positional term, then the projection.
    layer = Attention(dim=4, num_heads=1)
    x = np.random.default_rng(0).normal(size=(1, 2, 2, 4)).astype(np.float32)
    layer(x)
    for conv in (layer.qkv, layer.proj, layer.pe):
        _identity_bn(conv)
    qkv_w = layer.qkv.conv.kernel.numpy()[0, 0]  # [4, 2 + 2 + 4]
    proj_w = layer.proj.conv.kernel.numpy()[0, 0]
    pe_w = layer.pe.conv.kernel.numpy()[:, :, :, 0]  # [3, 3, 4]
    flat = x.reshape(4, 4)
    qkv = flat @ qkv_w
    q, k, v = qkv[:, :2], qkv[:, 2:4], qkv[:, 4:]
    scores = q @ k.T * 2 ** -0.5
    weights = np.exp(scores - scores.max(1, keepdims=True))
    weights /= weights.sum(1, keepdims=True)
    padded = np.pad(v.reshape(2, 2, 4), ((1, 1), (1, 1), (0, 0)))
    pe = np.stack([[np.sum(padded[r:r + 3, c:c + 3] * pe_w, axis=(0, 1)) for c in range(2)]
                   for r in range(2)]).reshape(4, 4)
    expected = ((weights @ v) + pe) @ proj_w
    np.testing.assert_allclose(np.asarray(layer(x)).reshape(4, 4), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [
    lambda: ConvBNSiLU(8, 3, 2), lambda: ConvBNSiLU(0, 3, depthwise=True, activation=False),
    lambda: Bottleneck(8, 4), lambda: C2f(8, 2, shortcut=True), lambda: C3k(8, 2),
    lambda: C3k2(8, 1, c3k=True), lambda: C3k2(8, 1, c3k=False, expansion=0.25),
    lambda: SPPF(8, 4), lambda: PSABlock(8, 1), lambda: C2PSA(8, 1),
    lambda: HeadBranch(8, 5, lightweight=True, bias_init=-2.0), lambda: Proto(8, 4),
], ids=["conv", "dwconv", "bottleneck", "c2f", "c3k", "c3k2_c3k", "c3k2", "sppf", "psa",
        "c2psa", "branch", "proto"])
def test_layer_config_and_keras_file_round_trip(make, tmp_path):
    x = np.random.default_rng(1).uniform(size=(2, 8, 8, 8)).astype(np.float32)
    layer = make()
    inputs = keras.Input((8, 8, 8))
    model = keras.Model(inputs, layer(inputs))
    for w in model.weights:  # non-default statistics so a dropped weight shows
        w.assign(np.random.default_rng(2).uniform(0.5, 1.0, w.shape).astype(np.float32))
    expected = np.asarray(model(x))
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    path = tmp_path / "layer.keras"
    model.save(path)
    np.testing.assert_allclose(np.asarray(keras.saving.load_model(path)(x)), expected, rtol=1e-6)


def test_nearest_upsample_repeats_every_pixel_twice_per_axis():
    from tfseg.model.layers import NearestUpsample2x

    x = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)
    expected = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_array_equal(np.asarray(NearestUpsample2x()(x)), expected)


def test_building_a_model_traces_each_block_once_and_a_direct_build_still_builds_inside(
        monkeypatch):
    """The functional model's symbolic call builds a block's inner layers, so the block's own
    build does not trace it first; ``build(shape)`` alone (as loading does) still does."""
    from tfseg.model import build_model

    calls = []
    original = ConvBNSiLU.call

    def counted(self, *args, **kwargs):
        calls.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConvBNSiLU, "call", counted)
    model = build_model("yolov8-seg-n", 2, 32)
    convs = [layer for layer in _sublayers(model) if isinstance(layer, ConvBNSiLU)]
    assert len(convs) > 50 and all(conv.conv.built and conv.bn.built for conv in convs)
    assert sorted(map(id, calls)) == sorted(map(id, convs))  # each traced exactly once

    block = C2f(8, 2, shortcut=True)
    block.build((None, 8, 8, 8))
    assert block.built and all(layer.built for layer in _sublayers(block))
    inner = [layer for layer in _sublayers(block) if isinstance(layer, ConvBNSiLU)]
    assert len(inner) == 6  # cv1, cv2 and two bottlenecks of two
    # kernel, then the batch-norm's scale, offset, mean and variance of each
    assert len(block.weights) == 5 * len(inner)


def _sublayers(layer) -> list:
    return list(layer._flatten_layers(include_self=False, recursive=True))
