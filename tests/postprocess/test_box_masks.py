"""Box-aligned masks (export.mask_size): the separable bilinear resampling and its agreement
with the host paste of today's prototype-resolution masks."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.ops.letterbox import letterbox_info
from tfseg.postprocess import PostProcess
from tfseg.postprocess.host import to_original
from tfseg.postprocess.masks import (box_aligned_masks, detection_masks, encode_masks,
                                     interpolation_weights, resample_to_boxes)

S, P = 128, 32  # input size and prototype size


def test_interpolation_weights_hand_worked():
    # A 2-cell grid over [0, 8) has centres at 2 and 6; 4 samples over [0, 8) sit at 1, 3, 5, 7:
    # 1 and 7 lie beyond the outer centres (edge value), 3 and 5 a quarter of the way between.
    weights = interpolation_weights(tf.constant([[0.0]]), tf.constant([[8.0]]), 0.0, 8.0,
                                    grid_size=2, size=4).numpy()[0]
    np.testing.assert_allclose(weights, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])


def test_resampling_reproduces_a_linear_field_at_the_cell_centres():
    # Bilinear sampling is exact on a linear function: f(x, y) = 2x - y, stored at the
    # prototype centres (4q + 2), sampled on a 7 x 5 box inside the centres' hull.
    centres = np.arange(P) * 4.0 + 2.0
    field = (2 * centres[None, :] - centres[:, None]).astype(np.float32)  # [P, P], rows = y
    box = np.array([10.0, 20.0, 90.5, 61.0], np.float32)
    got = resample_to_boxes(tf.constant(field[None, None]), tf.constant([0.0, 0.0, S, S]),
                            tf.constant(box[None, None]), size=7).numpy()[0, 0]
    xs = box[0] + (np.arange(7) + 0.5) * (box[2] - box[0]) / 7
    ys = box[1] + (np.arange(7) + 0.5) * (box[3] - box[1]) / 7
    np.testing.assert_allclose(got, 2 * xs[None, :] - ys[:, None], atol=1e-3)


def _blob_detections():
    """Three object-like masks (disc, ellipse, rounded square) as prototypes, one each.

    Logits fall off linearly with the distance outside each shape (10 per prototype pixel),
    as a trained network's do, and each box is the shape's tight box plus up to 1.5 px.
    """
    ys, xs = np.mgrid[0:P, 0:P].astype(np.float32) * 4.0 + 2.0  # prototype centres, input px
    shapes = [np.hypot(xs - 40, ys - 50) / 22.0,                        # disc r = 22
              np.hypot((xs - 88) / 30.0, (ys - 84) / 12.0),             # ellipse 60 x 24
              np.maximum(np.abs(xs - 60) / 14.0, np.abs(ys - 100) / 9.0)]  # 28 x 18 square
    prototypes = np.stack([10.0 * (1.0 - d) * 4.0 for d in shapes], axis=-1)  # [P, P, 3]
    boxes = np.array([[17.0, 27.5, 63.0, 73.0], [57.0, 71.0, 119.5, 97.0],
                      [45.5, 90.5, 75.0, 110.0], [0.0, 0.0, 0.0, 0.0]], np.float32)
    coefficients = np.concatenate([np.eye(3), np.zeros((1, 3))]).astype(np.float32)  # [4, 3]
    masks = detection_masks(tf.constant(coefficients[None]), tf.constant(prototypes[None]),
                            tf.constant(boxes[None]))  # [1, 4, P, P]
    return {"boxes": boxes[None], "scores": np.array([[0.9, 0.8, 0.7, 0.0]], np.float32),
            "classes": np.zeros((1, 4), np.int32), "num_detections": np.array([3], np.int32),
            "masks": masks.numpy()}


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


@pytest.mark.parametrize("size,dtype", [(56, "float32"), (112, "float32"), (56, "uint8")])
def test_box_masks_pasted_agree_with_the_host_paste_of_prototype_masks(size, dtype):
    detections = _blob_detections()
    # A 300 x 200 photo: the input is upsampled 2.3x back to the original pixels.
    info = letterbox_info(300, 200, S).numpy()[None]
    today = to_original(detections, info)[0]
    box_masks = encode_masks(box_aligned_masks(tf.constant(detections["masks"]),
                                               tf.constant(detections["boxes"]), size), dtype)
    assert box_masks.shape == (1, 4, size, size) and box_masks.dtype.name == dtype
    aligned = to_original({**{k: v for k, v in detections.items() if k != "masks"},
                           "box_masks": box_masks.numpy()}, info)[0]
    assert len(today) == len(aligned) == 3
    for i in range(3):
        assert today.mask_areas()[i] > 500, "each blob covers a real area"
        iou = _iou(today.full_mask(i), aligned.full_mask(i))
        assert iou > 0.98, (i, iou)
    assert not box_masks.numpy()[0, 3].any(), "padding rows stay zero"


def test_postprocess_returns_box_masks_in_place_of_masks_and_round_trips():
    post = PostProcess(0.3, 0.5, 7, mask_size=24, mask_dtype="uint8")
    rebuilt = PostProcess.from_config(post.get_config())
    assert (rebuilt.mask_size, rebuilt.mask_dtype) == (24, "uint8")
    rng = np.random.default_rng(0)
    anchors = (S // 8) ** 2 + (S // 16) ** 2 + (S // 32) ** 2
    raw = {"box_logits": rng.normal(size=(1, anchors, 64)).astype(np.float32),
           "class_logits": rng.normal(size=(1, anchors, 2)).astype(np.float32),
           "mask_coefficients": rng.normal(size=(1, anchors, 32)).astype(np.float32),
           "prototypes": rng.normal(size=(1, P, P, 32)).astype(np.float32)}
    out = rebuilt(raw)
    assert "masks" not in out and out["box_masks"].shape == (1, 7, 24, 24)
    assert out["box_masks"].dtype == tf.uint8
    with pytest.raises(ValueError, match="mask_dtype"):
        PostProcess(mask_dtype="int8")
