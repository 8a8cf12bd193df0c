"""Copy-paste: hand-worked choice of what to paste, and masks that follow the pasted pixels."""

import numpy as np
import pytest
import tensorflow as tf

from pipeline.mixing_helpers import assert_masks_follow_pixels, painted_sample
from tfseg.pipeline.copy_paste import (choose_to_paste, copy_paste_flip, copy_paste_from, occlude,
                                       paste_instances)


def test_choice_hand_worked():
    base = tf.constant([[0.0, 0.0, 10.0, 10.0]])  # area 100
    source = tf.constant([[5.0, 0.0, 15.0, 10.0],    # covers 50 of it: not eligible
                          [8.0, 5.0, 20.0, 10.0],    # covers 2 x 5 = 10%
                          [30.0, 30.0, 40.0, 40.0],  # covers nothing
                          [9.0, 9.0, 12.0, 12.0]])   # covers 1%
    np.testing.assert_array_equal(choose_to_paste(source, base, 1.0), [False, True, True, True])
    # round(0.5 * 3) = 2: the two covering least
    np.testing.assert_array_equal(choose_to_paste(source, base, 0.5), [False, False, True, True])
    np.testing.assert_array_equal(choose_to_paste(source, base, 0.0), [False] * 4)
    # An empty base: everything is eligible.
    np.testing.assert_array_equal(choose_to_paste(source, tf.zeros([0, 4]), 1.0), [True] * 4)


def test_fraction_zero_is_the_identity():
    sample = painted_sample(48, [("rect", 2, 2, 12, 20), ("disc", 36, 30, 8)])
    out = copy_paste_flip(sample, 0.0)
    for key in ("image", "masks", "boxes", "classes"):
        np.testing.assert_array_equal(out[key], sample[key])


@pytest.mark.parametrize("shapes", [
    [("rect", 2, 2, 12, 20), ("disc", 36, 30, 8), ("rect", 20, 40, 30, 46)],
    [("disc", 10, 10, 7), ("rect", 30, 30, 40, 44), ("disc", 24, 42, 4), ("rect", 4, 20, 12, 28)],
])
def test_flip_pastes_mirrored_instances_and_masks_follow_pixels(shapes):
    sample = painted_sample(48, shapes)
    out = copy_paste_flip(sample, 1.0)
    assert out["classes"].shape[0] > sample["classes"].shape[0]  # something was pasted
    assert_masks_follow_pixels(out)


def test_pasted_instances_cut_and_drop_what_they_cover():
    # Base: a large rectangle partly covered, a small one fully covered, one untouched.
    base = painted_sample(40, [("rect", 0, 0, 20, 20), ("rect", 25, 25, 29, 29),
                               ("rect", 32, 0, 40, 6)])
    source = painted_sample(40, [("rect", 10, 10, 30, 30), ("disc", 35, 35, 3)], first_class=100)
    out = paste_instances(base, source, tf.constant([True, False]))
    # instance 1 (class 1) is gone, fully covered; class 0 lost its bottom-right quarter
    np.testing.assert_array_equal(np.sort(out["classes"]), [0, 2, 100])
    masks = dict(zip(out["classes"].numpy(), out["masks"].numpy()))
    assert masks[0].sum() == 400 - 100 and masks[2].sum() == 48 and masks[100].sum() == 400
    assert_masks_follow_pixels(out)


def test_occlude_keeps_an_instance_down_to_one_percent():
    sample = painted_sample(40, [("rect", 0, 0, 20, 20), ("rect", 20, 20, 40, 40)])
    cover = np.zeros([40, 40], np.uint8)
    cover[:20, :20] = 1
    cover[0, 0] = 0  # 1 of 400 pixels stays: 0.25%, under 1%
    cover[20:, 20:] = 1
    cover[20:22, 20:22] = 0  # 4 of 400 stay: exactly 1%
    out = occlude(sample, tf.constant(cover))
    np.testing.assert_array_equal(out["classes"], [1])
    np.testing.assert_array_equal(out["boxes"], [[20, 20, 22, 22]])


def test_mixup_mode_pastes_from_another_sample():
    base = painted_sample(48, [("rect", 2, 2, 14, 14), ("disc", 30, 30, 6)])
    other = painted_sample(48, [("rect", 34, 2, 46, 12), ("disc", 12, 36, 7), ("rect", 26, 24, 36, 36)],
                           first_class=100)
    out = copy_paste_from(base, other, 1.0)
    # the third covers the disc's box by more than 30%: not pasted
    np.testing.assert_array_equal(np.sort(out["classes"]), [0, 1, 100, 101])
    assert_masks_follow_pixels(out)
