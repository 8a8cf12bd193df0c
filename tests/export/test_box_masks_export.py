"""export.mask_size / mask_dtype: box-aligned masks in the end-to-end TFLite file and the
SavedModel signatures, against Keras and the host paste; the app example pastes them."""

import numpy as np
import pytest
import tensorflow as tf

from example_runner import app_letterbox, tflite_app
from tfseg.postprocess import PostProcess
from tfseg.postprocess.host import to_original

pytestmark = pytest.mark.slow  # box-mask exports (TFLite and SavedModel)

M = 56


@pytest.fixture(scope="module")
def box_export(network, tmp_path_factory):
    """End-to-end float32 .tflite with uint8 56 x 56 box-aligned masks (shared with the web
    page tests: tests/shared_exports.py)."""
    from shared_exports import EXPORTS, shared_export

    assert EXPORTS["box-masks-uint8"]["mask_size"] == M
    return shared_export(tmp_path_factory, "box-masks-uint8", network)


def _box_post(settings):
    return PostProcess(settings.conf, settings.iou, settings.max_det, mask_size=M,
                       mask_dtype="uint8")


def _match(reference_boxes, candidate_boxes):
    """Row of the candidate with the closest box, for each reference row."""
    distance = np.abs(reference_boxes[:, None] - candidate_boxes[None]).sum(-1)
    return distance.argmin(axis=1), distance.min(axis=1)


def test_tflite_box_masks_equal_keras_and_stay_builtin(box_export, network, letterboxed,
                                                       settings):
    from tfseg.export.metadata import read_tflite_metadata
    from tfseg.export.structure import inspect_tflite
    from tfseg.predict.backends import TFLiteBackend

    path = box_export["tflite_float32"]
    ops = set(inspect_tflite(path).op_names)
    assert "BATCH_MATMUL" in ops and not any("FLEX" in op.upper() for op in ops)
    outputs = read_tflite_metadata(path)["outputs"]["tflite detect"]
    assert "masks" not in outputs and outputs["box_masks"]["shape"] == f"[1, N, {M}, {M}]"
    images = letterboxed[0]
    want = {k: v.numpy() for k, v in _box_post(settings)(
        network(tf.cast(images, tf.float32) / 255.0, training=False)).items()}
    got = TFLiteBackend(path).detect(images)
    assert got["box_masks"].dtype == np.uint8 and got["box_masks"].shape[-2:] == (M, M)
    compared = 0
    for b in range(len(images)):
        n = int(want["num_detections"][b])
        rows, distance = _match(want["boxes"][b, :n], got["boxes"][b, :n])
        for i in np.flatnonzero(distance < 1e-2):
            levels = np.abs(want["box_masks"][b, i].astype(int) -
                            got["box_masks"][b, rows[i]].astype(int))
            assert levels.max() <= 1, (b, i, levels.max())  # one rounding step of 1/255
            compared += 1
    assert compared >= 10


def test_app_example_pastes_box_masks_like_predict(box_export, image_files, settings, tmp_path):
    """examples/tflite_app.py (numpy only), run as a user runs it, places box_masks exactly
    as tfseg's predict does. Both build the sampling map in float64 from the same float32
    boxes: OpenCV 5's warpAffine samples at full precision (4.x rounded to 1/32 pixel), so a
    map differing in the last bit of float32 flipped a pixel sitting on the 0.5 threshold."""
    import cv2

    from tfseg.predict.backends import TFLiteBackend

    path = box_export["tflite_float32"]
    checked = 0
    for image_file in image_files[:2]:
        app, masks = tflite_app(path, image_file, tmp_path)
        rgb = cv2.cvtColor(cv2.imread(str(image_file)), cv2.COLOR_BGR2RGB)
        boxed, info = app_letterbox(rgb, settings.size)
        np.testing.assert_array_equal(np.float32(app["letterbox"]), info)
        want = to_original(TFLiteBackend(path).detect(boxed[None]), info[None])[0]
        kept = [i for i, d in enumerate(app["detections"])
                if d["box"][2] > d["box"][0] and d["box"][3] > d["box"][1]]
        assert len(kept) == len(want) > 0
        np.testing.assert_array_equal([app["detections"][i]["box"] for i in kept], want.boxes)
        for i, row in enumerate(kept):
            assert np.array_equal(masks[row], want.full_mask(i)), (image_file.name, i)
            checked += int(masks[row].any())
    assert checked > 0


def _bilinear(grid, xs, ys):
    """numpy bilinear samples of ``grid`` [H, W] at grid coordinates (edge values beyond)."""
    xs = np.clip(xs, 0, grid.shape[1] - 1)
    ys = np.clip(ys, 0, grid.shape[0] - 1)
    x0, y0 = np.minimum(np.floor(xs).astype(int), grid.shape[1] - 2), \
        np.minimum(np.floor(ys).astype(int), grid.shape[0] - 2)
    fx, fy = (xs - x0)[None, :], (ys - y0)[:, None]
    rows0, rows1 = grid[y0], grid[y0 + 1]
    top = rows0[:, x0] * (1 - fx) + rows0[:, x0 + 1] * fx
    bottom = rows1[:, x0] * (1 - fx) + rows1[:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def test_serving_bytes_box_masks_span_the_clipped_boxes(network, image_files, letterboxed,
                                                        settings):
    """serving_default clips boxes to the original image; its box masks (sent as PNGs, like
    every serving_default mask) are re-spanned to the clipped boxes: the pixels signature's
    grid sampled at the clipped cells' centres, to the PNG's 1/255."""
    import cv2

    from tfseg.export import signatures
    from tfseg.ops.letterbox import letterbox_inverse_boxes

    post = PostProcess(settings.conf, settings.iou, settings.max_det, mask_size=M)
    encoded = tf.constant([p.read_bytes() for p in image_files])
    served = {k: v.numpy() for k, v in
              signatures.bytes_detections(network, post, encoded, settings.size).items()}
    pixels = {k: v.numpy() for k, v in
              signatures.pixels_detections(network, post, tf.constant(letterboxed[0])).items()}
    spans = letterbox_inverse_boxes(pixels["boxes"], letterboxed[1], clip=False).numpy()
    clipped_rows = 0
    for b in range(len(image_files)):
        n = int(served["num_detections"][b])
        assert n == int(pixels["num_detections"][b]) and n > 0
        for i in range(n):
            span, box = spans[b, i], served["boxes"][b, i]
            cells = (np.arange(M) + 0.5) / M
            xs = (box[0] + cells * (box[2] - box[0]) - span[0]) * M / (span[2] - span[0]) - 0.5
            ys = (box[1] + cells * (box[3] - box[1]) - span[1]) * M / (span[3] - span[1]) - 0.5
            want = _bilinear(pixels["box_masks"][b, i], xs, ys)
            png = served[signatures.MASKS_PNG][b, i]
            got = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) / 255.0
            assert got.shape == (M, M)
            np.testing.assert_allclose(got, want, atol=0.5 / 255 + 2e-4)
            clipped_rows += int(np.abs(span - box).max() > 0.5)
    assert clipped_rows >= 3, "some boxes must reach past the image for this to test anything"
