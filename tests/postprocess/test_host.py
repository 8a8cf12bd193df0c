"""Host post-processing: the letterbox undone for several aspect ratios, RLE and polygons."""

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from tfseg.ops.letterbox import letterbox_info
from tfseg.postprocess.host import crop_run_lengths, encode_rle, polygons, to_original

SIZE, PROTO = 64, 16


def proto_mask_for(input_box):
    """[P, P] mask: 1 on prototype pixels whose centre is inside input_box / 4."""
    centres = (np.arange(PROTO) + 0.5) * 4
    inside_x = (centres >= input_box[0]) & (centres < input_box[2])
    inside_y = (centres >= input_box[1]) & (centres < input_box[3])
    return (inside_y[:, None] & inside_x[None]).astype(np.float32)


def detections_for(input_boxes, masks, scores=None, classes=None, n=4):
    k = len(input_boxes)
    out = {"boxes": np.zeros((1, n, 4), np.float32), "scores": np.zeros((1, n), np.float32),
           "classes": np.zeros((1, n), np.int32), "masks": np.zeros((1, n, PROTO, PROTO), np.float32),
           "num_detections": np.array([k], np.int32)}
    out["boxes"][0, :k] = input_boxes
    out["masks"][0, :k] = masks
    out["scores"][0, :k] = scores if scores is not None else np.linspace(0.9, 0.5, k)
    out["classes"][0, :k] = classes if classes is not None else np.arange(k)
    return out


@pytest.mark.parametrize("height, width", [(100, 50), (37, 120), (64, 64), (480, 640), (29, 31)])
def test_letterbox_undone_for_boxes_and_masks(height, width):
    info = letterbox_info(height, width, SIZE).numpy()  # (h, w, scale, pad_top, pad_left)
    scale, pad_top, pad_left = info[2], info[3], info[4]
    # A box on the prototype grid (multiples of 4) inside the resized image area.
    x1 = 4 * np.ceil((pad_left + 2) / 4); y1 = 4 * np.ceil((pad_top + 2) / 4)
    x2 = 4 * np.floor((pad_left + width * scale - 2) / 4); y2 = 4 * np.floor((pad_top + height * scale - 2) / 4)
    input_box = np.array([x1, y1, x2, y2], np.float32)
    result = to_original(detections_for([input_box], [proto_mask_for(input_box)]), info[None])[0]
    assert (result.height, result.width) == (height, width)
    expected_box = (input_box - [pad_left, pad_top, pad_left, pad_top]) / scale
    np.testing.assert_allclose(result.boxes[0], expected_box, atol=1e-3)
    # Expected mask, worked by hand: bilinear interpolation of a rectangle of ones on the
    # prototype grid is, per axis, a ramp 0.5 + d / 4 (d = signed distance inside the edge in
    # input pixels, clipped to [0, 1]); the value is the product of both axes (corners round
    # off), kept where > 0.5 and inside the box. cv2 samples on a 1/32-pixel grid, so only
    # pixels whose value is within 1/32 of the threshold may differ.
    cols, rows = np.arange(width) + 0.5, np.arange(height) + 0.5
    in_x, in_y = cols * scale + pad_left, rows * scale + pad_top  # centres in input pixels
    ramp_x = np.clip(0.5 + np.minimum(in_x - x1, x2 - in_x) / 4, 0, 1)
    ramp_y = np.clip(0.5 + np.minimum(in_y - y1, y2 - in_y) / 4, 0, 1)
    value = ramp_y[:, None] * ramp_x[None]
    inside = ((rows >= expected_box[1]) & (rows < expected_box[3]))[:, None] & \
             ((cols >= expected_box[0]) & (cols < expected_box[2]))[None]
    expected = (value > 0.5) & inside
    mask = result.full_mask(0)
    assert expected.sum() > 0.8 * inside.sum()
    assert not np.any((mask != expected) & (np.abs(value - 0.5) > 1 / 32))
    assert result.mask_areas()[0] == mask.sum()


def test_detections_outside_the_image_are_dropped_and_padding_ignored():
    info = letterbox_info(32, 64, SIZE).numpy()  # scale 1, pad_top 16: rows 0..15 are padding
    boxes = np.array([[0, 0, 20, 12], [8, 20, 24, 40]], np.float32)  # first lies in the padding
    result = to_original(detections_for(boxes, [proto_mask_for(b) for b in boxes]), info[None])[0]
    assert len(result) == 1
    np.testing.assert_allclose(result.boxes[0], [8, 4, 24, 24])
    assert result.scores[0] == pytest.approx(0.5) and result.classes[0] == 1


def test_rle_round_trip_and_polygon_of_a_rectangle():
    info = letterbox_info(64, 64, SIZE).numpy()  # identity map
    boxes = np.array([[8, 4, 24, 40], [40, 40, 60, 56]], np.float32)
    result = to_original(detections_for(boxes, [proto_mask_for(b) for b in boxes]), info[None])[0]
    rles = encode_rle(result)
    assert len(rles) == 2 and isinstance(rles[0]["counts"], str)
    for i, rle in enumerate(rles):
        assert rle["size"] == [64, 64]
        decoded = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()})
        np.testing.assert_array_equal(decoded.astype(bool), result.full_mask(i))
    # 16 x 36 pixels less the 4 corners: bilinear gives 0.625 * 0.625 < 0.5 there.
    assert mask_utils.area(rles[0]) == 16 * 36 - 4
    (polygon,) = polygons(result, 0)
    points = sorted(map(tuple, np.array(polygon).reshape(-1, 2).astype(int).tolist()))
    assert points == [(8, 5), (8, 38), (9, 4), (9, 39), (22, 4), (22, 39), (23, 5), (23, 38)]


def test_no_detections():
    info = letterbox_info(10, 20, SIZE).numpy()
    result = to_original(detections_for(np.zeros((0, 4)), np.zeros((0, PROTO, PROTO))), info[None])[0]
    assert len(result) == 0 and encode_rle(result) == [] and result.mask_origins.shape == (0, 2)


def test_run_lengths_from_crops_encode_as_pycocotools_does_on_the_full_mask():
    # Random crops and images, with the edge cases drawn often: crops spanning the image's
    # full height (a run continues into the next column), the whole image, empty and
    # all-ones crops, zero-sized crops.
    rng = np.random.default_rng(0)
    for case in range(2000):
        height, width = (int(v) for v in rng.integers(1, 30, 2))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(0, width - x0 + 1)), int(rng.integers(0, height - y0 + 1))
        if case % 3 == 0:
            y0, h = 0, height
        if case % 7 == 0:
            x0, y0, w, h = 0, 0, width, height
        crop = rng.random((h, w)) < rng.choice([0.0, 0.3, 0.9, 1.0])
        full = np.zeros((height, width, 1), np.uint8, order="F")
        full[y0:y0 + h, x0:x0 + w, 0] = crop
        expected = mask_utils.encode(full)[0]["counts"]
        counts = crop_run_lengths(crop, np.array([x0, y0]), height, width)
        assert sum(counts) == height * width
        encoded = mask_utils.frPyObjects([{"counts": counts, "size": [height, width]}],
                                         height, width)[0]["counts"]
        assert encoded == expected, (case, height, width, x0, y0, w, h)
