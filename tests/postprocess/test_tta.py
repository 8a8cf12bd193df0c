"""Test-time augmentation (tfseg.postprocess.tta): the views, the maps back to the image's
frame, hand-made raw outputs merged across views, and a tiny network's merged detections
(flip equivariance, augment off bit-identical, the DETECTIONS contract, YOLO26)."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.contracts import DETECTIONS, LETTERBOX_PAD_VALUE, num_anchors, proto_size
from tfseg.evaluate.loop import make_detector
from tfseg.model import build_model
from tfseg.ops.boxes import pairwise_iou
from tfseg.postprocess import PostProcess
from tfseg.postprocess.tta import (AugmentedPostProcess, augmented_views, boxes_to_first_view,
                                   prototypes_to_first_view, view_plan)

SIZE, CLASSES, REG_MAX, K = 64, 3, 16, 32
SIGMOID_8 = 1 / (1 + np.exp(-8.0))


def test_view_plan_and_views():
    assert view_plan(256) == [(256, False), (256, True), (212, False), (172, False)]
    assert view_plan(64, scales=(0.75,), flip=False) == [(64, False), (48, False)]
    with pytest.raises(ValueError, match="scales must lie in"):
        view_plan(64, scales=(1.5,))
    images = tf.random.uniform((2, SIZE, SIZE, 3), seed=4)
    views = augmented_views(images, view_plan(SIZE, scales=(0.75,))).numpy()
    assert views.shape == (6, SIZE, SIZE, 3)  # view-major: 2 images x (self, mirror, 0.75)
    np.testing.assert_array_equal(views[:2], images.numpy())
    np.testing.assert_array_equal(views[2:4], images.numpy()[:, :, ::-1])
    shrunk = tf.image.resize(images, [48, 48], method="bilinear").numpy()
    np.testing.assert_allclose(views[4:, :48, :48], shrunk, atol=1e-6)
    np.testing.assert_allclose(views[4:, 48:], LETTERBOX_PAD_VALUE / 255.0)  # padded below
    np.testing.assert_allclose(views[4:, :, 48:], LETTERBOX_PAD_VALUE / 255.0)  # and right


def test_boxes_map_back_to_the_first_view():
    boxes = tf.constant([[12.0, 6.0, 30.0, 24.0], [0.0, 0.0, 60.0, 60.0]])
    # a 48 px view shows the image at 0.75: divide by it (and clip to the image)
    np.testing.assert_allclose(boxes_to_first_view(boxes, 48, False, SIZE).numpy(),
                               [[16, 8, 40, 32], [0, 0, 64, 64]], atol=1e-5)
    # the mirror: x -> 64 - x, so x1 and x2 swap roles
    np.testing.assert_allclose(boxes_to_first_view(boxes, SIZE, True, SIZE).numpy(),
                               [[34, 6, 52, 24], [4, 0, 64, 60]], atol=1e-5)


def test_scaled_prototypes_map_back_to_the_first_views_grid():
    # A block on view 0's 16 x 16 prototype grid, shown by a 48 px view as the same block
    # shrunk to 12 x 12 cells at the top-left: mapped back, it covers the block again.
    grid = proto_size(SIZE)
    block = np.zeros((1, grid, grid, 1), np.float32)
    block[0, 4:12, 2:10] = 1.0
    shrunk = tf.image.resize(block, [12, 12], method="bilinear")
    in_view = tf.pad(shrunk, [[0, 0], [0, 4], [0, 4], [0, 0]])
    back = prototypes_to_first_view(in_view, 48, False).numpy()
    assert back.shape == block.shape
    on, wanted = back[0, ..., 0] > 0.5, block[0, ..., 0] > 0.5
    assert (on & wanted).sum() / (on | wanted).sum() > 0.85  # bilinear twice blurs one edge row
    assert on[5:11, 3:9].all() and not on[:, 12:].any() and not on[14:].any()
    mirrored = prototypes_to_first_view(tf.constant(block), SIZE, True).numpy()
    np.testing.assert_array_equal(mirrored, block[:, :, ::-1])


def box_logits_for(distances):
    """[4 * REG_MAX] logits peaked at integer bin distances (left, top, right, bottom)."""
    logits = np.zeros((4, REG_MAX), np.float32)
    logits[np.arange(4), distances] = 60.0
    return logits.reshape(-1)


def hand_made_views(count, prefix=""):
    """Raw outputs of ``count`` views of one image with nothing in them; prototype channel 0
    is 10 everywhere, so coefficient 1 on it gives a mask of sigmoid(10) inside the box."""
    a, p = num_anchors(SIZE), proto_size(SIZE)
    raw = {prefix + "box_logits": np.tile(box_logits_for([0, 0, 0, 0]), (count, a, 1)),
           prefix + "class_logits": np.full((count, a, CLASSES), -10.0, np.float32),
           prefix + "mask_coefficients": np.zeros((count, a, K), np.float32),
           "prototypes": np.zeros((count, p, p, K), np.float32)}
    raw["prototypes"][..., 0] = 10.0
    return raw


def put(raw, view, anchor, distances, cls, logit, prefix=""):
    raw[prefix + "box_logits"][view, anchor] = box_logits_for(distances)
    raw[prefix + "class_logits"][view, anchor, cls] = logit
    raw[prefix + "mask_coefficients"][view, anchor, 0] = 1.0


def test_a_scaled_views_detection_comes_back_unscaled_with_its_mask():
    # Views: the image, and the image at 0.75 (48 px). Only the scaled view sees an object:
    # anchor 0 (stride 8, centre (4, 4)) with distances (0, 0, 2, 3) -> (4, 4, 20, 28) in the
    # view, which is (16/3, 16/3, 80/3, 112/3) in the image.
    raw = hand_made_views(2)
    put(raw, 1, 0, [0, 0, 2, 3], 1, 8.0)
    post = AugmentedPostProcess(scales=(0.75,), flip=False, score_threshold=0.25,
                                iou_threshold=0.5, max_detections=5)
    out = {k: v.numpy() for k, v in post({k: tf.constant(v) for k, v in raw.items()}).items()}
    assert out["num_detections"].tolist() == [1]
    np.testing.assert_allclose(out["boxes"][0, 0], np.array([4, 4, 20, 28]) / 0.75, atol=1e-3)
    np.testing.assert_allclose(out["scores"][0, 0], SIGMOID_8, rtol=1e-6)
    assert out["classes"][0, 0] == 1
    # The mask: sigmoid(10) on the cells whose centres (4 q + 2) lie in the un-scaled box,
    # columns 1..6 and rows 1..8 of the 16 x 16 grid; zero elsewhere.
    expected = np.zeros((16, 16), np.float32)
    expected[1:9, 1:7] = 1 / (1 + np.exp(-10.0))
    np.testing.assert_allclose(out["masks"][0, 0], expected, rtol=1e-5, atol=1e-6)


def test_the_views_duplicates_merge_into_one_detection():
    # The image and its mirror both see the object at (4, 4, 20, 28); the mirror's is at
    # (44, 4, 60, 28) in its own frame (anchor 7: stride 8, centre (60, 4), distances
    # (2, 0, 0, 3)). Un-mirrored they coincide, and one NMS keeps the better one.
    raw = hand_made_views(2)
    put(raw, 0, 0, [0, 0, 2, 3], 1, 5.0)
    put(raw, 1, 7, [2, 0, 0, 3], 1, 8.0)
    post = AugmentedPostProcess(scales=(), flip=True, score_threshold=0.25, iou_threshold=0.5,
                                max_detections=5)
    out = {k: v.numpy() for k, v in post({k: tf.constant(v) for k, v in raw.items()}).items()}
    assert out["num_detections"].tolist() == [1]
    np.testing.assert_allclose(out["boxes"][0, 0], [4, 4, 20, 28], atol=1e-3)
    np.testing.assert_allclose(out["scores"][0, 0], SIGMOID_8, rtol=1e-6)  # the mirror's


def test_the_kept_mask_is_the_score_weighted_mean_of_the_merged_ones():
    # The same object in both views: the image's candidate (score s(5)) has mask logit +10,
    # the mirror's (score s(8), kept) -5. The kept mask's logit is their score-weighted mean
    # inside the box; a third candidate of another class over the same box is not merged.
    raw = hand_made_views(2)
    put(raw, 0, 0, [0, 0, 2, 3], 1, 5.0)
    put(raw, 1, 7, [2, 0, 0, 3], 1, 8.0)
    raw["mask_coefficients"][1, 7, 0] = -0.5
    put(raw, 0, 1, [1, 0, 1, 3], 2, 3.0)  # anchor 1: centre (12, 4) -> (4, 4, 20, 28), class 2
    raw["mask_coefficients"][0, 1, 0] = 3.0
    post = AugmentedPostProcess(scales=(), flip=True, score_threshold=0.25, iou_threshold=0.5,
                                max_detections=5)
    out = {k: v.numpy() for k, v in post({k: tf.constant(v) for k, v in raw.items()}).items()}
    assert out["num_detections"].tolist() == [2] and out["classes"][0, :2].tolist() == [1, 2]
    low, high = 1 / (1 + np.exp(-5.0)), SIGMOID_8
    logit = (low * 10.0 + high * -5.0) / (low + high)
    expected = np.zeros((16, 16), np.float32)
    expected[1:7, 1:5] = 1 / (1 + np.exp(-logit))
    np.testing.assert_allclose(out["masks"][0, 0], expected, rtol=1e-5, atol=1e-6)
    expected[1:7, 1:5] = 1 / (1 + np.exp(-30.0))  # the class-2 detection's own mask
    np.testing.assert_allclose(out["masks"][0, 1], expected, rtol=1e-5, atol=1e-6)
    alone = AugmentedPostProcess(scales=(), flip=True, average_masks=False,
                                 score_threshold=0.25, iou_threshold=0.5, max_detections=5)
    own = alone({k: tf.constant(v) for k, v in raw.items()})["masks"].numpy()
    np.testing.assert_allclose(own[0, 0, 1:7, 1:5], 1 / (1 + np.exp(5.0)), rtol=1e-5)


def test_one_to_one_candidates_of_the_views_go_through_nms():
    # YOLO26's end-to-end path has no NMS of its own; with views it must merge them.
    raw = hand_made_views(2, "o2o_")
    raw.update({k: v for k, v in hand_made_views(2).items() if k != "prototypes"})
    put(raw, 0, 0, [0, 0, 2, 3], 2, 5.0, "o2o_")
    put(raw, 1, 7, [2, 0, 0, 3], 2, 8.0, "o2o_")
    post = AugmentedPostProcess(scales=(), flip=True, score_threshold=0.25, iou_threshold=0.5,
                                max_detections=5, end_to_end=True)
    out = {k: v.numpy() for k, v in post({k: tf.constant(v) for k, v in raw.items()}).items()}
    assert out["num_detections"].tolist() == [1]
    assert out["classes"][0, 0] == 2
    np.testing.assert_allclose(out["boxes"][0, 0], [4, 4, 20, 28], atol=1e-3)


@pytest.fixture(scope="module")
def network():
    """yolov8-seg-n at 64 px, 3 classes, random weights made to respond to the image: at
    initialization its features barely depend on the input (every batch normalization
    divides by a unit variance, and the activations fade layer after layer), so the batch
    normalizations take the statistics of one batch of noise images, and the head's last
    1x1 convolutions are redrawn small (short DFL distances favoured). Its detections then
    differ in size, place and score, as a trained model's do."""
    model = build_model("yolov8-seg-n", CLASSES, SIZE)
    norms = [layer for layer in model._flatten_layers() if hasattr(layer, "moving_variance")]
    for layer in norms:
        layer.momentum = 0.0  # the moving statistics become this batch's
    model(tf.random.uniform((4, SIZE, SIZE, 3), seed=3), training=True)
    for layer in norms:
        layer.momentum = 0.97
    rng = np.random.default_rng(0)
    for weight in model.get_layer("head").weights:
        if "/predict/" not in weight.path:
            continue
        if weight.path.endswith("bias") and "/box" in weight.path:  # bins 0..15 per side
            value = -0.8 * np.tile(np.arange(REG_MAX), 4) + rng.normal(0, 0.3, weight.shape)
        elif weight.path.endswith("bias"):
            value = rng.normal(-1.0, 0.3, weight.shape)
        else:  # class logits of about unit spread: scores that do not saturate (and tie)
            value = rng.normal(0.0, 0.01 if "/cls" in weight.path else 0.05, weight.shape)
        weight.assign(value.astype(np.float32))
    return model


def numpy(detections):
    return {k: v.numpy() for k, v in detections.items()}


def test_the_merged_result_of_a_mirrored_image_is_the_mirrored_result(network):
    # With the views {image, mirror}, the mirrored image's views are the image's views in
    # the other order: its merged detections must be the image's, mirrored. Tolerances:
    # scores equal (the same numbers), boxes within 1e-3 px (S - (S - x) in float32), masks
    # within 1e-5 except at most a few cells where a box edge meets a cell centre.
    post = AugmentedPostProcess(scales=(), flip=True, score_threshold=0.3, iou_threshold=0.6,
                                max_detections=50)
    images = tf.random.uniform((2, SIZE, SIZE, 3), seed=7)
    plain = numpy(post(network(post.views(images))))
    mirrored = numpy(post(network(post.views(tf.reverse(images, axis=[2])))))
    np.testing.assert_array_equal(plain["num_detections"], mirrored["num_detections"])
    assert plain["num_detections"].min() >= 3  # enough detections for the check to matter
    for b, n in enumerate(plain["num_detections"]):
        np.testing.assert_array_equal(plain["scores"][b, :n], mirrored["scores"][b, :n])
        np.testing.assert_array_equal(plain["classes"][b, :n], mirrored["classes"][b, :n])
        x1, y1, x2, y2 = mirrored["boxes"][b, :n].T
        np.testing.assert_allclose(plain["boxes"][b, :n],
                                   np.stack([SIZE - x2, y1, SIZE - x1, y2], -1), atol=1e-3)
        difference = np.abs(plain["masks"][b, :n] - mirrored["masks"][b, :n, :, ::-1])
        assert (difference > 1e-5).sum() <= 2 * n


def test_augment_off_is_bit_identical_to_postprocess(network):
    images = tf.random.uniform((2, SIZE, SIZE, 3), seed=8)
    reference = numpy(PostProcess(0.3, 0.6, 50)(network(images, training=False)))
    detector = numpy(make_detector(network, 0.3, 0.6, 50, augment=False)(images))
    one_view = AugmentedPostProcess(scales=(), flip=False, average_masks=False,
                                    score_threshold=0.3, iou_threshold=0.6, max_detections=50)
    merged = numpy(one_view(network(one_view.views(images), training=False)))
    for key, value in reference.items():
        np.testing.assert_array_equal(detector[key], value, err_msg=key)
        np.testing.assert_array_equal(merged[key], value, err_msg=key)


def test_augmented_detections_keep_the_contract(network):
    images = tf.random.uniform((3, SIZE, SIZE, 3), seed=9)
    out = numpy(make_detector(network, 0.3, 0.6, 40, multi_label=True, augment=True)(images))
    for name, spec in DETECTIONS.items():
        assert out[name].dtype == np.dtype(spec.dtype), name
    assert out["boxes"].shape == (3, 40, 4) and out["masks"].shape == (3, 40, 16, 16)
    assert out["scores"].shape == out["classes"].shape == (3, 40)
    assert out["num_detections"].shape == (3,)
    for b, n in enumerate(out["num_detections"]):
        assert 0 < n <= 40
        assert not out["boxes"][b, n:].any() and not out["masks"][b, n:].any()
        assert np.all(np.diff(out["scores"][b, :n]) <= 0) and out["scores"][b, n - 1] >= 0.3
        assert out["boxes"][b, :n].min() >= 0 and out["boxes"][b, :n].max() <= SIZE
        masks = out["masks"][b, :n]
        assert masks.min() >= 0 and masks.max() <= 1
        for mask, (x1, y1, x2, y2) in zip(masks, out["boxes"][b, :n] / 4):
            rows, cols = np.nonzero(mask)
            if len(rows):  # cell centres q + 0.5 inside the box
                assert rows.min() + 0.5 >= y1 and rows.max() + 0.5 < y2
                assert cols.min() + 0.5 >= x1 and cols.max() + 0.5 < x2


@pytest.mark.slow  # builds yolo26-seg-n
def test_yolo26_with_augment_runs_its_one_to_one_head_through_nms():
    model = build_model("yolo26-seg-n", CLASSES, SIZE)
    images = tf.random.uniform((2, SIZE, SIZE, 3), seed=10)
    out = numpy(make_detector(model, 0.0, 0.5, 30, augment=True)(images))
    assert out["boxes"].shape == (2, 30, 4) and out["masks"].shape == (2, 30, 16, 16)
    for b, n in enumerate(out["num_detections"]):
        assert n > 0
        boxes, classes = out["boxes"][b, :n], out["classes"][b, :n]
        iou = pairwise_iou(tf.constant(boxes), tf.constant(boxes)).numpy()  # [n, n]
        same = classes[:, None] == classes
        np.fill_diagonal(same, False)
        assert (iou[same] <= 0.5 + 1e-4).all()  # no two kept boxes of a class overlap past NMS's


def test_an_exported_models_backend_is_refused(network):
    # A backend (``detect`` on letterboxed pixels: the SavedModel and TFLite files) runs a
    # fixed one-view graph: augment cannot reach its network.
    from tfseg.predict.backends import KerasBackend

    with pytest.raises(ValueError, match="augment=true needs a Keras model"):
        make_detector(KerasBackend(network), 0.3, 0.6, 50, augment=True)


def test_the_layer_config_round_trips():
    post = AugmentedPostProcess(scales=(0.75,), flip=False, score_threshold=0.3,
                                max_detections=7, multi_label=True)
    again = AugmentedPostProcess.from_config(post.get_config())
    assert again.get_config() == post.get_config()
    assert again.scales == (0.75,) and not again.flip and again.max_detections == 7
