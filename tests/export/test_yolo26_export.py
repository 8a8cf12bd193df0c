"""YOLO26-seg exports: end-to-end TFLite with the one-to-one head's top-k and no NMS at all,
uint8 in, masks in, int32 (never int64), no GATHER_ND; float32 equal to Keras + PostProcess,
float16 / dynamic-range int8 / int8-network files working end to end, raw files with both
heads, and the GPU partition report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tfseg.export.parity import compare_batches
from tfseg.predict.backends import TFLiteBackend

pytestmark = pytest.mark.slow  # YOLO26 exports

NAME = "yolo26-seg-n"
REDUCED = ["float16", "dynamic_int8", "int8"]  # converted in the slow set only
MODES = ["float32", *REDUCED]
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "model"


@pytest.fixture(scope="module")
def network(settings):
    """yolo26-seg-n at the folder's size with the weights of the parity fixture: unit-order,
    image-dependent outputs of both heads (a fresh network's scores all tie at the prior)."""
    from reference_weights import reference_like_weights
    from tfseg.model import build_model
    from tfseg.model.import_ultralytics import apply_state_dict

    model = build_model(NAME, settings.classes, settings.size)
    entries = json.loads((FIXTURES / f"{NAME}.state.json").read_text())
    apply_state_dict(model, reference_like_weights(entries))
    head = model.get_layer("head")
    for branch in head.box_branches + head.o2o_box_branches:
        # Random weights give some negative distances (inverted boxes, which no IoU can
        # match); a trained head's are positive: shift them to about 3 strides.
        branch.predict.bias.assign(branch.predict.bias + 3.0)
    return model


@pytest.fixture(scope="module")
def keras_detections(network, letterboxed, settings):
    from tfseg.postprocess import PostProcess

    post = PostProcess(settings.conf, settings.iou, settings.max_det)
    images = tf.cast(tf.constant(letterboxed[0]), tf.float32) / 255.0
    return {k: v.numpy() for k, v in post(network(images, training=False)).items()}


def _export(network, letterboxed, settings, folder, modes, raw):
    from tfseg.export import export

    return export(folder, model=network, num_classes=settings.classes,
                  image_size=settings.size, formats=["tflite"], tflite_modes=modes, raw=raw,
                  score_threshold=settings.conf, iou_threshold=settings.iou,
                  max_detections=settings.max_det,
                  calibration=lambda: iter(letterboxed[0][:2]))


@pytest.fixture(scope="module")
def exported(network, letterboxed, settings, tmp_path_factory):
    """float32 end-to-end and raw (each conversion takes most of a minute on 2 cores)."""
    return _export(network, letterboxed, settings, tmp_path_factory.mktemp("y26"),
                   ["float32"], raw=True)


@pytest.fixture(scope="module")
def reduced(network, letterboxed, settings, tmp_path_factory):
    """float16, dynamic-range int8 and int8-network end-to-end files."""
    return _export(network, letterboxed, settings, tmp_path_factory.mktemp("y26r"),
                   REDUCED, raw=False)


def _file(request, mode):
    fixture = "exported" if mode == "float32" else "reduced"
    return request.getfixturevalue(fixture)[f"tflite_{mode}"]


def _slow_unless_float32(modes):
    return [pytest.param(m, marks=() if m == "float32" else pytest.mark.slow) for m in modes]


def _tensors(path):
    from tfseg.export.structure import inspect_tflite

    return [t for graph in inspect_tflite(path).subgraphs for t in graph.tensors]


def _op_names(path):
    from tfseg.export.structure import inspect_tflite

    return [op.name for graph in inspect_tflite(path).subgraphs for op in graph.operators]


@pytest.mark.parametrize("mode", _slow_unless_float32(MODES))
def test_end_to_end_has_top_k_and_no_nms_int64_or_gather_nd(request, mode, settings):
    path = _file(request, mode)
    names = _op_names(path)
    assert "TOPK_V2" in names
    assert not [n for n in names if n.startswith("NON_MAX_SUPPRESSION") or n in
                ("GATHER_ND", "WHILE")]
    dtypes = {t.dtype for t in _tensors(path)}
    assert "INT64" not in dtypes, sorted(dtypes)
    runner = TFLiteBackend(path, num_threads=2)._interpreter.get_signature_runner("detect")
    details = runner.get_input_details()["images"]
    assert details["dtype"] == np.uint8
    assert list(details["shape"]) == [1, settings.size, settings.size, 3]
    assert {str(v["dtype"].__name__) for v in runner.get_output_details().values()} <= {
        "float32", "int32"}
    metadata = json.loads((Path(path).parent / "metadata.json").read_text())
    assert metadata["post_processing"] == "top-k of the one-to-one head, no NMS"


def test_float32_end_to_end_equals_keras(exported, letterboxed, keras_detections, settings):
    candidate = TFLiteBackend(exported["tflite_float32"], num_threads=2).detect(letterboxed[0])
    assert keras_detections["num_detections"].sum() >= 10, "the fixture must detect something"
    report = compare_batches(keras_detections, candidate, min_iou=0.9,
                             score_margin=settings.conf + 1e-4)
    assert report.unmatched_reference == 0 and report.unmatched_candidate == 0, str(report)
    assert report.max_box_diff < 1e-4 * settings.size, str(report)  # 1e-4 normalized
    assert report.max_score_diff < 1e-4, str(report)
    assert report.min_mask_iou > 0.99, str(report)


@pytest.mark.slow
@pytest.mark.parametrize("mode, min_iou, score_diff", [
    ("float16", 0.8, 0.01), ("dynamic_int8", 0.5, 0.1), ("int8", 0.5, 0.15)])
def test_reduced_precision_end_to_end_close_to_keras(reduced, letterboxed, keras_detections,
                                                     settings, mode, min_iou, score_diff):
    candidate = TFLiteBackend(reduced[f"tflite_{mode}"], num_threads=2).detect(letterboxed[0])
    report = compare_batches(keras_detections, candidate, min_iou=min_iou,
                             score_margin=settings.conf + score_diff)
    assert report.matched >= 0.7 * keras_detections["num_detections"].sum(), str(report)
    assert report.max_score_diff < score_diff, str(report)


@pytest.mark.slow
def test_int8_quantizes_the_network_but_the_one_to_one_boxes_and_top_k(reduced):
    from tfseg.export.structure import inspect_tflite

    graph = inspect_tflite(reduced["tflite_int8"]).subgraphs[0]
    convs = {graph.tensors[op.outputs[0]].name: graph.tensors[op.outputs[0]].dtype
             for op in graph.operators if op.name == "CONV_2D"}
    # The network is int8 but for the one-to-one head's box predictions (one convolution per
    # level), which stay float: nothing after top-k repairs their 8-bit rounding.
    floats = sorted(name for name, dtype in convs.items() if dtype == "FLOAT32")
    assert len(floats) == 3 and all("/o2o_box" in n and "/predict" in n for n in floats), floats
    assert sum(dtype == "INT8" for dtype in convs.values()) > 50
    topk = [op for op in graph.operators if op.name == "TOPK_V2"]
    assert len(topk) == 2
    assert [graph.tensors[op.inputs[0]].dtype for op in topk] == ["FLOAT32", "FLOAT32"]
    assert [graph.tensors[op.outputs[0]].dtype for op in topk] == ["FLOAT32", "FLOAT32"]


def test_raw_file_has_both_heads_equal_to_the_network(exported, network, letterboxed,
                                                       assert_raw_file_equals_network):
    got = assert_raw_file_equals_network(
        exported["tflite_raw_float32"], network, letterboxed[0][:1],
        ("box_logits", "class_logits", "prototypes", "o2o_box_logits", "o2o_class_logits",
         "o2o_mask_coefficients"))
    assert "semantic_logits" not in got  # training only


def test_certificate_scores_the_raw_file_with_its_one_to_one_head(exported, letterboxed,
                                                                   keras_detections, settings):
    """The export's parity check post-processes a raw file on the host: it must take the
    deployed head's top-k, as the Keras model's evaluation does, not the one-to-many + NMS."""
    from tfseg.export.certificate import _RawTFLite
    from tfseg.postprocess import PostProcess

    raw_file = _RawTFLite(exported["tflite_raw_float32"],
                          PostProcess(settings.conf, settings.iou, settings.max_det))
    raw = raw_file.raw(letterboxed[0])
    assert {"o2o_box_logits", "o2o_class_logits", "o2o_mask_coefficients"} <= set(raw)
    got = raw_file.postprocess(raw)
    np.testing.assert_array_equal(got["num_detections"], keras_detections["num_detections"])
    assert int(got["num_detections"].sum()) >= 1
    for b, n in enumerate(got["num_detections"]):
        np.testing.assert_allclose(got["scores"][b, :n], keras_detections["scores"][b, :n],
                                   atol=1e-4)
        np.testing.assert_allclose(got["boxes"][b, :n], keras_detections["boxes"][b, :n],
                                   atol=1e-3)


@pytest.mark.parametrize("mode", _slow_unless_float32(["float32", "float16"]))
def test_gpu_report_network_on_gpu_and_top_k_tail_on_cpu(request, mode, capsys):
    from tfseg.export.api import check_gpu_main
    from tfseg.export.gpu_rules import check_gpu

    assert check_gpu_main(_file(request, mode)) == 0  # what `tfseg export --check-gpu` runs
    assert "end-to-end rule holds" in capsys.readouterr().out
    report = check_gpu(_file(request, mode))
    # on the CPU: the uint8 input CAST and the tail from the first TOPK_V2 on, nothing else
    assert report.problems(end_to_end=True) == [], str(report)
    network = [p for p in report.parts if "CONV_2D" in p.ops]
    assert len(network) == 1 and network[0].device == "GPU", str(report)
    assert network[0].ops.count("CONV_2D") == report.op_names.count("CONV_2D")
    first_cpu = next(p for p in report.parts if p.device == "CPU" and p.ops != ["CAST"])
    assert first_cpu.ops == ["TOPK_V2"], str(report)
