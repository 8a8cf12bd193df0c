"""Tiled inference through the exported files: the SavedModel (batches of tiles) and the
end-to-end .tflite (one tile per call, looped) find what the Keras network finds."""

import numpy as np
import pytest

from tfseg.export.parity import mask_iou, match_by_iou
from tfseg.predict.backends import KerasBackend, SavedModelBackend, TFLiteBackend
from tfseg.predict.tiles import detect_tiled, tile_windows

pytestmark = pytest.mark.slow  # the shared export, loaded twice


def test_savedmodel_and_tflite_give_the_tiled_detections_of_keras(network, exported, settings):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (300, 420, 3)).astype(np.uint8)
    image[60:200, 100:260] = rng.integers(150, 256, 3)  # a flat block among the noise
    options = dict(conf=settings.conf, iou=settings.iou, max_det=settings.max_det, tile=1,
                   overlap=0.25)
    assert len(tile_windows(300, 420, settings.size, 0.25)) == 15  # 3 rows of 5 tiles
    want = detect_tiled(KerasBackend(network, settings.conf, settings.iou, settings.max_det),
                        image, **options)
    assert len(want) > 0
    for backend in (SavedModelBackend(exported["savedmodel"]),
                    TFLiteBackend(exported["tflite_float32"])):
        got = detect_tiled(backend, image, **options)
        pairs = match_by_iou(want.boxes, want.classes, got.boxes, got.classes, min_iou=0.9)
        assert len(pairs) >= 0.9 * max(len(want), len(got)), (len(pairs), len(want), len(got))
        for i, j in pairs:
            assert mask_iou(want.full_mask(i), got.full_mask(j)) >= 0.9
            assert got.mask_crops[j].shape[0] <= 300 and got.mask_crops[j].shape[1] <= 420
