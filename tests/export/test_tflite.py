"""TFLite exports against Keras + PostProcess on real (shapes) images, matched by IoU."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.errors import ExportError
from tfseg.export.parity import compare_batches
from tfseg.predict.backends import TFLiteBackend


def _run_backend(path, images):
    return TFLiteBackend(path, num_threads=2).detect(images)


@pytest.mark.slow  # the shared export
def test_float32_end_to_end_matches_keras(exported, letterboxed, keras_detections, settings):
    candidate = _run_backend(exported["tflite_float32"], letterboxed[0])
    assert keras_detections["num_detections"].sum() >= 10, "the fixture must detect something"
    # A score within 1e-4 of the threshold may fall either side: ignore such unmatched rows.
    report = compare_batches(keras_detections, candidate, min_iou=0.9,
                             score_margin=settings.conf + 1e-4)
    assert report.unmatched_reference == 0 and report.unmatched_candidate == 0, str(report)
    assert report.matched >= keras_detections["num_detections"].sum() - 2, str(report)
    assert report.max_box_diff < 1e-4 * settings.size, str(report)  # 1e-4 normalized
    assert report.max_score_diff < 1e-4, str(report)
    assert report.min_mask_iou > 0.99, str(report)


@pytest.mark.slow  # the shared export
def test_float16_end_to_end_within_stated_tolerances(exported, letterboxed, keras_detections,
                                                     settings):
    """float16 weights: boxes within 0.5 px, scores within 0.01, masks IoU > 0.95."""
    candidate = _run_backend(exported["tflite_float16"], letterboxed[0])
    report = compare_batches(keras_detections, candidate, min_iou=0.8,
                             score_margin=settings.conf + 0.01)
    assert report.unmatched_reference + report.unmatched_candidate <= 2, str(report)
    assert report.max_box_diff < 0.5, str(report)
    assert report.max_score_diff < 0.01, str(report)
    assert report.min_mask_iou > 0.95, str(report)


@pytest.mark.slow  # the shared export
def test_raw_float32_equals_the_network(exported, network, letterboxed,
                                       assert_raw_file_equals_network):
    assert_raw_file_equals_network(exported["tflite_raw_float32"], network, letterboxed[0][:1],
                                   ("box_logits", "class_logits", "mask_coefficients",
                                    "prototypes"))


@pytest.mark.slow  # the shared export
def test_end_to_end_boxes_are_normalized_yxyx(exported, letterboxed, keras_detections, settings):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(exported["tflite_float32"]),
                         num_threads=2).get_signature_runner("detect")
    defaults = {"score_threshold": np.float32, "iou_threshold": np.float32,
                "max_detections": np.int32}  # -1: the export's thresholds
    out = runner(images=letterboxed[0][:1],
                 **{name: np.full([1], -1, dtype) for name, dtype in defaults.items()})
    n = int(out["num_detections"][0])
    boxes = out["boxes"][0, :n]
    assert n > 0 and boxes.min() >= 0.0 and boxes.max() <= 1.0
    assert np.all(boxes[:, 2] >= boxes[:, 0]) and np.all(boxes[:, 3] >= boxes[:, 1])
    # Row 0 has the top score in both; its xyxy pixels are the yxyx normalized ones swapped.
    np.testing.assert_allclose(boxes[0, [1, 0, 3, 2]] * settings.size,
                               keras_detections["boxes"][0, 0],
                               atol=1e-2)
    assert not out["boxes"][0, n:].any() and not out["masks"][0, n:].any()


def _calibration(images):
    return lambda: iter(list(images))


@pytest.mark.slow
def test_int8_network_quantized_and_close_to_float(network, post, letterboxed, tmp_path, settings):
    """int8 raw: int8 convolutions, uint8 input, float outputs near the float network's."""
    from ai_edge_litert.interpreter import Interpreter

    from tfseg.export.structure import inspect_tflite
    from tfseg.export.tflite import export_tflite

    files = export_tflite(network, post, settings.size, tmp_path, "n", ["int8"], raw=True,
                          calibration=_calibration(letterboxed[0]), end_to_end=False)
    facts = inspect_tflite(files["raw_int8"])
    graph = facts.subgraphs[0]
    conv_types = {graph.tensors[op.outputs[0]].dtype for op in graph.operators
                  if op.name == "CONV_2D"}
    assert conv_types == {"INT8"}
    assert facts.weight_bytes < 0.4 * network.count_params() * 4  # int8 weights, not float
    runner = Interpreter(model_path=str(files["raw_int8"])).get_signature_runner("raw")
    got = runner(images=letterboxed[0][:1])["prototypes"]
    want = network(tf.cast(letterboxed[0][:1], tf.float32) / 255.0)["prototypes"].numpy()
    # Quantized, so not equal; but correlated far beyond chance.
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.9


def test_empty_calibration_set_is_an_export_error(network, post, tmp_path, settings):
    from tfseg.export.tflite import export_tflite

    with pytest.raises(ExportError, match="empty"):
        export_tflite(network, post, settings.size, tmp_path, "n", ["int8"],
                      calibration=lambda: iter([]))
    with pytest.raises(ExportError, match="calibration"):
        export_tflite(network, post, settings.size, tmp_path, "n", ["int8"], calibration=None)


def test_unknown_mode_is_an_export_error(network, post, tmp_path, settings):
    from tfseg.export.tflite import export_tflite

    with pytest.raises(ExportError, match="bfloat8"):
        export_tflite(network, post, settings.size, tmp_path, "n", ["bfloat8"])


def _downstream_ops(graph, start):
    """Ops consuming, transitively, the outputs of op ``start`` (file order is topological)."""
    produced, found = set(graph.operators[start].outputs), []
    for op in graph.operators[start + 1:]:
        if produced & set(op.inputs):
            produced.update(op.outputs)
            found.append(op)
    return found


@pytest.mark.slow  # the shared export
def test_float32_end_to_end_has_no_loop_and_keeps_the_gpu_layout(exported):
    """NMS unrolled over the static batch: no WHILE loop (the GPU delegate does not run one,
    the int8 calibrator crashes on one); the network is one GPU partition after the input
    cast, NMS opens the CPU tail, and the NMS code adds no CPU op of its own after it."""
    from tfseg.export.gpu_rules import check_gpu, op_verdict

    report = check_gpu(exported["tflite_float32"])
    names = report.op_names
    assert "WHILE" not in names and names.count("NON_MAX_SUPPRESSION_V5") == 1
    assert report.problems(end_to_end=True) == []
    parts = report.parts
    # [run-time threshold inputs: a few ops on [1] tensors, independent of the image] |
    # input cast | network + decode | NMS alone | mask assembly and output conversion
    assert [p.device for p in parts] == ["GPU", "CPU", "GPU", "CPU", "GPU"]
    assert set(parts[0].ops) <= {"LESS", "SELECT_V2", "SPLIT", "RESHAPE", "MAXIMUM"}
    assert parts[1].ops == ["CAST"]
    assert parts[2].ops.count("CONV_2D") == names.count("CONV_2D")  # the whole network
    assert parts[3].ops == ["NON_MAX_SUPPRESSION_V5"]
    graph = report.graph
    nms = names.index("NON_MAX_SUPPRESSION_V5")
    # The rows kept by NMS (gathers, padding masks) run on the GPU: no shrink-axis or rank-2
    # STRIDED_SLICE from [:, None] after NMS in the NMS code.
    nms_cpu_ops = [f"{op.index} {op.name}: {op_verdict(op, graph)}"
                   for op in _downstream_ops(graph, nms) if op_verdict(op, graph)
                   and any("/nms/" in graph.tensors[i].name for i in op.outputs)]
    assert nms_cpu_ops == []


@pytest.mark.slow
def test_int8_end_to_end_keeps_post_processing_float(exported, network, post, letterboxed,
                                                     keras_detections, tmp_path, settings):
    """int8 network, float post-processing: int8 convolutions, float32 NMS inputs and
    decode, nothing quantized after NMS; detections close to the float network's."""
    from tfseg.export.structure import inspect_tflite
    from tfseg.export.tflite import export_tflite

    files = export_tflite(network, post, settings.size, tmp_path, "n", ["int8"], raw=False,
                          calibration=_calibration(letterboxed[0]))
    graph = inspect_tflite(files["int8"]).subgraphs[0]
    names = [op.name for op in graph.operators]
    assert "WHILE" not in names
    dtypes = {op.name: {graph.tensors[i].dtype for i in op.outputs} for op in graph.operators}
    assert dtypes["CONV_2D"] == {"INT8"}
    nms = names.index("NON_MAX_SUPPRESSION_V5")
    assert [graph.tensors[i].dtype for i in graph.operators[nms].inputs[:2]] == ["FLOAT32",
                                                                                 "FLOAT32"]
    assert dtypes["SOFTMAX"] == {"FLOAT32"}  # the DFL decode stays float
    after = _downstream_ops(graph, nms)
    assert not {"QUANTIZE", "DEQUANTIZE"} & {op.name for op in after}
    assert {graph.tensors[i].dtype for op in after for i in op.outputs} <= {
        "FLOAT32", "INT32", "BOOL"}
    candidate = _run_backend(files["int8"], letterboxed[0])
    report = compare_batches(keras_detections, candidate, min_iou=0.5,
                             score_margin=settings.conf + 0.05)
    assert report.matched >= 0.8 * keras_detections["num_detections"].sum(), str(report)
