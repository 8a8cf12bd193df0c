"""The export() entry: bad input gives ExportError; backends and the app example read exports."""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfseg.errors import ExportError
from tfseg.export import export


def test_no_model_is_an_export_error(tmp_path):
    # Loading weights from a path is tfseg.resolve's job (tests/test_resolve.py).
    with pytest.raises(ExportError, match="no trained model"):
        export(tmp_path, model=None, num_classes=3, image_size=128)


@pytest.mark.parametrize("size", [100, 0, 48])
def test_size_not_a_multiple_of_32_is_an_export_error(tmp_path, network, size):
    with pytest.raises(ExportError, match="multiple of 32"):
        export(tmp_path, model=network, num_classes=3, image_size=size)


def test_unknown_format_and_class_count_mismatch(tmp_path, network):
    with pytest.raises(ExportError, match="onnx"):
        export(tmp_path, model=network, num_classes=3, image_size=128, formats=["onnx"])
    with pytest.raises(ExportError, match="2 class names for 3 classes"):
        export(tmp_path, model=network, num_classes=3, image_size=128, class_names=["a", "b"])


@pytest.mark.slow  # the shared export
def test_load_backend_reads_metadata_and_matches_keras(exported, letterboxed, keras_detections):
    from tfseg.export.backends import load_backend
    from tfseg.export.parity import compare_batches

    for key in ("tflite_float32", "savedmodel"):
        backend = load_backend(exported[key])
        assert backend.num_classes == 3 and backend.class_names[0] == "circle"
        assert backend.image_size == 128
        report = compare_batches(keras_detections, backend.detect(letterboxed[0]), min_iou=0.9)
        assert report.unmatched_reference == 0 and report.max_score_diff < 1e-4, (key, report)
    with pytest.raises(ExportError, match="raw"):
        load_backend(exported["tflite_raw_float32"])


@pytest.mark.slow  # the shared export
def test_app_example_places_masks_like_the_host_postprocess(exported, image_files, tmp_path):
    """examples/tflite_app.py (numpy only), run as a user runs it, agrees with
    tfseg.postprocess.host pixel for pixel."""
    import cv2

    from example_runner import app_letterbox, tflite_app
    from tfseg.postprocess.host import to_original
    from tfseg.predict.backends import TFLiteBackend

    path = next(p for p in image_files if p.suffix == ".png")
    app, masks = tflite_app(exported["tflite_float32"], path, tmp_path)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    boxed, info = app_letterbox(rgb, 128)
    np.testing.assert_array_equal(np.float32(app["letterbox"]), info)
    want = to_original(TFLiteBackend(exported["tflite_float32"]).detect(boxed[None]),
                       info[None])[0]
    kept = [i for i, d in enumerate(app["detections"])
            if d["box"][2] > d["box"][0] and d["box"][3] > d["box"][1]]
    assert len(kept) == len(want) > 0
    np.testing.assert_allclose([app["detections"][i]["box"] for i in kept], want.boxes, atol=1e-3)
    for i, row in enumerate(kept):
        assert np.array_equal(masks[row], want.full_mask(i))


@pytest.mark.slow  # a fresh process that loads TensorFlow
def test_tfseg_export_imports_from_a_fresh_process():
    result = subprocess.run([sys.executable, "-c", "import tfseg.export, tfseg.export.api; "
                             "print(tfseg.export.FORMATS)"], capture_output=True, text=True,
                            timeout=120, cwd="/")
    assert result.returncode == 0, result.stderr[-1000:]
    assert "savedmodel" in result.stdout


def test_calibration_images_are_letterboxed_training_images(tmp_path):
    """int8 calibration reads prepared records through the pipeline's letterbox: each image
    equals (within one grey level) our letterbox of one of the training files."""
    from pathlib import Path

    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes
    from tfseg.export.api import calibration_images
    from tfseg.ops.letterbox import letterbox_image

    shapes = write_shapes(str(tmp_path / "shapes"), num_train=4, num_val=1, min_size=64,
                          max_size=160, seed=5)
    prepare(shapes["train_images"], [shapes["train_annotations"]], str(tmp_path / "records"),
            num_workers=0, verbose=False)
    images = list(calibration_images(str(tmp_path / "records"), 128, 3)())
    assert len(images) == 3 and all(i.shape == (128, 128, 3) and i.dtype == np.uint8
                                    for i in images)
    references = []
    for path in sorted(Path(shapes["train_images"]).iterdir()):
        decoded = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
        references.append(tf.round(letterbox_image(decoded, 128)[0]).numpy())
    for image in images:
        assert min(np.abs(image - ref).max() for ref in references) <= 1.0
