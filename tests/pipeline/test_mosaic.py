"""Mosaic layout on hand-worked numbers; geometry of mosaic samples; the close-mosaic switch."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.pipeline.decode import decode_record
from tfseg.pipeline.mosaic import (apply_mosaic, group_samples, mosaic_canvas, mosaic_layout,
                                   mosaic_sample, resize_to_fit)
from tfseg.pipeline.targets import remove_crowd

SOLID = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0)]


def test_layout_hand_worked():
    sizes = tf.constant([[32, 32], [32, 32], [24, 32], [32, 16]])
    canvas, source = mosaic_layout(sizes, tf.constant([20, 40]), 32)
    np.testing.assert_array_equal(canvas, [[0, 8, 20, 40], [20, 8, 52, 40],
                                           [0, 40, 20, 64], [20, 40, 36, 64]])
    np.testing.assert_array_equal(source, [[12, 0, 32, 32], [0, 0, 32, 32],
                                           [12, 0, 32, 24], [0, 0, 16, 24]])


def test_canvas_places_each_tile():
    images = tf.constant(np.stack([np.full([32, 32, 3], c, np.uint8) for c in SOLID]))
    sizes = tf.constant([[32, 32], [32, 32], [24, 32], [32, 16]])
    centre = tf.constant([20, 40])
    canvas, source = mosaic_layout(sizes, centre, 32)
    crops = [images[k, s[1]:s[3], s[0]:s[2]] for k, s in enumerate(source.numpy())]
    out = mosaic_canvas(crops, canvas, centre, 32, tf.constant(114, tf.uint8)).numpy()
    assert out.shape == (64, 64, 3)
    for k, (x1, y1, x2, y2) in enumerate(canvas.numpy()):
        assert np.all(out[y1:y2, x1:x2] == SOLID[k])
    assert np.all(out[:8] == 114) and np.all(out[40:, 36:] == 114)


def _groups(make_record, records_dataset, size, count=6, by_tile=True):
    """Groups of resized samples: two rectangles per image (red, then green); classes equal
    the image's (id - 1) % 3 when ``by_tile``, else 0 for red and 1 for green."""
    records = []
    for i in range(count):
        height, width = [(48, 64), (64, 40), (64, 64)][i % 3]
        rects = [(2, 2, width // 2, height // 2), (width // 2 + 2, height // 2 + 2, width - 2, height - 2)]
        classes = [i % 3, i % 3] if by_tile else [0, 1]
        records.append(make_record(i + 1, height, width, rects, classes=classes))
    samples = records_dataset(records).map(lambda r: remove_crowd(decode_record(r)))
    samples = samples.map(lambda s: {k: v for k, v in s.items() if k != "is_crowd"})
    return group_samples(samples.map(lambda s: resize_to_fit(s, size)), size)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mosaic_samples_keep_geometry(make_record, records_dataset, assert_geometry, seed):
    group = next(iter(_groups(make_record, records_dataset, 64, by_tile=False)))
    assert group["image"].shape == (4, 64, 64, 3) and group["packed"].shape[:3] == (4, 64, 64)
    out = mosaic_sample(group, tf.constant([seed, 1]), 64, degrees=10, translate=0.1, scale=0.5, shear=2)
    assert out["image"].shape == (64, 64, 3)
    assert_geometry(out, {0: (220, 30, 30), 1: (30, 200, 40)})
    image = out["image"].numpy().astype(int)
    reds = np.all(np.abs(image - (220, 30, 30)) <= 2, axis=-1)
    greens = np.all(np.abs(image - (30, 200, 40)) <= 2, axis=-1)
    union = out["masks"].numpy().max(0).astype(bool) if out["masks"].shape[0] else np.zeros([64, 64], bool)
    # Instance-coloured pixels belong to some mask (masks moved with the image), except the
    # slivers of instances dropped for keeping under MIN_VISIBLE of their area.
    assert np.sum((reds | greens) & ~union) <= 0.1 * np.sum(reds | greens)


def test_switch_turns_mosaic_off(make_record, records_dataset):
    groups = _groups(make_record, records_dataset, 64, count=8)
    enabled = tf.Variable(True, trainable=False)
    samples = apply_mosaic(groups, 3, 64, probability=1.0, enabled=enabled)

    def classes_per_sample():
        return [(int(s["image_id"]), set(s["classes"].numpy().tolist())) for s in samples]

    mixed = [c for _, c in classes_per_sample() if len(c) > 1]
    assert mixed, "a mosaic of tiles with different classes should mix classes"
    enabled.assign(False)
    for image_id, classes in classes_per_sample():
        assert classes <= {(image_id - 1) % 3}  # single image: its own class only


def _unpack_every_slot(group, seed, size, **affine_args):
    """The mosaic's instances computed the plain way: every one of the 4K slots unpacked,
    placed on the canvas in a channel of its own and warped, then the visible ones kept (what
    mosaic_sample did before tiles shared packed channels and slots that cannot show were
    skipped)."""
    from tfseg.ops import affine
    from tfseg.pipeline.augment import MIN_VISIBLE, packed_layout, random_affine_matrix, unpack_masks
    from tfseg.pipeline.targets import mask_areas

    centre_seed, affine_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    centre = tf.random.stateless_uniform([2], centre_seed, size // 2, size + size // 2,
                                         dtype=tf.int32)
    canvas, source = mosaic_layout(group["size"], centre, size)
    matrix = random_affine_matrix(affine_seed, 2 * size, 2 * size, size, **affine_args)
    count = group["classes"].shape[1]
    masks = []
    for k in range(4):  # tile k's K masks, one unpacked channel each, the other tiles empty
        tile = unpack_masks(group["packed"][k], *packed_layout(count))  # [K, S, S]
        s = source[k]
        crops = [tf.zeros([source[i, 3] - source[i, 1], source[i, 2] - source[i, 0], count],
                          tf.uint8) for i in range(4)]
        crops[k] = tf.transpose(tile[:, s[1]:s[3], s[0]:s[2]], [1, 2, 0])
        alone = mosaic_canvas(crops, canvas, centre, size, tf.constant(0, tf.uint8))
        masks.append(tf.transpose(affine.warp_image(alone, matrix, size, size, "nearest", 0.0),
                                  [2, 0, 1]))
    masks = tf.concat(masks, axis=0)  # [4K, S, S], slot k * K + j
    classes = tf.reshape(group["classes"], [-1])
    expected = tf.reshape(group["areas"], [-1]) * tf.abs(tf.linalg.det(matrix[:2, :2]))
    visible = mask_areas(masks)
    keep = (classes >= 0) & (visible > 0) & (visible >= MIN_VISIBLE * expected)
    return tf.boolean_mask(masks, keep).numpy(), tf.boolean_mask(classes, keep).numpy()


@pytest.mark.slow  # two mosaic pipelines traced per case
@pytest.mark.parametrize("affine_args", [
    dict(degrees=20.0, translate=0.2, scale=0.6, shear=5.0),  # the kernel's projective warp
    dict(degrees=0.0, translate=0.2, scale=0.6, shear=0.0),  # the recipe's: the gather path
])
def test_shared_channels_and_skipped_slots_change_nothing(make_record, records_dataset,
                                                           affine_args):
    # Many small instances near tile edges, random centres and strong affines: every instance
    # kept by the plain computation is kept, with the same mask, in the same order. Images
    # without instances and images of 9-20 (two or three packed channels) are among them.
    rng = np.random.default_rng(5)
    records = []
    counts = [0, 3, 14, 0, 0, 0, 0, 20, 1, 9, 5, 0]  # 4 empty in a row: an empty window
    for i, count in enumerate(counts):
        height, width = int(rng.integers(40, 64)), int(rng.integers(40, 64))
        rects = []
        for _ in range(count):
            x, y = int(rng.integers(0, width - 4)), int(rng.integers(0, height - 4))
            rects.append((x, y, min(x + int(rng.integers(2, 12)), width),
                          min(y + int(rng.integers(2, 12)), height)))
        records.append(make_record(i + 1, height, width, rects, classes=[j % 3 for j in range(len(rects))]))
    samples = records_dataset(records).map(lambda r: remove_crowd(decode_record(r)))
    samples = samples.map(lambda s: {k: v for k, v in s.items() if k != "is_crowd"})
    groups = list(group_samples(samples.map(lambda s: resize_to_fit(s, 64)), 64))
    assert max(g["packed"].shape[-1] for g in groups) == 3
    assert any(g["classes"].shape[1] == 0 for g in groups)
    compared = 0
    for g, group in enumerate(groups):
        for draw in range(3):
            seed = tf.constant([g, draw])
            out = mosaic_sample(group, seed, 64, **affine_args)
            masks, classes = _unpack_every_slot(group, seed, 64, **affine_args)
            np.testing.assert_array_equal(out["masks"].numpy(), masks)
            np.testing.assert_array_equal(out["classes"].numpy(), classes)
            compared += len(classes)
    assert compared > 50  # the cases hold enough kept instances to mean something


@pytest.mark.parametrize("height, size", [(48, 32), (48, 96), (47, 32), (483, 320)])
def test_resize_to_fit_packs_masks_and_scales_areas(height, size):
    """Packed masks unpack to each mask resized alone (nearest) on the image's own grid, a
    mask over the whole image still covers the whole resized image (also when the short side
    rounds), boxes follow the scale, and the areas are source pixel counts times the area
    scale."""
    from tfseg.ops import affine
    from tfseg.pipeline.augment import packed_layout, unpack_masks

    width = 64 if height < 64 else 640
    rng = np.random.default_rng(height + size)
    masks = np.zeros([11, height, width], np.uint8)  # 11 masks: two packed channels
    masks[0] = 1  # the whole image
    boxes = [[0, 0, width, height]]
    for k in range(1, 11):
        w, h = int(rng.integers(4, width // 4)), int(rng.integers(4, height // 4))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        masks[k, y:y + h, x:x + w] = 1
        boxes.append([x, y, x + w, y + h])
    sample = {"image": tf.zeros([height, width, 3], tf.uint8),
              "image_id": tf.constant(3, tf.int64), "boxes": tf.constant(boxes, tf.float32),
              "classes": tf.range(11), "masks": tf.constant(masks)}
    out = resize_to_fit(sample, size)
    scale = size / width
    new_h = int(np.floor(height * scale + 0.5))
    assert out["packed"].shape == (new_h, size, 2)
    np.testing.assert_array_equal(out["size"], [new_h, size])
    unpacked = unpack_masks(out["packed"], *packed_layout(11)).numpy()
    assert unpacked[0].all()  # no row or column of the image left without its mask
    grid = affine.scaling(size / width, new_h / height)
    for k in range(11):
        alone = affine.warp_image(tf.constant(masks[k, :, :, None]), grid, new_h, size,
                                  "nearest")[..., 0]
        np.testing.assert_array_equal(unpacked[k], alone)
    area_scale = (size / width) * (new_h / height)
    np.testing.assert_allclose(out["areas"], masks.sum(axis=(1, 2)) * area_scale, rtol=1e-5)
    np.testing.assert_allclose(out["boxes"], np.array(boxes) * scale, rtol=1e-5)
