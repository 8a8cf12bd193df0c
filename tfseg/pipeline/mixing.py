"""Mixing two augmented samples: mixup, cutmix and copy-paste, as a dataset transform.

The order follows the reference recipe: mosaic and random affine (mosaic.py) make the base
sample; then copy-paste (copy_paste.py), mixup, cutmix; flips and HSV come after (dataset.py).
(The reference pastes "flip" copies onto the mosaic canvas before its affine; here the affine
is fused with the mosaic, so the paste follows it. The pasted copies are mirror images of the
sample either way.)

The second sample. ``group_samples`` already hands each output a sliding window of
consecutive shuffled samples; when a step needs a partner the window is twice as long, and
the partner is made from its second half (records the base's mosaic does not use) by the same
mosaic-and-affine step with its own draw, only when a step fires (inside ``tf.cond``), as the
reference augments a freshly drawn image to mix. Steps firing on the same sample share its
partner (the reference draws one per step): one more mosaic to build and to trace, not three.
Memory: the window holds 2 x 4 resized images and their bit-packed masks instead of 4.

Probabilities (the reference's meaning of each key):
    mixup: chance of blending with a partner at a Beta(32, 32) ratio; both samples' instances
        are kept, their masks whole.
    cutmix: chance of pasting a rectangle of a partner (side sqrt(1 - u) of the image, u
        uniform, centre uniform). Of 3 drawn rectangles one that touches no base box is used
        (none: no cutmix, as the reference); the partner's instances keep the part of their
        mask inside it (those keeping under MIN_VISIBLE go).
    copy_paste: "flip" mode: the fraction of eligible instances pasted from the mirrored sample
        (every sample); "mixup" mode: also the chance of pasting from a partner.
Close mosaic turns all three off with the mosaic, as the reference does.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from tfseg.pipeline.copy_paste import (box_cover, concat_instances, copy_paste_flip,
                                       copy_paste_from, occlude)

CUTMIX_TRIES = 3  # rectangles drawn per cutmix; the first free of base boxes is used
MIXUP_BETA = 32.0  # the blend ratio's Beta(32, 32): close to 1/2, rarely beyond 0.4..0.6
COPY_PASTE_MODES = ("flip", "mixup")


def blend(base: dict, other: dict, ratio) -> dict:
    """``ratio`` of ``base``'s pixels plus ``1 - ratio`` of ``other``'s; the instances of both.

    Masks are not changed: each instance keeps every pixel it had, now half-transparent.
    """
    with tf.name_scope("mixup"):
        blend = (tf.cast(base["image"], tf.float32) * ratio
                 + tf.cast(other["image"], tf.float32) * (1.0 - ratio))
        image = tf.cast(tf.round(tf.clip_by_value(blend, 0.0, 255.0)), tf.uint8)
        return concat_instances(dict(base, image=image), other)


def mixup_ratio(seed) -> tf.Tensor:
    """``[]`` float32 from Beta(32, 32), as G1 / (G1 + G2) of two Gamma(32) draws."""
    gammas = tf.random.stateless_gamma([2], seed, alpha=MIXUP_BETA)
    return gammas[0] / (gammas[0] + gammas[1])


def rectangle_mask(rectangle: tf.Tensor, size: int) -> tf.Tensor:
    """``[S, S]`` uint8, 1 on the pixels of ``rectangle`` ``[4]`` int32 xyxy."""
    index = tf.range(size)
    rows = (index >= rectangle[1]) & (index < rectangle[3])
    cols = (index >= rectangle[0]) & (index < rectangle[2])
    return tf.cast(rows[:, None] & cols[None, :], tf.uint8)


def paste_rectangle(base: dict, other: dict, rectangle: tf.Tensor) -> dict:
    """``other``'s pixels inside ``rectangle`` ``[4]`` int32 xyxy over ``base``.

    Base instances lose their pixels inside it, the partner's keep only those (``occlude``:
    an instance left under MIN_VISIBLE of its area, or empty, goes); boxes are the masks'.
    """
    with tf.name_scope("cutmix"):
        inside = rectangle_mask(rectangle, base["image"].shape[0] or tf.shape(base["image"])[0])
        image = tf.where(inside[..., None] > 0, other["image"], base["image"])
        return concat_instances(occlude(dict(base, image=image), inside), occlude(other, 1 - inside))


def cutmix_rectangle(seed, size: int, base_boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A random cutmix rectangle that touches none of ``base_boxes`` ``[K, 4]``.

    Returns:
        (``[4]`` int32 xyxy, ``[]`` bool: whether one of the CUTMIX_TRIES draws was free).
    """
    side_seed, centre_seed, pick_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    side = tf.floor(size * tf.sqrt(1.0 - tf.random.stateless_uniform([CUTMIX_TRIES], side_seed)))
    half = tf.cast(side, tf.int32) // 2  # [T]
    centres = tf.random.stateless_uniform([CUTMIX_TRIES, 2], centre_seed, 0, size, tf.int32)
    rectangles = tf.clip_by_value(tf.concat([centres - half[:, None], centres + half[:, None]], 1),
                                  0, size)  # [T, 4]
    touched = tf.reduce_sum(box_cover(tf.cast(rectangles, tf.float32), base_boxes), axis=1)
    free = touched <= 0.0  # [T]
    scores = tf.where(free, tf.random.stateless_uniform([CUTMIX_TRIES], pick_seed), -1.0)
    return tf.gather(rectangles, tf.argmax(scores)), tf.reduce_any(free)


def random_cutmix(base: dict, other: dict, seed, size: int) -> dict:
    """Paste a random free rectangle of ``other`` over ``base`` (unchanged when none is free)."""
    rectangle, found = cutmix_rectangle(seed, size, base["boxes"])
    return tf.cond(found, lambda: paste_rectangle(base, other, rectangle), lambda: dict(base))


def partners_needed(mixup: float = 0.0, cutmix: float = 0.0, copy_paste: float = 0.0,
                    copy_paste_mode: str = "flip") -> bool:
    """Whether a step draws a second sample (so groups must be twice as long)."""
    return mixup > 0 or cutmix > 0 or (copy_paste > 0 and copy_paste_mode == "mixup")


def mix_sample(sample: dict, partner: Callable, draw, seed: int, size: int, mixup: float = 0.0,
               cutmix: float = 0.0, copy_paste: float = 0.0, copy_paste_mode: str = "flip",
               enabled: tf.Variable | None = None) -> dict:
    """Copy-paste, mixup and cutmix on one sample, each with its probability.

    Args:
        sample: the augmented S x S base.
        partner: ``partner(draw) -> sample``: a second augmented sample from an int64 draw,
            called only inside the branch that uses it.
        draw: ``[]`` int64; with ``seed`` it decides every choice here.
        enabled: optional boolean tf.Variable; False turns all three off (close mosaic).
    """
    if copy_paste_mode not in COPY_PASTE_MODES:
        raise ValueError(f"copy_paste_mode must be flip or mixup, got {copy_paste_mode!r}")
    seeds = tf.unstack(tf.random.experimental.stateless_split(
        tf.stack([draw, tf.constant(seed + 3, tf.int64)]), 6))
    on = tf.constant(True) if enabled is None else tf.convert_to_tensor(enabled)
    pasting = copy_paste if copy_paste_mode == "mixup" else 0.0
    fires = [on & (tf.random.stateless_uniform([], seeds[k]) < p) & (p > 0)
             for k, p in enumerate((pasting, mixup, cutmix))]
    if partners_needed(mixup, cutmix, copy_paste, copy_paste_mode):
        draw = tf.random.stateless_uniform([], seeds[3], minval=None, maxval=None, dtype=tf.int64)
        other = tf.cond(tf.reduce_any(tf.stack(fires)), lambda: partner(draw),
                        lambda: dict(sample))  # the sample itself stands in, unused
    if copy_paste > 0 and copy_paste_mode == "flip":
        sample = tf.cond(on, lambda: copy_paste_flip(sample, copy_paste), lambda: dict(sample))
    elif copy_paste > 0:
        sample = tf.cond(fires[0], lambda: copy_paste_from(sample, other, copy_paste),
                         lambda: dict(sample))
    if mixup > 0:
        sample = tf.cond(fires[1], lambda: blend(sample, other, mixup_ratio(seeds[4])),
                         lambda: dict(sample))
    if cutmix > 0:
        sample = tf.cond(fires[2], lambda: random_cutmix(sample, other, seeds[5], size),
                         lambda: dict(sample))
    return sample


def apply_mixing(groups: tf.data.Dataset, seed: int, tiles: int, build: Callable, size: int,
                 enabled: tf.Variable | None = None, **probabilities) -> tf.data.Dataset:
    """Groups -> augmented S x S samples, mixed per ``probabilities``.

    Args:
        groups: from ``mosaic.group_samples`` with ``tiles`` per sample, twice that when
            ``partners_needed(**probabilities)``.
        seed: int; each group draws from ``tf.data.Dataset.random(seed)``, as apply_mosaic.
        tiles: samples per mosaic group (4, or 1 without mosaic).
        build: ``build(group, draw) -> sample`` (mosaic.augment_group with its settings).
        probabilities: mixup, cutmix, copy_paste, copy_paste_mode (see mix_sample).
    """
    def one(group, draw):
        first = {key: value[:tiles] for key, value in group.items()}
        second = {key: value[tiles:] for key, value in group.items()}
        return mix_sample(build(first, draw), lambda d: build(second, d), draw, seed, size,
                          enabled=enabled, **probabilities)

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(groups, draws).map(one, num_parallel_calls=tf.data.AUTOTUNE)
