"""The GPU-delegate checker on small converted graphs with known answers, and on our exports."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.export.api import check_gpu_main
from tfseg.export.gpu_rules import check_gpu


def _convert(fn, spec) -> bytes:
    specs = spec if isinstance(spec, list) else [spec]
    concrete = tf.function(fn).get_concrete_function(*specs)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


KERNEL = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 3, 8)).astype(np.float32))


def _conv_net(images):
    x = tf.cast(images, tf.float32) / 255.0
    x = tf.nn.conv2d(x, KERNEL, 1, "SAME")
    return tf.sigmoid(x) * x


def test_uint8_cast_then_conv_is_cpu_then_one_gpu_partition():
    report = check_gpu(_convert(_conv_net, tf.TensorSpec([1, 16, 16, 3], tf.uint8)))
    devices = [p.device for p in report.parts]
    assert devices == ["CPU", "GPU"]
    assert report.parts[0].ops == ["CAST"] and "UINT8 -> FLOAT32" in report.parts[0].reasons[0]
    assert report.problems(end_to_end=False) == []


def test_shrink_axis_slice_and_topk_break_the_network():
    def fn(images):
        x = _conv_net(images)  # [1, 16, 16, 8]
        first = x[0]  # shrink-axis STRIDED_SLICE -> [16, 16, 8]
        scores = tf.reshape(first, [1, -1])  # [1, 2048]
        top, _ = tf.math.top_k(scores, k=5)  # TOPK_V2
        return tf.reduce_sum(top)

    report = check_gpu(_convert(fn, tf.TensorSpec([1, 16, 16, 3], tf.uint8)))
    reasons = " ".join(r for p in report.parts for r in p.reasons)
    assert "shrink_axis_mask" in reasons
    assert "TOPK_V2 is not a GPU-delegate op" in reasons
    problems = report.problems(end_to_end=False)
    assert any("STRIDED_SLICE" in p for p in problems) and any("TOPK_V2" in p for p in problems)


def test_rank5_and_int32_gather_are_reported():
    def fn(x, indices):
        y = tf.reshape(x, [1, 2, 2, 2, 4]) * 2.0  # rank 5
        positions = tf.cast(indices, tf.int32)  # runtime indices, 1-D int32
        gathered = tf.gather(positions * 3, positions)  # GATHER of int32 data
        return tf.reduce_sum(y) + tf.cast(tf.reduce_sum(gathered), tf.float32)

    report = check_gpu(_convert(fn, [tf.TensorSpec([1, 4, 4, 2], tf.float32),
                                     tf.TensorSpec([4], tf.float32)]))
    reasons = " ".join(r for p in report.parts for r in p.reasons)
    assert "rank-5" in reasons
    assert "GATHER of int32 data" in reasons


def test_nms_tail_is_allowed_only_in_end_to_end():
    def fn(boxes, scores):
        b = tf.sigmoid(boxes)  # GPU
        keep, _, _ = tf.raw_ops.NonMaxSuppressionV5(
            boxes=b, scores=scores, max_output_size=5, iou_threshold=0.5,
            score_threshold=0.1, soft_nms_sigma=0.0, pad_to_max_output_size=True)
        return keep

    report = check_gpu(_convert(fn, [tf.TensorSpec([10, 4], tf.float32),
                                     tf.TensorSpec([10], tf.float32)]))
    assert [p.device for p in report.parts] == ["GPU", "CPU"]
    assert report.parts[1].ops == ["NON_MAX_SUPPRESSION_V5"]
    assert report.problems(end_to_end=True) == []
    assert any("NON_MAX_SUPPRESSION_V5" in p for p in report.problems(end_to_end=False))


def test_effective_partitions_keep_only_the_largest_gpu_run():
    def fn(images):
        x = _conv_net(images)
        y = tf.math.top_k(tf.reshape(x, [1, -1]), k=3)[0]  # CPU break
        return tf.sigmoid(y)  # a small GPU run after it

    report = check_gpu(_convert(fn, tf.TensorSpec([1, 16, 16, 3], tf.uint8)))
    assert [p.device for p in report.effective].count("GPU") == 1
    assert report.effective[-1].device == "CPU"


@pytest.mark.slow  # the shared export
def test_raw_export_runs_on_gpu_except_the_input_cast(exported):
    """Needs the network's 2x upsampling as one RESIZE_NEAREST_NEIGHBOR (Keras UpSampling2D
    lowers to rank-5 RESHAPE/TILE, which the delegate does not run)."""
    report = check_gpu(exported["tflite_raw_float32"])
    assert report.problems(end_to_end=False) == []
    assert [p.device for p in report.parts] == ["CPU", "GPU"]


@pytest.mark.slow  # the shared export
def test_end_to_end_export_has_one_cpu_tail(exported, capsys):
    assert check_gpu_main(exported["tflite_float32"]) == 0
    assert "end-to-end rule holds" in capsys.readouterr().out


@pytest.mark.slow  # the shared export
def test_end_to_end_export_network_is_one_gpu_subset(exported):
    """With the default single delegated partition, the whole network and the decode (the
    prototype convolutions included) run on the GPU; the CPU runs the cast and NMS tail
    (and the few ops on the run-time threshold inputs, [1] tensors)."""
    report = check_gpu(exported["tflite_float32"])
    devices = [p.device for p in report.effective]
    assert devices == ["CPU", "GPU", "CPU"]
    assert report.effective[0].ops[-1] == "CAST"
    assert set(report.effective[0].ops[:-1]) <= {"LESS", "SELECT_V2", "SPLIT", "RESHAPE",
                                                 "MAXIMUM"}
    gpu_ops = set(report.effective[1].ops)
    assert {"CONV_2D", "TRANSPOSE_CONV", "SOFTMAX", "RESIZE_NEAREST_NEIGHBOR"} <= gpu_ops
    assert not any(name.startswith("NON_MAX") for name in gpu_ops)
