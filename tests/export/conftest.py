"""Session fixtures of the export tests: one small network, real images, one export.

The export (SavedModel + end-to-end and raw TFLite in float32 and float16) is written once
per test run, whatever the number of workers: conversions dominate the time of these tests
on 2 cores.
"""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SIZE = 128
CLASSES = 3
MAX_DET = 20
CONF, IOU = 0.3, 0.5


def _detecting_network(size: int = SIZE):
    """yolov8-seg-n at ``size`` px (S = 128 here) rescaled so its outputs look trained.

    A fresh network's head outputs are nearly constant (std ~1e-7 here): every score ties
    at the prior, every box is the same, and parity by matching means nothing. He-normal
    kernels (seeded) and each head's last convolution (and the prototypes' last one) scaled
    to a unit-order spread on fixed inputs give distinct, image-dependent scores, boxes and
    masks, with weights of ordinary magnitude (float16 can hold them).
    """
    import tensorflow as tf

    from tfseg.model import build_model

    model = build_model("yolov8-seg-n", CLASSES, size)
    rng = np.random.default_rng(0)
    for weight in model.weights:  # He-normal kernels keep activations alive through depth
        if weight.path.endswith("kernel") and len(weight.shape) == 4:
            fan_in = int(np.prod(weight.shape[:3]))
            weight.assign(rng.normal(0.0, np.sqrt(2.0 / fan_in), weight.shape).astype(np.float32))
    head = model.get_layer("head")
    probe = tf.constant(np.random.default_rng(0).integers(0, 256, (2, size, size, 3)),
                        tf.float32) / 255.0
    targets = [("prototypes", [head.proto.cv3.conv], 1.5),
               ("mask_coefficients", [b.predict for b in head.mask_branches], 1.0),
               ("box_logits", [b.predict for b in head.box_branches], 2.0),
               ("class_logits", [b.predict for b in head.class_branches], 2.0)]
    for branch in head.class_branches:  # the per-level priors would dominate the spread
        branch.predict.bias.assign(np.zeros(branch.predict.bias.shape, np.float32))
    for output, convs, spread in targets:
        outputs = model(probe, training=False)[output]
        centred = outputs - tf.reduce_mean(outputs)
        factor = spread / float(tf.math.reduce_std(centred))
        for conv in convs:
            conv.kernel.assign(conv.kernel * factor)
    for branch in head.class_branches:  # scores spread around sigmoid(-1)
        branch.predict.bias.assign(np.full(branch.predict.bias.shape, -1.0, np.float32))
    return model


@pytest.fixture(scope="session")
def settings():
    """The constants of this folder's export (test modules cannot import conftest)."""
    return SimpleNamespace(size=SIZE, classes=CLASSES, max_det=MAX_DET, conf=CONF, iou=IOU)


@pytest.fixture(scope="session")
def network():
    return _detecting_network()


@pytest.fixture(scope="session")
def make_network():
    """The fixture network's recipe at another size: ``make_network(640)``."""
    return _detecting_network


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
    """One export of everything but int8: {"metadata", "savedmodel", "tflite_<mode>", ...}.

    Made once per test run (tests/made_once.py), not once per worker: the network is
    seeded, so every worker's ``network`` is the one exported. Tests read the files; one
    that changes a file copies it first.
    """
    from made_once import made_once
    from tfseg.export import export

    def make(folder: Path) -> dict:
        files = export(folder, model=network, model_name="yolov8-seg-n", num_classes=CLASSES,
                       image_size=SIZE, class_names=["circle", "rectangle", "triangle"],
                       category_ids=[1, 3, 7], tflite_modes=["float32", "float16"],
                       score_threshold=CONF, iou_threshold=IOU, max_detections=MAX_DET,
                       serving_name="shapes", serving_version=3)
        return {key: str(path) for key, path in files.items()}

    _, record = made_once(tmp_path_factory, "export-yolov8-seg-n", make)
    return {key: Path(path) for key, path in record.items()}


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
