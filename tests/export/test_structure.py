"""Structure of every exported .tflite: weights frozen in, builtin ops, fixed shapes, names."""

import json

import pytest

from tfseg.export.metadata import read_tflite_metadata
from tfseg.export.structure import inspect_tflite, op_histogram

pytestmark = pytest.mark.slow  # reads the shared export

FILES = ["tflite_float32", "tflite_float16", "tflite_raw_float32", "tflite_raw_float16"]


@pytest.mark.parametrize("key", FILES)
def test_no_variables_flex_or_dynamic_shapes(exported, key):
    facts = inspect_tflite(exported[key])
    assert facts.variable_ops == [] and facts.flex_ops == []
    assert facts.dynamic_tensors() == []
    # The constant buffers are the file: nothing is missing (weights) and nothing else big.
    assert facts.weight_bytes > 0.9 * facts.size_bytes
    assert facts.size_bytes - facts.weight_bytes < 200_000


@pytest.mark.parametrize("key", FILES)
def test_weight_bytes_match_the_network(exported, network, key):
    facts = inspect_tflite(exported[key])
    params = network.count_params()
    # BatchNorm folds into the convolutions, so the file holds a little less than all params.
    bytes_per_weight = 2 if key.endswith("float16") else 4
    expected = params * bytes_per_weight
    assert 0.9 * expected < facts.weight_bytes < 1.1 * expected + 100_000


def test_signatures_and_io_names(exported):
    e2e = inspect_tflite(exported["tflite_float32"])
    assert e2e.signatures == {"detect": {
        "inputs": sorted(["images", "score_threshold", "iou_threshold", "max_detections"]),
        "outputs": sorted(["boxes", "scores", "classes", "masks", "num_detections"])}}
    raw = inspect_tflite(exported["tflite_raw_float32"])
    assert raw.signatures == {"raw": {
        "inputs": ["images"],
        "outputs": sorted(["box_logits", "class_logits", "mask_coefficients", "prototypes"])}}


def test_end_to_end_shapes_and_dtypes(exported, settings):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(exported["tflite_float32"])).get_signature_runner("detect")
    inputs, outputs = runner.get_input_details(), runner.get_output_details()
    assert inputs["images"]["shape"].tolist() == [1, settings.size, settings.size, 3]
    assert inputs["images"]["dtype"].__name__ == "uint8"
    shapes = {k: (v["shape"].tolist(), v["dtype"].__name__) for k, v in outputs.items()}
    p = settings.size // 4
    n = settings.max_det
    assert shapes == {"boxes": ([1, n, 4], "float32"), "scores": ([1, n], "float32"),
                      "classes": ([1, n], "int32"), "masks": ([1, n, p, p], "float32"),
                      "num_detections": ([1], "int32")}


def test_nms_is_the_builtin_v5(exported):
    ops = op_histogram(inspect_tflite(exported["tflite_float32"]))
    assert ops.get("NON_MAX_SUPPRESSION_V5") == 1
    assert "NON_MAX_SUPPRESSION_V4" not in ops and "TOPK_V2" not in ops


def test_metadata_inside_every_file_and_beside(exported, settings):
    beside = json.loads(exported["metadata"].read_text())
    assert beside["class_names"] == ["circle", "rectangle", "triangle"]
    assert beside["category_ids"] == [1, 3, 7] and beside["num_classes"] == settings.classes
    assert beside["input"]["size"] == settings.size
    assert beside["thresholds"]["max_detections"] == settings.max_det
    assert "ymin" in beside["outputs"]["tflite detect"]["boxes"]["meaning"]
    for key in FILES:
        inside = read_tflite_metadata(exported[key])
        assert inside["tflite_file"] == key.removeprefix("tflite_")
        assert {k: v for k, v in inside.items() if k != "tflite_file"} == beside
