"""Run-time thresholds of the exports: the same detections as an export made with them.

One export (the session's, conf 0.3, IoU 0.5, N = 20) is called with score 0.5, IoU 0.3 and
max_detections 5; the reference is the same network exported (or post-processed) with
those values built in.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.export.parity import compare_batches
from tfseg.postprocess import PostProcess

pytestmark = pytest.mark.slow  # the shared export and a re-export

CONF, IOU, KEEP = 0.5, 0.3, 5


def _thresholds(count, conf=CONF, iou=IOU, keep=KEEP):
    return {"score_threshold": np.full([count], conf, np.float32),
            "iou_threshold": np.full([count], iou, np.float32),
            "max_detections": np.full([count], keep, np.int32)}


def _detect(runner, image, **thresholds):
    """One image through a "detect" signature; thresholds not given are -1 (the export's)."""
    feed = _thresholds(1, -1, -1, -1)
    feed.update({k: np.full([1], v, feed[k].dtype) for k, v in thresholds.items()})
    return runner(images=image[None], **feed)


@pytest.fixture(scope="module")
def rebuilt_tflite(network, tmp_path_factory, settings):
    """The end-to-end float32 .tflite exported with CONF, IOU and N = KEEP built in."""
    from tfseg.export.tflite import export_tflite

    files = export_tflite(network, PostProcess(CONF, IOU, KEEP), settings.size,
                          tmp_path_factory.mktemp("rebuilt"), "n", ["float32"], raw=False)
    return files["float32"]


def test_tflite_runtime_thresholds_equal_a_re_export(exported, rebuilt_tflite, letterboxed,
                                                     settings):
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(exported["tflite_float32"]),
                         num_threads=2).get_signature_runner("detect")
    rebuilt = Interpreter(model_path=str(rebuilt_tflite),
                          num_threads=2).get_signature_runner("detect")
    changed = 0
    for image in letterboxed[0]:
        default = _detect(runner, image)
        got = _detect(runner, image, score_threshold=CONF, iou_threshold=IOU,
                      max_detections=KEEP)
        want = _detect(rebuilt, image)  # -1: the values built into the re-export
        assert got["boxes"].shape == (1, settings.max_det, 4), "N stays the export's capacity"
        np.testing.assert_array_equal(got["num_detections"], want["num_detections"])
        for key in ("boxes", "scores", "classes", "masks"):
            np.testing.assert_array_equal(got[key][:, :KEEP], want[key], err_msg=key)
            assert not got[key][:, KEEP:].any(), key
        changed += int(default["num_detections"][0] != got["num_detections"][0])
    assert changed, "the run-time values must change the detections of these images"


def test_tflite_runtime_thresholds_match_keras_with_them(exported, network, letterboxed,
                                                         settings):
    """Each threshold alone, against Keras + a PostProcess built with it (IoU-matched)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(exported["tflite_float32"]),
                         num_threads=2).get_signature_runner("detect")
    raw = network(tf.cast(letterboxed[0], tf.float32) / 255.0, training=False)
    for given, post in [({"score_threshold": CONF}, PostProcess(CONF, settings.iou, 20)),
                        ({"iou_threshold": IOU}, PostProcess(settings.conf, IOU, 20))]:
        want = {k: v.numpy() for k, v in post(raw).items()}
        outs = [_detect(runner, image, **given) for image in letterboxed[0]]
        got = {k: np.concatenate([o[k] for o in outs]) for k in want}
        got["boxes"] = got["boxes"][..., [1, 0, 3, 2]] * settings.size  # yxyx normalized -> xyxy
        report = compare_batches(want, got, min_iou=0.9, score_margin=post.score_threshold + 1e-4)
        assert report.unmatched_reference == 0 and report.unmatched_candidate == 0, (given, report)
        assert report.max_score_diff < 1e-4, (given, report)


def test_tflite_signature_runner_needs_every_input(exported, letterboxed):
    """LiteRT's signature runner refuses a call without the threshold inputs: an app feeds
    them (-1 for the export's values, which the file's metadata also states)."""
    from ai_edge_litert.interpreter import Interpreter

    from tfseg.export.metadata import read_tflite_metadata

    runner = Interpreter(model_path=str(exported["tflite_float32"])).get_signature_runner("detect")
    details = runner.get_input_details()
    assert {k: (v["dtype"], v["shape"].tolist()) for k, v in details.items()} == {
        "images": (np.uint8, [1, 128, 128, 3]), "score_threshold": (np.float32, [1]),
        "iou_threshold": (np.float32, [1]), "max_detections": (np.int32, [1])}
    with pytest.raises(ValueError, match="(?i)number of inputs"):
        runner(images=letterboxed[0][:1])
    inputs = read_tflite_metadata(exported["tflite_float32"])["signatures"]["tflite"]["detect"]
    assert "-1" in inputs["inputs"]["score_threshold"]


def test_savedmodel_threshold_signatures_equal_a_postprocess_built_with_them(
        exported, network, image_files, letterboxed, settings):
    loaded = tf.saved_model.load(str(exported["savedmodel"]))
    images = tf.constant(letterboxed[0])
    count = len(letterboxed[0])
    got = {k: v.numpy() for k, v in loaded.signatures["serving_pixels_thresholds"](
        images=images, **_thresholds(count)).items()}
    raw = network(tf.cast(images, tf.float32) / 255.0, training=False)
    want = {k: v.numpy() for k, v in PostProcess(CONF, IOU, KEEP)(raw).items()}
    np.testing.assert_array_equal(got["num_detections"], want["num_detections"])
    report = compare_batches(want, {k: v[:, :KEEP] for k, v in got.items()
                                    if k != "num_detections"} | {
        "num_detections": got["num_detections"]}, min_iou=0.99)
    assert report.matched == want["num_detections"].sum() > 0, str(report)
    assert report.max_box_diff < 1e-5 * settings.size and report.max_score_diff < 1e-5
    assert not got["masks"][:, KEEP:].any() and got["masks"].shape[1] == settings.max_det
    # -1 everywhere: exactly the signature without thresholds (same graph, same numbers).
    encoded = tf.constant([p.read_bytes() for p in image_files])
    plain = loaded.signatures["serving_default"](image_bytes=encoded)
    same = loaded.signatures["serving_thresholds"](image_bytes=encoded,
                                                   **_thresholds(count, -1, -1, -1))
    for key in plain:
        np.testing.assert_array_equal(plain[key].numpy(), same[key].numpy(), err_msg=key)
    # Per image: the first image keeps the defaults, the others take the run-time values.
    mixed = _thresholds(count)
    for value in mixed.values():
        value[0] = -1
    per_image = loaded.signatures["serving_thresholds"](image_bytes=encoded, **mixed)
    counts = per_image["num_detections"].numpy()
    assert counts[0] == plain["num_detections"].numpy()[0]
    np.testing.assert_array_equal(counts[1:], want["num_detections"][1:])
