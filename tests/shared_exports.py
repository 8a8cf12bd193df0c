"""The fixture network of the export and client tests, and the exports several of them read.

The network is yolov8-seg-n at S = 128 px with seeded weights rescaled so its outputs look
trained (``detecting_network``). Its exports are written once per test run, whatever the
number of workers (tests/made_once.py): each costs a SavedModel write and one conversion
per file, most of a minute on 2 cores, and the export tests, the MediaPipe tests and the
web page tests read the same files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from made_once import made_once

SIZE = 128
CLASSES = 3
MAX_DET = 20
CONF, IOU = 0.3, 0.5
CLASS_NAMES = ["circle", "rectangle", "triangle"]
CATEGORY_IDS = [1, 3, 7]

# name -> the options of tfseg.export.export beyond the network's own settings above.
# ``certified``: its parity certificate written in afterwards (here: not measured), as
# `tfseg export` leaves a file on disk.
EXPORTS = {
    # SavedModel for TF Serving, end-to-end and raw TFLite in float32 and float16.
    "everything": dict(tflite_modes=["float32", "float16"], serving_name="shapes",
                       serving_version=3),
    # The object detectors' four outputs (MediaPipe ObjectDetector, Task Library).
    "standard-outputs": dict(formats=["tflite"], raw=False, standard_outputs=True,
                             certified=True),
    # uint8 56 x 56 masks aligned to each box.
    "box-masks-uint8": dict(formats=["tflite"], raw=False, mask_size=56, mask_dtype="uint8"),
}


def detecting_network(size: int = SIZE):
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


def shared_export(tmp_path_factory, name: str, network) -> dict[str, Path]:
    """``{"metadata": ..., "tflite_float32": ..., ...}``: the export ``name`` of EXPORTS of
    ``network`` (the seeded ``detecting_network()``, the same in every process), written by
    the first process of the run to ask. The files are read-only by convention."""
    from tfseg.export import certificate, export

    options = dict(EXPORTS[name])
    certified = options.pop("certified", False)

    def make(folder: Path) -> dict:
        written = export(folder, model=network, model_name="yolov8-seg-n",
                         num_classes=CLASSES, image_size=SIZE, class_names=CLASS_NAMES,
                         category_ids=CATEGORY_IDS, score_threshold=CONF,
                         iou_threshold=IOU, max_detections=MAX_DET, **options)
        if certified:
            certificate.record(certificate.not_measured("no dataset in this test"), written)
        return {key: str(path) for key, path in written.items()}

    _, record = made_once(tmp_path_factory, f"export-{name}", make)
    return {key: Path(path) for key, path in record.items()}
