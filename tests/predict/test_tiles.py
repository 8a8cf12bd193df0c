"""Tiled inference without a model: the tile plan, the way back to original pixels, and the
merging of one object seen by several tiles (tfseg/predict/tiles.py)."""

import numpy as np
import pytest

from tfseg.postprocess.host import ImageDetections, to_original
from tfseg.predict.tiles import (_best_rows, _letterboxed, merge_across_tiles, place_in_image,
                                 suppress, tile_size, tile_windows)


@pytest.mark.parametrize("height, width, tile, overlap", [
    (600, 600, 64, 0.2), (3000, 4123, 256, 0.25), (300, 1000, 256, 0.5), (257, 256, 256, 0.2),
    (100, 700, 256, 0.1)])
def test_the_plan_covers_the_image_with_tiles_inside_it_that_overlap_as_asked(height, width, tile,
                                                                             overlap):
    windows = tile_windows(height, width, tile, overlap)
    assert (windows[:, :2] >= 0).all() and (windows[:, 2] <= width).all() and (windows[:, 3] <= height).all()
    # Edge tiles are moved inside, never cut short: a side at least a tile long gets full tiles.
    assert ((windows[:, 2] - windows[:, 0]) == min(tile, width)).all()
    assert ((windows[:, 3] - windows[:, 1]) == min(tile, height)).all()
    covered = np.zeros((height, width), bool)
    for x0, y0, x1, y1 in windows:
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    for axis in (0, 1):  # neighbours along each axis share at least overlap * tile pixels
        starts = np.unique(windows[:, axis])
        ends = np.unique(windows[:, axis + 2])
        if len(starts) > 1:
            assert (ends[:-1] - starts[1:]).min() >= int(overlap * tile)
            assert starts[0] == 0 and ends[-1] == (width, height)[axis]


def test_a_small_image_is_one_tile_and_tile_one_means_the_input_size():
    assert tile_windows(50, 60, 64, 0.2).tolist() == [[0, 0, 60, 50]]
    assert tile_size(1, 320) == 320 and tile_size(96, 320) == 96
    with pytest.raises(ValueError):
        tile_windows(100, 100, 64, 1.0)


def test_a_detection_at_known_tile_coordinates_lands_at_the_right_original_pixels():
    # A 128 px tile at (300, 200) of a 1000 x 800 image, letterboxed to a 64 px input: the
    # tile is halved, so input pixels are 2 original pixels.
    size, window = 64, np.array([300, 200, 428, 328])
    tile = np.zeros((128, 128, 3), np.uint8)
    pixels, info = _letterboxed(tile, size)
    assert pixels.shape == (size, size, 3) and info.tolist() == [128, 128, 0.5, 0, 0]
    masks = np.zeros((1, 1, size // 4, size // 4), np.float32)
    # Input box x 16..48, y 8..40 is prototype x 4..12, y 2..10; the mask spills past it by a
    # prototype pixel, so the crop to the box alone shapes it.
    masks[0, 0, 1:11, 3:13] = 1.0
    raw = {"boxes": np.array([[[16.0, 8.0, 48.0, 40.0]]], np.float32),
           "scores": np.array([[0.9]], np.float32), "classes": np.array([[2]], np.int32),
           "masks": masks, "num_detections": np.array([1], np.int32)}
    in_tile = to_original(raw, info[None])[0]
    placed = place_in_image(in_tile, window, 800, 1000)
    np.testing.assert_allclose(placed.boxes[0], [332, 216, 396, 280])
    full = placed.full_mask(0)
    assert full.shape == (800, 1000)
    rows, cols = np.nonzero(full)
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (332, 395, 216, 279)
    assert full[216:280, 332:396].all() and full.sum() == 64 * 64
    # The crop stays box-sized: nothing of the image's size is kept per detection.
    assert placed.mask_crops[0].shape == (64, 64)


def _disc(height, width, cx, cy, r):
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= r * r


def _seen(mask, window, score, cls):
    """What a pass looking through ``window`` reports of an object: its mask inside the
    window, as a box crop in image pixels (None when it sees nothing of it)."""
    x0, y0, x1, y1 = window
    inside = np.zeros_like(mask)
    inside[y0:y1, x0:x1] = mask[y0:y1, x0:x1]
    if not inside.any():
        return None
    rows, cols = np.nonzero(inside)
    box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)
    crop = inside[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return box, score, cls, crop, np.array([cols.min(), rows.min()], np.int32)


def _detections(seen, height, width):
    seen = [s for s in seen if s is not None]
    return ImageDetections(np.array([s[0] for s in seen], np.float32),
                           np.array([s[1] for s in seen], np.float32),
                           np.array([s[2] for s in seen], np.int32), [s[3] for s in seen],
                           np.array([s[4] for s in seen], np.int32), height, width)


# Two tiles sharing the band x 80..120 of a 200 x 100 image.
HEIGHT, WIDTH = 100, 200
WINDOWS = np.array([[0, 0, 120, 100], [80, 0, 200, 100]])


def test_an_object_split_by_a_tile_border_becomes_one_with_the_union_mask():
    disc = _disc(HEIGHT, WIDTH, 100, 50, 35)  # x 65..135: neither tile sees all of it
    seen = [_seen(disc, WINDOWS[0], 0.6, 1), _seen(disc, WINDOWS[1], 0.8, 1)]
    merged = merge_across_tiles(_detections(seen, HEIGHT, WIDTH), np.array([0, 1]), WINDOWS)
    assert len(merged) == 1
    np.testing.assert_array_equal(merged.full_mask(0), disc)
    np.testing.assert_allclose(merged.boxes[0], [65, 15, 135, 85])
    assert merged.scores[0] == pytest.approx(0.8) and merged.classes[0] == 1
    assert merged.mask_crops[0].shape == (70, 70)  # the union box, not the image


def test_two_distinct_neighbours_stay_two_and_each_keeps_its_own_mask():
    big = _disc(HEIGHT, WIDTH, 95, 50, 15)      # x 80..110, inside both tiles
    small = _disc(HEIGHT, WIDTH, 123, 50, 10)   # x 113..133, cut by the first tile's border
    seen = [_seen(big, WINDOWS[0], 0.9, 0), _seen(small, WINDOWS[0], 0.4, 0),
            _seen(big, WINDOWS[1], 0.85, 0), _seen(small, WINDOWS[1], 0.7, 0)]
    merged = merge_across_tiles(_detections(seen, HEIGHT, WIDTH), np.array([0, 0, 1, 1]), WINDOWS)
    assert len(merged) == 2
    masks = sorted((merged.full_mask(i) for i in range(2)), key=lambda m: -m.sum())
    np.testing.assert_array_equal(masks[0], big)
    np.testing.assert_array_equal(masks[1], small)
    assert sorted(merged.scores.tolist()) == pytest.approx([0.7, 0.9])


def test_other_classes_and_one_pass_duplicates_are_not_merged_but_nms_drops_the_duplicate():
    disc = _disc(HEIGHT, WIDTH, 100, 50, 15)
    seen = [_seen(disc, WINDOWS[0], 0.9, 0), _seen(disc, WINDOWS[1], 0.8, 2),
            _seen(disc, WINDOWS[1], 0.5, 2)]
    merged = merge_across_tiles(_detections(seen, HEIGHT, WIDTH), np.array([0, 1, 1]), WINDOWS)
    assert len(merged) == 3  # class 0 vs 2 differ; the two class-2 ones came from one pass
    kept = suppress(merged, iou=0.7, max_det=10)
    assert sorted(kept.classes.tolist()) == [0, 2]
    assert kept.scores.tolist() == pytest.approx([0.9, 0.8])
    assert len(suppress(merged, iou=0.7, max_det=10, agnostic=True)) == 1


def test_a_full_pool_keeps_only_tile_rows_above_its_worst_score():
    raw = {"scores": np.array([[0.9, 0.5, 0.2, 0.0], [0.45, 0.3, 0.0, 0.0], [0.8, 0.0, 0.0, 0.0]],
                              np.float32),
           "num_detections": np.array([3, 2, 1], np.int32),
           "boxes": np.zeros((3, 4, 4), np.float32)}
    cut = _best_rows(raw, 2, floor=0.4)  # the third image is filler
    assert cut["num_detections"].tolist() == [2, 1]
    assert cut["boxes"].shape == (2, 4, 4)
