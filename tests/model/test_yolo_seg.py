"""YoloSeg: parameter counts per scale, the raw-output contract, parity with the reference,
config and .keras round trips, bad arguments."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tfseg.contracts import RAW_OUTPUTS, num_anchors, proto_size
from tfseg.errors import ConfigError
from tfseg.model import YoloSeg, all_model_names, build_model, model_spec
from tfseg.model.import_ultralytics import apply_state_dict
from tfseg.model.summary import count_parameters
from tfseg.ops.anchors import anchor_points
from tfseg.ops.masks import combine_prototypes

FAST = {"yolov8-seg-n", "yolo11-seg-n"}
# Scales built and counted: n, s and m hold every branch of the builders (m: the C3k switch
# of YOLO11/26 and YOLOv8's 768 channel cap); l and x differ from m only by their table row,
# checked against the reference's YAML below. yolo26-seg-n is counted in test_yolo26_seg.py.
COUNTED = [n for n in all_model_names() if n[-1] in "nsm" and n != "yolo26-seg-n"]


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in COUNTED])
def test_parameter_count_equals_reference_at_80_classes(name, reference):
    # Parameters do not depend on the input size: build at the smallest one.
    counts = count_parameters(build_model(name, 80, 32))
    assert counts["parameters"] == reference.counts[name]["parameters"]
    assert counts["trainable"] == reference.counts[name]["gradients"]


@pytest.mark.parametrize("name", all_model_names())
def test_scale_table_equals_the_reference_yaml(name, reference):
    spec = model_spec(name)
    assert [spec.depth, spec.width, spec.max_channels] == reference.counts[name]["scale"]
    # The reference switches C3k inner blocks on in every C3k2 for m, l and x (its
    # parse_model); YOLOv8 has no C3k2.
    assert spec.c3k == (spec.family != "yolov8-seg" and spec.scale in "mlx")


def test_outputs_follow_the_raw_contract():
    model = build_model("yolov8-seg-n", 2, 96)
    out = model(np.zeros((2, 96, 96, 3), np.float32))
    assert set(out) == set(RAW_OUTPUTS)
    a, p = num_anchors(96), proto_size(96)  # 144 + 36 + 9 = 189 anchors, 24 x 24 prototypes
    assert (a, p) == (189, 24)
    assert tuple(out["box_logits"].shape) == (2, a, 64)
    assert tuple(out["class_logits"].shape) == (2, a, 2)
    assert tuple(out["mask_coefficients"].shape) == (2, a, 32)
    assert tuple(out["prototypes"].shape) == (2, p, p, 32)
    assert all(v.dtype == "float32" for v in out.values())


@pytest.fixture(scope="module", params=sorted(FAST))
def imported(request, reference):
    """(name, model with the reference's weights, reference outputs, scene batch)."""
    name = request.param
    model = build_model(name, 3, 160)
    apply_state_dict(model, reference.state(name))
    return name, model, reference.outputs(name), reference.scene()


def test_raw_outputs_match_the_reference(imported):
    name, model, ref, scene = imported
    out = {k: np.asarray(v)[0] for k, v in model(scene).items()}
    for ours, theirs in (("box_logits", "box"), ("class_logits", "cls"),
                         ("mask_coefficients", "coef")):
        np.testing.assert_allclose(out[ours], reference_flat(ref, theirs), atol=1e-4,
                                   err_msg=f"{name} {ours}")
    np.testing.assert_allclose(out["prototypes"], ref["proto"][0].transpose(1, 2, 0), atol=1e-4)
    assert np.abs(out["class_logits"]).max() > 0.1  # the comparison is not between zeros


def reference_flat(outputs: dict, prefix: str) -> np.ndarray:
    """Reference per-level NCHW maps -> ``[A, K]`` in our anchor order (stride 8 first)."""
    levels = [outputs[f"{prefix}{i}"][0] for i in range(3)]  # each [K, H, W]
    return np.concatenate([level.reshape(level.shape[0], -1).T for level in levels], axis=0)


def _decode(box_logits: np.ndarray, size: int) -> np.ndarray:
    """DFL expectation per side, then anchor +- distance * stride: ``[A, 4]`` xyxy pixels."""
    bins = box_logits.reshape(-1, 4, 16)
    probabilities = np.exp(bins - bins.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    distance = probabilities @ np.arange(16, dtype=np.float32)  # [A, 4] (l, t, r, b)
    points, strides = (np.asarray(t) for t in anchor_points(size))
    return np.concatenate([points - distance[:, :2] * strides, points + distance[:, 2:] * strides], -1)


def test_decoded_boxes_scores_and_masks_agree_with_the_reference(imported):
    # The reference decodes its own outputs; decoding ours under the contract's layout
    # (side order, anchor order, strides) must give the same boxes, scores and masks.
    name, model, ref, scene = imported
    out = {k: np.asarray(v) for k, v in model(scene).items()}
    top = ref["top_anchors"]
    boxes = _decode(out["box_logits"][0], 160)[top]
    cx, cy, w, h = ref["top_boxes_xywh"].T
    np.testing.assert_allclose(boxes, np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1),
                               atol=1e-3)
    scores = 1 / (1 + np.exp(-out["class_logits"][0][top]))
    np.testing.assert_allclose(scores, ref["top_scores"], atol=1e-5)
    logits = np.asarray(combine_prototypes(out["mask_coefficients"][:, top], out["prototypes"]))[0]
    np.testing.assert_allclose(1 / (1 + np.exp(-logits)), ref["top_masks"], atol=1e-4)


def test_config_round_trip_and_keras_file_give_equal_outputs(tmp_path):
    model = build_model("yolo11-seg-n", 2, 64)
    for w in model.non_trainable_weights:  # BN statistics away from defaults
        w.assign(np.random.default_rng(3).uniform(0.5, 1.5, w.shape).astype(np.float32))
    x = np.random.default_rng(4).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    expected = {k: np.asarray(v) for k, v in model(x).items()}
    config = model.get_config()
    assert config == {"model_name": "yolo11-seg-n", "num_classes": 2, "image_size": 64,
                      "name": "yolo11_seg_n"}
    clone = YoloSeg.from_config(config)
    clone.set_weights(model.get_weights())
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, YoloSeg)
    for other in (clone, loaded):
        got = other(x)
        for key, value in expected.items():
            np.testing.assert_allclose(np.asarray(got[key]), value, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("args, field", [
    (("yolov8-seg-q", 3, 64), "model.name"), (("yolov8n-seg", 3, 64), "model.name"),
    (("yolo11-seg-n", 3, 100), "model.image_size"), (("yolo11-seg-n", 0, 64), "model.num_classes"),
])
def test_bad_arguments_raise_config_errors_naming_the_key(args, field):
    with pytest.raises(ConfigError, match=field):
        build_model(*args)


def test_unknown_name_suggests_close_names():
    with pytest.raises(ConfigError, match="did you mean yolov8-seg-n"):
        build_model("yolov8-seg-nn", 3, 64)
