"""tfseg's training loss equals the reference's (Ultralytics 8.4) term by term and gradient by
gradient, on the same raw head outputs and targets.

The fixtures (tests/fixtures/loss/<family>.npz, made by tools/make_loss_fixtures.py in an
environment with the reference installed) hold, for YOLOv8-seg, YOLO11-seg and YOLO26-seg at
128 px with 3 classes: seeded raw outputs in the reference's layouts (NCHW, [B, channels, A]),
a batch of three images (48 instances, clusters of overlapping ones and tiny ones of 2-5 px;
none; a huge instance under four others, which three stride-8 anchors of the image's edge
predict well, so that their DFL targets lie past the last bin and are clamped), the
reference's loss terms and assignment, and the gradient of its total with respect to every
raw output. Here the outputs are moved to
RAW_OUTPUTS (tfseg/contracts.py: [B, A, channels], prototypes and semantic logits NHWC; the
anchor order and the DFL channel order, side-major then bin, are the same on both sides), the
targets padded to TRAIN_TARGETS, and tfseg's loss and its tf.GradientTape gradients are mapped
back and compared; so are a batch without any instance and YOLO26's per-epoch head weights.
A fourth fixture (yolov8-seg-at-96) holds a batch that multi-scale training drew at 96 px for
the 128 px model: raw outputs of a 96 px input, masks still on the 32 x 32 grid.

Tolerance: 1e-4 relative, a term against its value, a gradient by its largest difference over
its largest magnitude (the elements of a gradient span many decades). The two sides agree to
about 1e-6: float32 sums in a different order.

What the reference computes, and tfseg with it: the total is the sum of the gained terms times
the batch size; the logged terms are without that factor. box (CIoU) and dfl (or YOLO26's l1,
distances over the image side) are weighted per positive by its target-score sum and divided
by the batch's target-score sum (clamped at 1), as is cls (BCE summed over anchors and
classes); seg is the mean over the batch's positives of each mask's BCE summed in its GT box
over the box area (prototype pixels), under the box gain; YOLO26's sem (half BCE, half Dice
against the class of the smallest covering mask) is under the box gain too, and its total is
0.8 one-to-many + 0.2 one-to-one in the first epoch, the one-to-one head seeing detached
prototypes.

Where tfseg differs on purpose, the fixtures hold the reference's values twice: as it is
(``ref_``) and with tfseg's rule swapped in (``conv_``, nothing else changed). tfseg equals
``conv_`` exactly; test_deliberate_differences shows the size of each difference against
``ref_``:

- Mask crop. tfseg keeps a prototype pixel when its centre lies in the box, the convention of
  its masks (pixel p covers input pixels [4p, 4p + 4), pooled from the full-size mask); the
  reference keeps it when its top-left corner does, the convention of cv2's rasterizing of
  its polygons (pixel centres at integer coordinates). tfseg also floors the box area at one
  prototype pixel, so the one pixel a tiny box may cover weighs at most 1.
- YOLO26 assignment. tfseg assigns YOLO26's heads by box overlap, like YOLOv8/11; the
  reference's YOLO26 loss also averages in the IoU of each candidate's predicted mask with
  the GT mask. The positives, and so every term, differ.

Masks: the reference is run with per-instance masks (``overlap_mask=False``), as tfseg's
targets are. Its default packs an image's masks into one index image, the smaller instance on
top, which takes the pixels a smaller instance covers out of the larger one's target; tfseg
keeps each instance's whole mask (COCO's annotation, and what the evaluation scores), so it
has no overlap mode to compare.

Crowds: neither side has a crowd term. The reference drops crowd annotations when it converts
COCO to its labels; tfseg removes them in the pipeline (tfseg/pipeline/targets.py,
remove_crowd), so no crowd reaches either loss and the fixtures hold none.
"""

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfseg.loss import EndToEndSegLoss, YoloSegLoss, assign
from tfseg.loss.end_to_end_loss import O2O_TOPK, O2O_TOPK2, one_to_many_weight
from tfseg.loss.mask_loss import mask_loss
from tfseg.ops.anchors import anchor_points
from tfseg.ops.boxes import boxes_to_distances, distances_to_boxes
from tfseg.ops.dfl import dfl_expectation

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "loss"
FAMILIES = ("yolov8-seg", "yolo11-seg", "yolo26-seg")
TOLERANCE = 1e-4
# tfseg's raw output -> the reference's name (the o2o_ prefix is kept on both sides).
REFERENCE_NAMES = {"box_logits": "boxes", "class_logits": "scores",
                   "mask_coefficients": "mask_coefficient", "prototypes": "proto",
                   "semantic_logits": "semantic"}
TERM_NAMES = ("box", "seg", "cls", "distance", "sem")  # the reference's order of its items


@lru_cache(maxsize=None)
def load(family: str) -> dict:
    with np.load(FIXTURES / f"{family}.npz") as data:
        return {key: data[key] for key in data.files}


def targets(fixture: dict) -> dict:
    """The reference's flat instance lists, padded per image to TRAIN_TARGETS."""
    batch = fixture["proto"].shape[0]
    image = fixture["batch_idx"]
    slots = int(np.bincount(image, minlength=batch).max())
    proto = fixture["masks"].shape[-1]
    boxes = np.zeros((batch, slots, 4), np.float32)
    classes = np.full((batch, slots), -1, np.int32)
    masks = np.zeros((batch, slots, proto, proto), np.uint8)
    for b in range(batch):
        count = int(np.sum(image == b))
        boxes[b, :count] = fixture["bboxes"][image == b]
        classes[b, :count] = fixture["cls"][image == b]
        masks[b, :count] = fixture["masks"][image == b]
    return {"boxes": tf.constant(boxes), "classes": tf.constant(classes),
            "masks": tf.constant(masks)}


def _to_tfseg(name: str, value: np.ndarray) -> np.ndarray:
    """Reference layout -> RAW_OUTPUTS layout: [B, ch, A] -> [B, A, ch]; NCHW -> NHWC."""
    value = np.asarray(value, np.float32)
    return value.transpose(0, 2, 3, 1) if value.ndim == 4 else value.transpose(0, 2, 1)


def _to_reference(value: np.ndarray) -> np.ndarray:
    """RAW_OUTPUTS layout -> reference layout (the inverse of _to_tfseg)."""
    return value.transpose(0, 3, 1, 2) if value.ndim == 4 else value.transpose(0, 2, 1)


def raw_outputs(fixture: dict) -> dict[str, tf.Tensor]:
    raw = {}
    for prefix in ("", "o2o_"):
        for key in ("box_logits", "class_logits", "mask_coefficients"):
            if prefix + REFERENCE_NAMES[key] in fixture:
                raw[prefix + key] = _to_tfseg(key, fixture[prefix + REFERENCE_NAMES[key]])
    for key in ("prototypes", "semantic_logits"):
        if REFERENCE_NAMES[key] in fixture:
            raw[key] = _to_tfseg(key, fixture[REFERENCE_NAMES[key]])
    return {key: tf.constant(value) for key, value in raw.items()}


def make_loss(fixture: dict, static_shapes: bool = True, **options):
    """tfseg's loss for the fixture's family, by default as training builds it (its mask term
    covers every positive: ``max_mask_anchors`` 0)."""
    size, classes = int(fixture["image_size"]), int(fixture["num_classes"])
    kind = EndToEndSegLoss if "o2o_boxes" in fixture else YoloSegLoss
    return kind(image_size=size, num_classes=classes, static_shapes=static_shapes, **options)


def heads(loss) -> list[tuple[str, YoloSegLoss]]:
    """(fixture prefix, loss of that head) for each head."""
    if isinstance(loss, EndToEndSegLoss):
        return [("", loss.one_to_many), ("o2o_", loss.one_to_one)]
    return [("", loss)]


def reference_gradients(loss, y: dict, raw: dict) -> dict[str, np.ndarray]:
    """Gradients of tfseg's total with respect to each raw output, in the reference's layouts
    and under its names (``boxes``, ``o2o_scores``, ...); zeros where none flows."""
    with tf.GradientTape() as tape:
        tape.watch(list(raw.values()))
        total, _ = loss(y, raw)
    out = {}
    for key, gradient in tape.gradient(total, raw).items():
        prefix = "o2o_" if key.startswith("o2o_") else ""
        value = tf.zeros_like(raw[key]) if gradient is None else gradient
        out[prefix + REFERENCE_NAMES[key[len(prefix):]]] = _to_reference(value.numpy())
    return out


def relative(ours, theirs) -> float:
    """Largest difference over the largest magnitude of the reference's value."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.max(np.abs(ours - theirs)) / max(np.max(np.abs(theirs)), 1e-12))


def head_terms(loss: YoloSegLoss, y: dict, raw: dict) -> np.ndarray:
    """One head's terms in the reference's order (0 for a term the head does not have)."""
    _, terms = loss(y, raw)
    named = {("distance" if name in ("dfl", "l1") else name): float(value)
             for name, value in terms.items()}
    return np.array([named.get(name, 0.0) for name in TERM_NAMES])


def tfseg_assignment(loss: YoloSegLoss, y: dict, raw: dict):
    """The assignment tfseg's loss makes for one head -> (foreground [B, A], GT index [B, A])."""
    points, strides = anchor_points(loss.image_size)
    box_logits = raw[loss.head_prefix + "box_logits"]
    pred_boxes = distances_to_boxes(points, dfl_expectation(box_logits, loss.reg_max) * strides)
    out = assign(tf.sigmoid(raw[loss.head_prefix + "class_logits"]), pred_boxes, points,
                 y["boxes"], y["classes"], loss.topk, loss.alpha, loss.beta, topk2=loss.topk2)
    return out.foreground.numpy(), out.gt_index.numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_terms_and_gradients_equal_the_reference(family):
    fixture = load(family)
    y, raw = targets(fixture), raw_outputs(fixture)
    loss = make_loss(fixture)
    gradients = reference_gradients(loss, y, raw)
    for prefix, head in heads(loss):
        ours, theirs = head_terms(head, y, raw), fixture[f"conv_{prefix}terms"]
        for name, a, b in zip(TERM_NAMES, ours, theirs):
            assert abs(a - b) <= TOLERANCE * abs(b), f"{prefix}{name}: {a} vs {b}"
    assert len(gradients) == len(raw)
    for name, ours in gradients.items():
        theirs = fixture["grad_" + name]
        assert np.abs(theirs).max() > 0, f"{name}: the reference's gradient is zero"
        assert relative(ours, theirs) <= TOLERANCE, f"gradient of {name}"


@pytest.mark.parametrize("family", FAMILIES)
def test_a_batch_without_instances_equals_the_reference(family):
    """No GT in the whole batch (the reference takes a path of its own for it): only cls is
    nonzero (over the clamped score sum, 1), and only the class logits get a gradient."""
    fixture = load(family)
    y, raw = targets(fixture), raw_outputs(fixture)
    y = {"boxes": tf.zeros_like(y["boxes"]), "classes": tf.fill(tf.shape(y["classes"]), -1),
         "masks": tf.zeros_like(y["masks"])}
    loss = make_loss(fixture)
    for prefix, head in heads(loss):
        np.testing.assert_allclose(head_terms(head, y, raw), fixture[f"empty_{prefix}terms"],
                                   rtol=TOLERANCE, atol=1e-7)
    for name, ours in reference_gradients(loss, y, raw).items():
        if "empty_grad_" + name in fixture:
            assert relative(ours, fixture["empty_grad_" + name]) <= TOLERANCE, name
        else:
            assert not np.any(ours), f"{name} moved on a batch without instances"


def test_yolo26_head_weights_follow_the_reference_schedule():
    """The one-to-many weight of each epoch of a 100-epoch run, against the reference's."""
    schedule = load("yolo26-seg")["o2m_schedule"]
    ours = [one_to_many_weight(epoch, len(schedule)) for epoch in range(len(schedule))]
    np.testing.assert_allclose(ours, schedule, rtol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_assignment_equals_the_reference(family):
    """Positives and their GTs are the same anchors on both sides, the dense image has many,
    the empty image none."""
    fixture = load(family)
    y, raw = targets(fixture), raw_outputs(fixture)
    for prefix, head in heads(make_loss(fixture)):
        foreground, gt_index = tfseg_assignment(head, y, raw)
        np.testing.assert_array_equal(foreground, fixture[f"conv_{prefix}fg"])
        np.testing.assert_array_equal(np.where(foreground, gt_index, 0),
                                      np.where(foreground, fixture[f"conv_{prefix}gt_index"], 0))
        per_image = foreground.sum(axis=1)
        assert per_image[0] >= (30 if prefix else 100) and per_image[1] == 0 and per_image[2] > 0
        if prefix:  # one-to-one: at most one positive per GT
            assert O2O_TOPK2 == 1 and O2O_TOPK == 7
            for b in range(foreground.shape[0]):
                assert len(set(gt_index[b][foreground[b]])) == per_image[b]


def test_a_mask_cap_below_the_positives_departs_from_the_reference():
    """The dense image has 130 positives; a cap of 64 leaves most of them out of the mask term
    (the other terms do not see the cap), a cap of 130 none."""
    fixture = load("yolov8-seg")
    y, raw = targets(fixture), raw_outputs(fixture)
    assert fixture["conv_fg"].sum(axis=1).max() == 130
    capped = head_terms(make_loss(fixture, max_mask_anchors=64), y, raw)
    covering = head_terms(make_loss(fixture, max_mask_anchors=130), y, raw)
    seg = TERM_NAMES.index("seg")
    np.testing.assert_allclose(covering, fixture["conv_terms"], rtol=TOLERANCE)
    assert abs(capped[seg] / fixture["conv_terms"][seg] - 1.0) > 1e-3
    np.testing.assert_allclose(np.delete(capped, seg), np.delete(fixture["conv_terms"], seg),
                               rtol=TOLERANCE)


def test_a_mask_cap_of_zero_makes_masks_for_every_positive():
    """mask_loss with max_anchors 0 covers every positive, whatever their count (here with no
    bound from the instance count): times the box gain it is the reference's seg term."""
    fixture = load("yolov8-seg")
    y, raw = targets(fixture), raw_outputs(fixture)
    loss = make_loss(fixture)
    foreground, gt_index = tfseg_assignment(loss, y, raw)
    inputs = (raw["mask_coefficients"], raw["prototypes"], y["masks"], y["boxes"],
              tf.constant(gt_index), tf.constant(foreground), tf.ones(foreground.shape))
    every = float(mask_loss(*inputs, max_anchors=0))
    reference = fixture["conv_terms"][TERM_NAMES.index("seg")]
    np.testing.assert_allclose(every * loss.gains["seg"], reference, rtol=TOLERANCE)
    assert abs(float(mask_loss(*inputs, max_anchors=64)) / every - 1.0) > 1e-3


@pytest.mark.parametrize("family", ("yolov8-seg", "yolo11-seg"))
def test_the_fixtures_reach_the_dfl_clamp(family):
    """Some positives' target distances pass the last DFL bin (15 strides), so the parity
    covers the clamp of the DFL target."""
    fixture = load(family)
    y = targets(fixture)
    points, strides = anchor_points(int(fixture["image_size"]))
    assigned = tf.gather(y["boxes"], fixture["conv_gt_index"].astype(np.int32), batch_dims=1)
    distances = (boxes_to_distances(points, assigned) / strides).numpy()  # [B, A, 4] strides
    assert np.sum(distances[fixture["conv_fg"]] > 15.0) >= 1


def test_the_run_time_shaped_loss_equals_the_reference_too():
    """The graph executor's variant (candidate pairs only, masks sized by the positives)."""
    fixture = load("yolov8-seg")
    y, raw = targets(fixture), raw_outputs(fixture)
    ours = head_terms(make_loss(fixture, static_shapes=False), y, raw)
    np.testing.assert_allclose(ours, fixture["conv_terms"], rtol=TOLERANCE)


@pytest.mark.parametrize("family", ("yolov8-seg", "yolo11-seg"))
def test_deliberate_differences_yolov8_and_11_only_the_mask_crop(family):
    """Against the reference as it is, only seg differs (the crop convention), by a few
    percent; box, cls and dfl are equal."""
    fixture = load(family)
    ours = head_terms(make_loss(fixture), targets(fixture), raw_outputs(fixture))
    reference = fixture["ref_terms"]
    for index, name in enumerate(TERM_NAMES):
        gap = abs(ours[index] - reference[index]) / max(abs(reference[index]), 1e-12)
        if name == "seg":
            assert TOLERANCE < gap < 0.05, f"seg: {ours[index]} vs {reference[index]}"
        else:
            assert gap <= TOLERANCE, f"{name}: {ours[index]} vs {reference[index]}"
    np.testing.assert_array_equal(fixture["ref_fg"], fixture["conv_fg"])


def test_deliberate_differences_yolo26_mask_aware_assignment():
    """The reference's YOLO26 loss picks other positives (mask IoU in its overlap), so its
    terms differ; the semantic term, which no assignment touches, is equal."""
    fixture = load("yolo26-seg")
    loss = make_loss(fixture)
    y, raw = targets(fixture), raw_outputs(fixture)
    for prefix, head in heads(loss):
        assert not np.array_equal(fixture[f"ref_{prefix}fg"], fixture[f"conv_{prefix}fg"])
        ours, reference = head_terms(head, y, raw), fixture[f"ref_{prefix}terms"]
        gaps = np.abs(ours - reference) / np.abs(reference)
        assert gaps[TERM_NAMES.index("sem")] <= TOLERANCE
        assert np.all(gaps[:4] > TOLERANCE), dict(zip(TERM_NAMES, gaps))


def _multi_scale_inputs():
    """The batch a multi-scale run drew at 96 px for a 128 px model: raw outputs of a 96 px
    input, boxes in its pixels, masks still on the 32 x 32 grid of 128 px."""
    fixture = load("yolov8-seg-at-96")
    y, raw = targets(fixture), raw_outputs(fixture)
    scale = int(fixture["input_size"]) / int(fixture["image_size"])
    assert raw["prototypes"].shape[1] == 24 and y["masks"].shape[-1] == 32 and scale == 0.75
    return fixture, dict(y, boxes=y["boxes"] * scale), raw


def test_a_batch_drawn_at_another_size_equals_the_reference():
    """Multi-scale training: the prototypes are brought to the masks' grid (bilinear, as the
    reference does), the boxes measured against the batch's own size; every term and
    gradient equals the reference's."""
    fixture, y, raw = _multi_scale_inputs()
    loss = make_loss(fixture)  # built for 128 px, as the model is
    np.testing.assert_allclose(head_terms(loss, y, raw), fixture["conv_terms"], rtol=TOLERANCE)
    for name, ours in reference_gradients(loss, y, raw).items():
        assert relative(ours, fixture["grad_" + name]) <= TOLERANCE, f"gradient of {name}"


def test_one_trace_with_run_time_sizes_gives_the_same_loss():
    """What the train step traces under multi-scale training: the image side unknown until
    run time. The same graph serves a batch at 96 px and one at the model's own 128 px, and
    both equal the reference."""
    drawn, y, raw = _multi_scale_inputs()
    own = load("yolov8-seg")
    loss = make_loss(own, static_shapes=False)
    traced = tf.function(lambda y, raw: loss(y, raw)[1], reduce_retracing=True)
    spec = {key: tf.TensorSpec([None] * (value.shape.rank - 1) + [value.shape[-1]])
            for key, value in raw.items()}  # [B, A, C] and [B, H, W, 32], all but C unknown
    concrete = traced.get_concrete_function(
        {key: tf.TensorSpec(value.shape, value.dtype) for key, value in y.items()}, spec)
    for fixture, targets_, outputs in ((drawn, y, raw), (own, targets(own), raw_outputs(own))):
        terms = concrete(targets_, outputs)
        ours = np.array([float(terms[n]) for n in ("box", "seg", "cls", "dfl")])
        np.testing.assert_allclose(ours, fixture["conv_terms"][:4], rtol=TOLERANCE)
