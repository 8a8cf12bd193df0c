"""The edge between the CLI's config and :func:`tfseg.export.export` (plain arguments).

    export_from_config(cfg, model, classes, output_dir, model_info) -> written paths; measures,
                                                        records and checks their parity
    calibration_images(records, image_size, count)      -> int8 representative images
    check_gpu_main(path, end_to_end=None)               -> exit code; prints the report
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from tfseg.config.factory import export_arguments
from tfseg.export import export
from tfseg.export.gpu_rules import check_gpu


def calibration_images(records: str, image_size: int, count: int,
                       split: str = "train") -> Callable[[], Iterator[np.ndarray]]:
    """Letterboxed training images for int8 calibration, from prepared records.

    Uses the evaluation branch of tfseg.pipeline.dataset (letterbox, no augmentation), so
    calibration sees what the deployed model sees.

    Args:
        records: prepared records folder (DataConfig.records).
        image_size: S.
        count: images to yield (the first ``count`` of the split).
        split: the split to read.

    Returns:
        A callable returning an iterator of uint8 ``[S, S, 3]`` arrays.
    """
    def images() -> Iterator[np.ndarray]:
        from tfseg.pipeline.dataset import build_dataset

        dataset = build_dataset(records, split, image_size, batch_size=1, training=False,
                                masks=False)
        for batch_images, targets in itertools.islice(dataset, count):
            if int(targets["image_id"][0]) < 0:  # filler element completing the last batch
                continue
            yield np.round(batch_images[0].numpy() * 255.0).clip(0, 255).astype(np.uint8)
    return images


def export_from_config(cfg, model, classes: dict, output_dir: str | Path,
                       model_info: dict | None = None,
                       parity_unavailable: str | None = None) -> list[Path]:
    """``tfseg export``: unpack RunConfig sections into :func:`tfseg.export.export`, then
    measure, record and print the parity certificate (tfseg.export.certificate).

    Args:
        cfg: RunConfig (model, data, export sections); the parity check reads the prepared
            records and validation annotations of ``cfg.data``.
        model: the trained Keras network.
        classes: {"class_names": [...], "category_ids": [...]}.
        output_dir: the export folder.
        model_info: the model artifact's metadata, copied into the export metadata.
        parity_unavailable: why the parity check cannot run (no dataset); recorded and
            printed instead of a certificate.

    Returns:
        The written paths (metadata, SavedModel version folder, .tflite files).

    Raises:
        ExportError: a file's mask mAP50-95 fell more than ``export.parity_max_drop`` points
            below the Keras model's (the files stay, with their certificate).
    """
    from tfseg.export import certificate as cert

    options = export_arguments(cfg)
    count = options.pop("calibration_images")
    parity = {k: options.pop(k) for k in ("parity", "parity_images", "parity_max_drop")}
    calibration = None
    if "int8" in options["tflite_modes"] and count > 0 and cfg.data.records:
        calibration = calibration_images(cfg.data.records, cfg.model.image_size, count)
    written = export(
        output_dir, model=model, model_name=cfg.model.name,
        num_classes=cfg.model.num_classes or len(classes["class_names"]),
        image_size=cfg.model.image_size, class_names=classes["class_names"],
        category_ids=classes["category_ids"], calibration=calibration, model_info=model_info,
        **options)
    reason = parity_unavailable or _parity_unavailable(cfg, parity["parity"])
    if reason:
        certificate = cert.not_measured(reason)
    else:
        check = cert.ParityCheck(cfg.data.records, cfg.data.val_annotations,
                                 list(classes["category_ids"]), parity["parity_images"],
                                 parity["parity_max_drop"])
        thresholds = {k: options[k] for k in ("score_threshold", "iou_threshold",
                                              "max_detections", "agnostic")}
        certificate = cert.certify(model, written, check, thresholds)
    cert.record(certificate, written)
    print(cert.format_table(certificate), flush=True)
    cert.enforce(certificate, output_dir)
    return list(written.values())


def _parity_unavailable(cfg, enabled: bool) -> str | None:
    """Why the parity check cannot run on ``cfg``'s dataset, or None if it can."""
    if not enabled:
        return "export.parity=false"
    if not cfg.data.records or not Path(cfg.data.records).exists():
        return "no prepared dataset records (data.records)"
    if not Path(cfg.data.val_annotations).is_file():
        return f"validation annotations not found: {cfg.data.val_annotations}"
    return None


def check_gpu_main(path: str | Path, end_to_end: bool | None = None) -> int:
    """Print the GPU-delegate report of a .tflite; exit code 1 if our layout rule breaks.

    Args:
        path: the .tflite file.
        end_to_end: which rule to apply; None: end-to-end if the file has NMS, a loop or a
            top-k (YOLO26's NMS-free post-processing).

    Returns:
        0 if the file keeps the rule (raw: only the input cast off the GPU; end-to-end: one
        CPU partition after the network), else 1.
    """
    report = check_gpu(path)
    if end_to_end is None:
        end_to_end = any(name.startswith(("NON_MAX_SUPPRESSION", "WHILE", "TOPK_V2"))
                         for name in report.op_names)
    print(report)
    problems = report.problems(end_to_end)
    kind = "end-to-end" if end_to_end else "raw"
    if problems:
        print(f"{kind} rule broken by {len(problems)} op(s) before the NMS / top-k tail:")
        for line in problems:
            print(f"  {line}")
        return 1
    print(f"{kind} rule holds: the network runs on the GPU as one partition")
    return 0
