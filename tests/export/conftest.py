"""Session fixtures of the export tests: one small network, real images, one export.

The network and the export (SavedModel + end-to-end and raw TFLite in float32 and float16)
are tests/shared_exports.py's: the export is written once per test run, whatever the number
of workers, since conversions dominate the time of these tests on 2 cores.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from shared_exports import CLASSES, CONF, IOU, MAX_DET, SIZE, detecting_network, shared_export


@pytest.fixture(scope="session")
def settings():
    """The constants of this folder's export (test modules cannot import conftest)."""
    return SimpleNamespace(size=SIZE, classes=CLASSES, max_det=MAX_DET, conf=CONF, iou=IOU)


@pytest.fixture(scope="session")
def network():
    return detecting_network()


@pytest.fixture(scope="session")
def make_network():
    """The fixture network's recipe at another size: ``make_network(640)``."""
    return detecting_network


@pytest.fixture(scope="session")
def shapes(tmp_path_factory):
    """The shapes dataset: val images of several sizes and aspect ratios (JPEG and PNG)."""
    from tfseg.data.shapes import write_shapes

    return write_shapes(str(tmp_path_factory.mktemp("shapes")), num_train=4, num_val=4,
                        min_size=64, max_size=200, num_classes=CLASSES, seed=3)


@pytest.fixture(scope="session")
def image_files(shapes):
    files = sorted(p for p in Path(shapes["val_images"]).iterdir()
                   if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(files) >= 3
    return files


@pytest.fixture(scope="session")
def letterboxed(image_files):
    """(uint8 [n, S, S, 3] letterboxed images, [n, 5] letterbox info) of the val images.

    Decoded with TensorFlow, as the SavedModel's bytes signature does: JPEG decoders differ
    by a grey level here and there (cv2's libjpeg vs TF's), which moves detections.
    """
    import tensorflow as tf

    from tfseg.ops.letterbox import letterbox_image

    images, infos = [], []
    for path in image_files:
        rgb = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
        boxed, info = letterbox_image(rgb, SIZE)
        images.append(tf.cast(tf.clip_by_value(tf.round(boxed), 0, 255), tf.uint8).numpy())
        infos.append(info.numpy())
    return np.stack(images), np.stack(infos)


@pytest.fixture(scope="session")
def post():
    from tfseg.postprocess import PostProcess

    return PostProcess(CONF, IOU, MAX_DET)


@pytest.fixture(scope="session")
def keras_detections(network, post, letterboxed):
    """Reference: Keras network + PostProcess on the letterboxed images (numpy)."""
    import tensorflow as tf

    images = tf.cast(tf.constant(letterboxed[0]), tf.float32) / 255.0
    return {k: v.numpy() for k, v in post(network(images, training=False)).items()}


@pytest.fixture(scope="session")
def exported(network, tmp_path_factory):
    """One export of everything but int8: {"metadata", "savedmodel", "tflite_<mode>", ...},
    shared with the client tests (tests/shared_exports.py). Tests read the files; one that
    changes a file copies it first."""
    return shared_export(tmp_path_factory, "everything", network)


@pytest.fixture(scope="session")
def assert_raw_file_equals_network():
    """Check a raw .tflite's ``raw`` signature against the Keras network on one uint8 image:
    each named output within 1e-4 (absolute and relative). Returns the file's outputs."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    def check(path: Path, network, image: np.ndarray, names) -> dict:
        runner = Interpreter(model_path=str(path), num_threads=2).get_signature_runner("raw")
        got = runner(images=image)
        want = network(tf.cast(image, tf.float32) / 255.0, training=False)
        for name in names:
            np.testing.assert_allclose(got[name], want[name].numpy(), atol=1e-4, rtol=1e-4,
                                       err_msg=name)
        return got
    return check
