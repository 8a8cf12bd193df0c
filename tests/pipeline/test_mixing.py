"""Mixup and cutmix on painted samples, and the mixing steps inside build_dataset."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.mixing_helpers import (BACKGROUND, assert_masks_follow_pixels, colour,
                                     painted_sample)
from tfseg.pipeline.dataset import build_dataset
from tfseg.pipeline.mixing import (blend, cutmix_rectangle, mix_sample, mixup_ratio,
                                   paste_rectangle, random_cutmix)
from tfseg.pipeline.targets import to_targets

BASE = [("rect", 2, 2, 20, 20), ("disc", 34, 34, 8), ("rect", 40, 2, 46, 10)]
OTHER = [("disc", 12, 36, 9), ("rect", 26, 4, 38, 22)]


def test_mixup_blends_pixels_and_keeps_every_mask_whole():
    base, other = painted_sample(48, BASE), painted_sample(48, OTHER, first_class=100)
    out = blend(base, other, 0.25)
    expected = np.round(0.25 * base["image"].numpy() + 0.75 * other["image"].numpy())
    np.testing.assert_array_equal(out["image"], expected.astype(np.uint8))
    np.testing.assert_array_equal(out["classes"], [0, 1, 2, 100, 101])
    np.testing.assert_array_equal(out["masks"], np.concatenate([base["masks"], other["masks"]]))
    np.testing.assert_array_equal(out["boxes"], np.concatenate([base["boxes"], other["boxes"]]))


def test_mixup_ratio_follows_beta_32_32():
    ratios = np.array([float(mixup_ratio(tf.constant([i, 7]))) for i in range(200)])
    # Beta(32, 32): mean 1/2, standard deviation 1 / (2 sqrt(65)) ~ 0.062
    assert abs(ratios.mean() - 0.5) < 0.02 and 0.045 < ratios.std() < 0.08
    assert ((ratios > 0.25) & (ratios < 0.75)).all()


def test_cutmix_rectangle_cuts_covered_masks_and_keeps_visible_partners():
    base, other = painted_sample(48, BASE), painted_sample(48, OTHER, first_class=100)
    # Covers instance 2 entirely, half of instance 0, and the partner's rectangle in part.
    out = paste_rectangle(base, other, tf.constant([10, 0, 48, 12]))
    np.testing.assert_array_equal(np.sort(out["classes"]), [0, 1, 101])
    masks = dict(zip(out["classes"].numpy(), out["masks"].numpy()))
    assert masks[0].sum() == 18 * 18 - 10 * 10  # its top-right 10 x 10 went to the partner
    assert masks[101].sum() == 12 * 8  # rows 4..11 of the partner's 12-wide rectangle
    assert_masks_follow_pixels(out)
    # Outside the rectangle the base's pixels stay, inside the partner's show.
    image = out["image"].numpy()
    np.testing.assert_array_equal(image[:12, 10:], other["image"].numpy()[:12, 10:])
    np.testing.assert_array_equal(image[12:], base["image"].numpy()[12:])


def test_cutmix_picks_a_free_rectangle_or_none():
    boxes = tf.constant([[0.0, 0.0, 10.0, 10.0]])
    for i in range(20):
        rectangle, found = cutmix_rectangle(tf.constant([i, 3]), 64, boxes)
        if found:
            x1, y1, x2, y2 = rectangle.numpy()
            assert x1 >= 10 or y1 >= 10 or x2 <= 0 or y2 <= 0 or x1 == x2 or y1 == y2
    everything = tf.constant([[0.0, 0.0, 64.0, 64.0]])
    base, other = painted_sample(64, [("rect", 0, 0, 64, 64)]), painted_sample(64, OTHER, 100)
    _, found = cutmix_rectangle(tf.constant([1, 1]), 64, everything)
    assert not found
    out = random_cutmix(base, other, tf.constant([1, 1]), 64)  # nothing free: unchanged
    np.testing.assert_array_equal(out["image"], base["image"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_cutmix_masks_follow_pixels(seed):
    base, other = painted_sample(48, BASE), painted_sample(48, OTHER, first_class=100)
    assert_masks_follow_pixels(random_cutmix(base, other, tf.constant([seed, 5]), 48))


def test_zero_probabilities_are_the_identity():
    sample = painted_sample(48, BASE)

    def partner(draw):
        raise AssertionError("no partner is drawn when nothing mixes")

    out = mix_sample(sample, partner, tf.constant(3, tf.int64), 0, 48, mixup=0.0, cutmix=0.0,
                     copy_paste=0.0, copy_paste_mode="mixup")
    for key in ("image", "masks", "boxes", "classes"):
        np.testing.assert_array_equal(out[key], sample[key])


def test_instances_beyond_m_after_mixup_are_counted():
    many = [("rect", 4 * k, 0, 4 * k + 3, 3 + k) for k in range(6)]
    out = blend(painted_sample(32, many), painted_sample(32, many, first_class=100), 0.5)
    _, targets = to_targets(out, 32, 8)
    assert int(targets["dropped"]) == 4
    assert int((targets["classes"].numpy() >= 0).sum()) == 8


def test_mixing_is_deterministic_under_its_draw():
    base = painted_sample(48, BASE)

    def partner(draw):  # a partner that depends on its draw, as the pipeline's does
        shift = tf.cast(tf.math.floormod(draw, 8), tf.int32)
        other = painted_sample(48, OTHER, first_class=100)
        return dict(other, image=tf.roll(other["image"], shift, 1),
                    masks=tf.roll(other["masks"], shift, 2), boxes=other["boxes"] + tf.cast(
                        tf.stack([shift, 0, shift, 0]), tf.float32))

    def run(draw, seed):
        return mix_sample(base, partner, tf.constant(draw, tf.int64), seed, 48, mixup=0.5,
                          cutmix=0.5, copy_paste=0.5, copy_paste_mode="mixup")

    outputs = [run(d, s) for d, s in ((1, 0), (1, 0), (2, 0), (1, 9), (3, 0), (4, 0))]
    for key in ("image", "masks", "boxes", "classes"):
        np.testing.assert_array_equal(outputs[0][key], outputs[1][key])
    assert len({outputs[k]["image"].numpy().tobytes() for k in (0, 2, 3, 4, 5)}) > 1


def test_mixing_in_the_pipeline_keeps_the_contract(records_dataset, varied_records):
    # Without mosaic (groups of 1 + 1 partner): the same split of a group as with it, less to
    # trace. Both steps fire on every sample; the steps themselves are tested above.
    dataset = build_dataset(records_dataset(varied_records(6)), "train", 64, 4, 30, seed=5,
                            mosaic_p=0.0, mixup=1.0, cutmix=1.0)
    batches = [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(1)]
    assert len(batches) == 1
    for images, targets in batches:
        assert images.shape == (4, 64, 64, 3) and targets["masks"].shape == (4, 30, 16, 16)
        valid = targets["classes"] >= 0
        assert (targets["boxes"][valid][:, 2:] > targets["boxes"][valid][:, :2]).all()
        assert (targets["masks"][valid].reshape(int(valid.sum()), -1).max(axis=1) <= 1).all()


def test_painted_colours_stay_distinct():
    colours = {tuple(colour(c)) for c in list(range(10)) + list(range(100, 110))}
    assert len(colours) == 20 and (BACKGROUND,) * 3 not in colours
