"""The TF Serving SavedModel: parity with Keras, a TF-only process, warmup, bad requests."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from tfseg.errors import ExportError
from tfseg.export.parity import compare_batches
from tfseg.ops.letterbox import letterbox_inverse_boxes

pytestmark = pytest.mark.slow  # the shared export, loaded


@pytest.fixture(scope="module")
def loaded(exported):
    return tf.saved_model.load(str(exported["savedmodel"]))


def _numpy(outputs):
    return {k: v.numpy() for k, v in outputs.items()}


def test_versioned_layout_and_models_config(exported):
    version = Path(exported["savedmodel"])
    assert version.name == "3" and version.parent.name == "shapes"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    leftovers = [p.name for p in version.parent.iterdir() if p.name != "3"]
    assert leftovers == [], "the temporary folder must be renamed, not left behind"
    config = (version.parent.parent / "models.config").read_text()
    # The path inside the container of docs/export.md's `docker run -v <export dir>:/models`.
    assert 'name: "shapes"' in config and 'base_path: "/models/shapes"' in config
    assert (version.parent.parent / "batching_parameters.txt").is_file()
    metadata = json.loads((version / "assets.extra" / "metadata.json").read_text())
    assert metadata["class_names"] == ["circle", "rectangle", "triangle"]


def test_pixels_signature_equals_keras(loaded, letterboxed, keras_detections, settings):
    out = _numpy(loaded.signatures["serving_pixels"](images=tf.constant(letterboxed[0])))
    np.testing.assert_array_equal(out["num_detections"], keras_detections["num_detections"])
    report = compare_batches(keras_detections, out, min_iou=0.99)
    assert report.matched == keras_detections["num_detections"].sum(), str(report)
    assert report.max_box_diff < 1e-5 * settings.size and report.max_score_diff < 1e-5, str(report)
    # Mask probabilities: the SavedModel's graph fuses ops differently from eager Keras.
    assert report.max_mask_diff < 5e-5 and report.min_mask_iou == 1.0, str(report)


def test_bytes_signature_returns_original_pixels(loaded, image_files, letterboxed,
                                                 keras_detections, settings):
    """Encoded JPEG/PNG of several sizes -> the same detections, boxes in original pixels."""
    encoded = tf.constant([p.read_bytes() for p in image_files])
    out = _numpy(loaded.signatures["serving_default"](image_bytes=encoded))
    # The PNG masks back to probabilities (empty padding rows as zeros), to compare as floats.
    size = settings.size // 4
    out["masks"] = np.array([[cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
                              if png else np.zeros((size, size), np.uint8) for png in row]
                             for row in out.pop("masks_png_bytes")], np.float32) / 255.0
    images, infos = letterboxed
    np.testing.assert_allclose(out["letterbox"], infos, atol=1e-6)
    for i, path in enumerate(image_files):
        height, width = cv2.imread(str(path)).shape[:2]
        assert out["letterbox"][i, :2].tolist() == [height, width]
    expected = dict(keras_detections)
    valid = (np.arange(expected["boxes"].shape[1])[None] < expected["num_detections"][:, None])
    expected["boxes"] = letterbox_inverse_boxes(expected["boxes"], infos).numpy() * valid[..., None]
    report = compare_batches(expected, out, min_iou=0.99)
    assert report.matched == expected["num_detections"].sum(), str(report)
    assert report.max_box_diff < 1e-3 and report.max_score_diff < 1e-5, str(report)
    assert not out["boxes"][~valid].any(), "padding rows stay zero"


def test_grey_and_rgba_png_become_rgb(loaded, letterboxed, settings):
    """A grey PNG decodes to three equal channels; RGBA drops alpha: same as the RGB image."""
    rgb = np.zeros((40, 90, 3), np.uint8)
    rgb[5:30, 10:60] = (200, 30, 90)
    rgba = np.dstack([rgb, np.full((40, 90), 255, np.uint8)])
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    encode = lambda a: cv2.imencode(".png", a)[1].tobytes()  # noqa: E731
    out = loaded.signatures["serving_default"](image_bytes=tf.constant([
        encode(rgb[..., ::-1]), encode(cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA)), encode(grey)]))
    scores = out["scores"].numpy()
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-6)
    np.testing.assert_allclose(out["letterbox"].numpy()[2], [40, 90, settings.size / 90, 35, 0],
                               atol=1e-5)


def test_bytes_that_are_not_an_image_fail_the_request_only(loaded, image_files):
    serve = loaded.signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)image"):
        serve(image_bytes=tf.constant([b"this is not an image"]))
    # The same loaded model answers the next, good request.
    out = serve(image_bytes=tf.constant([image_files[0].read_bytes()]))
    assert out["boxes"].shape == (1, 20, 4)


def test_fresh_tensorflow_only_process_loads_and_answers(exported, image_files):
    script = (
        "import sys, tensorflow as tf\n"
        f"m = tf.saved_model.load({str(exported['savedmodel'])!r})\n"
        f"data = open({str(image_files[0])!r}, 'rb').read()\n"
        "out = m.signatures['serving_default'](image_bytes=tf.constant([data]))\n"
        "assert not any(name.startswith('tfseg') for name in sys.modules), 'tfseg imported'\n"
        "print(sorted(out), int(out['num_detections'][0]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    assert ("['boxes', 'classes', 'letterbox', 'masks_png_bytes', 'num_detections', 'scores']"
            in result.stdout)


def test_saved_model_cli_lists_the_signatures(exported):
    cli = Path(sys.executable).parent / "saved_model_cli"
    command = [str(cli)] if cli.exists() else [sys.executable, "-m",
                                               "tensorflow.python.tools.saved_model_cli"]
    result = subprocess.run(command + ["show", "--dir", str(exported["savedmodel"]), "--all"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("signature_def['serving_default']", "signature_def['serving_pixels']",
                 "signature_def['serving_thresholds']",
                 "signature_def['serving_pixels_thresholds']", "score_threshold",
                 "image_bytes", "dtype: DT_STRING", "shape: (-1, 128, 128, 3)", "letterbox",
                 "masks_png_bytes"):
        assert text in result.stdout, text


def _prediction_log_class():
    """PredictionLog as TF Serving defines it (the fields we write), built from descriptors."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from tensorflow.core.framework import tensor_pb2

    pool = descriptor_pool.DescriptorPool()
    for module in (tensor_pb2,):
        for dep in _file_and_deps(module.DESCRIPTOR):
            pool.Add(dep)
    proto = descriptor_pb2.FileDescriptorProto(name="serving_test.proto",
                                               package="tensorflow.serving",
                                               dependency=[tensor_pb2.DESCRIPTOR.name],
                                               syntax="proto3")
    F = descriptor_pb2.FieldDescriptorProto
    spec = proto.message_type.add(name="ModelSpec")
    spec.field.add(name="name", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    spec.field.add(name="signature_name", number=3, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    request = proto.message_type.add(name="PredictRequest")
    entry = request.nested_type.add(name="InputsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".tensorflow.TensorProto")
    request.field.add(name="model_spec", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                      type_name=".tensorflow.serving.ModelSpec")
    request.field.add(name="inputs", number=2, type=F.TYPE_MESSAGE, label=F.LABEL_REPEATED,
                      type_name=".tensorflow.serving.PredictRequest.InputsEntry")
    log = proto.message_type.add(name="PredictLog")
    log.field.add(name="request", number=1, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                  type_name=".tensorflow.serving.PredictRequest")
    outer = proto.message_type.add(name="PredictionLog")
    outer.field.add(name="predict_log", number=6, type=F.TYPE_MESSAGE, label=F.LABEL_OPTIONAL,
                    type_name=".tensorflow.serving.PredictLog")
    pool.Add(proto)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.PredictionLog"))


def _file_and_deps(file_descriptor):
    from google.protobuf import descriptor_pb2

    seen = []
    for dep in file_descriptor.dependencies:
        seen += _file_and_deps(dep)
    proto = descriptor_pb2.FileDescriptorProto()
    file_descriptor.CopyToProto(proto)
    return seen + [proto]


def test_warmup_requests_parse_as_prediction_logs_and_run(exported, loaded, settings):
    """One request per REST signature (serving_default, serving_thresholds at -1), each of
    which the model answers as TF Serving replays it at load time."""
    path = Path(exported["savedmodel"]) / "assets.extra" / "tf_serving_warmup_requests"
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    assert len(records) == 2
    requests = [_prediction_log_class().FromString(r).predict_log.request for r in records]
    assert [r.model_spec.name for r in requests] == ["shapes", "shapes"]
    assert [r.model_spec.signature_name for r in requests] == ["serving_default",
                                                               "serving_thresholds"]
    for request in requests:
        tensor = tf.make_ndarray(request.inputs["image_bytes"])
        image = cv2.imdecode(np.frombuffer(tensor[0], np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (settings.size, settings.size, 3) and np.all(image == 114)
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        out = loaded.signatures[request.model_spec.signature_name](**inputs)
        assert out["masks_png_bytes"].shape == (1, settings.max_det)
    assert sorted(requests[1].inputs) == ["image_bytes", "iou_threshold", "max_detections",
                                          "score_threshold"]
    assert tf.make_ndarray(requests[1].inputs["max_detections"]).tolist() == [-1]


def test_existing_version_is_refused(exported, network, post, settings):
    from tfseg.export.savedmodel import export_savedmodel

    root = Path(exported["savedmodel"]).parent.parent
    with pytest.raises(ExportError, match="already exists"):
        export_savedmodel(network, post, settings.size, root, "shapes", 3)


def test_predicts_backend_loads_it_without_tensorflows_gradient_warnings(exported, caplog):
    """The file leaves gradient functions out on purpose; TensorFlow warns once per function
    when such a file is loaded ("unsaved custom gradients"), which the backend keeps from
    the user's console: it is the load ``tfseg predict``/``val`` and the parity check do."""
    import logging

    from tfseg.predict.backends import SavedModelBackend

    with caplog.at_level(logging.WARNING):
        backend = SavedModelBackend(exported["savedmodel"])
    assert backend.image_size > 0
    assert not [r for r in caplog.records if "custom gradients" in r.getMessage()]
