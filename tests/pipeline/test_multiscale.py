"""Multi-scale training batches: a size per batch, boxes scaled with the images, masks and
instances untouched."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.pipeline.dataset import build_dataset
from tfseg.pipeline.multiscale import resize_batch, scale_choices


def test_the_sizes_are_the_multiples_of_32_within_the_range():
    assert scale_choices(320, 0.5) == list(range(160, 481, 32))
    assert scale_choices(640, 0.5) == list(range(320, 961, 32))
    assert scale_choices(320, 0.0) == [320]
    assert scale_choices(64, 0.9) == [32, 64, 96]  # never below one stride
    assert scale_choices(416, 0.5) == list(range(224, 609, 32))  # 208 and 624 rounded inward
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        scale_choices(320, 1.0)


def test_a_batch_is_resized_bilinear_and_its_boxes_scaled():
    images = tf.random.stateless_uniform([2, 64, 64, 3], [1, 2])
    targets = {"boxes": tf.constant([[[4.0, 8.0, 20.0, 40.0], [0.0, 0.0, 0.0, 0.0]]] * 2),
               "classes": tf.constant([[1, -1]] * 2),
               "masks": tf.ones([2, 2, 16, 16], tf.uint8)}
    sizes = set()
    for draw in range(12):
        resized, out = resize_batch(images, targets, tf.constant(draw, tf.int64), [32, 64, 96],
                                    64)
        size = resized.shape[1]
        sizes.add(size)
        np.testing.assert_allclose(resized, tf.image.resize(images, [size, size]))
        np.testing.assert_allclose(out["boxes"], targets["boxes"] * size / 64)
        assert out["masks"] is targets["masks"] and out["classes"] is targets["classes"]
    assert sizes == {32, 64, 96}


def test_the_pipeline_draws_a_size_per_batch_and_loses_nothing(records_dataset,
                                                                 varied_records):
    """Against the same pipeline without multi-scale (same seed, same samples): each batch is
    that batch resized, its boxes scaled by the same factor, its classes and masks equal."""
    def batches(multi_scale):
        dataset = build_dataset(records_dataset(varied_records(12)), "train", 64, 2, 8, seed=3,
                                mosaic_p=0.0, multi_scale=multi_scale)
        return dataset, [tf.nest.map_structure(lambda t: t.numpy(), b) for b in dataset.take(6)]

    dataset, drawn = batches(0.5)
    _, plain = batches(0.0)
    assert dataset.element_spec[0].shape.as_list() == [2, None, None, 3]
    sizes = []
    for (images, targets), (images0, targets0) in zip(drawn, plain):
        size = images.shape[1]
        sizes.append(size)
        assert images.shape == (2, size, size, 3) and size in (32, 64, 96)
        np.testing.assert_allclose(images, tf.image.resize(images0, [size, size]), atol=1e-6)
        np.testing.assert_allclose(targets["boxes"], targets0["boxes"] * size / 64, rtol=1e-6)
        for key in ("classes", "masks", "dropped"):
            np.testing.assert_array_equal(targets[key], targets0[key])
        assert (targets["classes"] >= 0).any()
    assert len(set(sizes)) > 1, sizes
    _, again = batches(0.5)
    assert [b[0].shape[1] for b in again] == sizes  # the seed decides the sizes
