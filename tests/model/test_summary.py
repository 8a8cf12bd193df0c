"""Summary figures: the reference's parameter convention and GFLOPs close to its thop count."""

from __future__ import annotations

import keras

from tfseg.model import build_model
from tfseg.model.summary import count_gflops, count_parameters, format_summary


def test_gflops_of_v8n_are_just_below_the_reference_thop_count(reference):
    # YOLOv8 has convolutions only, so FLOPs scale exactly with S^2: 64 px x 100 = 640 px.
    # thop also counts BN and activations, which we leave out: a little below, within 2 %.
    ours_640 = count_gflops(build_model("yolov8-seg-n", 80, 64)) * 100
    reference_640 = reference.counts["yolov8-seg-n"]["gflops_640"]
    assert 0.98 * reference_640 <= ours_640 <= reference_640


def test_parameter_convention_and_table():
    model = build_model("yolov8-seg-n", 3, 64)
    counts = count_parameters(model)
    # trainable + the 16 fixed DFL weights the reference counts; BN statistics apart
    assert counts["parameters"] == counts["trainable"] + 16
    assert counts["bn_statistics"] == sum(int(w.shape[0]) for w in model.non_trainable_weights)
    table = format_summary({"model": "yolov8-seg-n", "num_classes": 3, "image_size": 64,
                            **counts, "gflops": 0.12, "layers": 24})
    assert f"{counts['parameters']:,} (reference convention)" in table
    assert "GFLOPs @ 64" in table


def test_mixed_precision_keeps_float32_outputs():
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("yolov8-seg-n", 2, 64)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert model.get_layer("stem").compute_dtype == "float16"
    assert all(o.dtype == "float32" for o in model.outputs)
