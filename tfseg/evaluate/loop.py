"""evaluate(): evaluation batches -> PostProcess -> host -> COCOEvaluator -> metrics and files.

Used by ``tfseg val`` and by the training callback, so the graph part (network and
post-processing) runs as one tf.function per batch; only the kept detections reach the host.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfseg.evaluate.coco import COCOEvaluator
from tfseg.evaluate.plots import ConfusionMatrix, plot_pr_curves, plot_prediction_grid
from tfseg.postprocess import PostProcess
from tfseg.postprocess.host import to_original
from tfseg.postprocess.tta import AugmentedPostProcess


def make_detector(model, score_threshold: float, iou_threshold: float, max_detections: int,
                  agnostic: bool = False, multi_label: bool = False, end2end: bool = True,
                  augment: bool = False):
    """images ``[B, S, S, 3]`` float32 in [0, 1] -> DETECTIONS dict.

    ``model`` is a Keras network (network and PostProcess run as one tf.function), or an
    exported model's backend (``detect`` on uint8 letterboxed pixels: tfseg.predict.backends),
    whose thresholds (and best-class NMS) were fixed at export. ``end2end``: a model with a
    one-to-one head (YOLO26) gives its top-k detections, no NMS (PostProcess end_to_end).
    ``augment``: test-time augmentation, Keras networks only (tfseg.postprocess.tta).
    """
    if augment and hasattr(model, "detect"):
        raise ValueError("augment=true needs a Keras model: an export is a fixed one-view graph")
    if hasattr(model, "detect"):
        def detect_exported(images):
            pixels = np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8)
            return {k: tf.constant(v) for k, v in model.detect(pixels).items()}

        return detect_exported
    post = (AugmentedPostProcess if augment else PostProcess)(
        score_threshold=score_threshold, iou_threshold=iou_threshold,
        max_detections=max_detections, agnostic=agnostic, multi_label=multi_label,
        end_to_end=end2end)

    @tf.function(reduce_retracing=True)
    def detect(images):
        return post(model(post.views(images) if augment else images, training=False))

    return detect


def evaluate(model, dataset, ground_truth: str | Path, category_ids: list[int],
             class_names: list[str] | None = None, output_dir: str | Path | None = None,
             conf: float = 0.001, iou: float = 0.7, max_det: int = 300, agnostic: bool = False,
             multi_label: bool = False, plots: bool = True, max_batches: int | None = None,
             verbose: bool = True, detector=None, end2end: bool = True,
             augment: bool = False) -> dict:
    """COCO box and mask metrics of ``model`` on an evaluation dataset.

    Args:
        model: Keras model, images ``[B, S, S, 3]`` float32 in [0, 1] -> RAW_OUTPUTS dict.
        dataset: ``build_dataset(..., training=False)``: (images, targets) with targets
            image_id ``[B]`` (-1 for filler) and letterbox ``[B, 5]``; boxes/classes for the
            confusion matrix.
        ground_truth: the split's COCO annotation JSON (original category ids).
        category_ids: source category id per class index.
        class_names: name per class index (default: the ground truth's category names).
        output_dir: if given, writes metrics.json, metrics.txt, predictions.json and plots.
        conf, iou, max_det, agnostic, multi_label: PostProcess settings (COCO evaluation:
            0.001, 0.7, 300, class-aware; multi-label: see PostProcess).
        plots: write PR curves, confusion matrix and a grid of the first batch.
        max_batches: stop after this many batches (quick evaluation during training).
        verbose: print progress and the summary table.
        detector: ``make_detector(model, conf, iou, max_det, agnostic, multi_label)`` made
            once by the caller and reused: evaluation during training passes the same one
            every epoch, so the network and post-processing are traced once per run, not
            once per evaluation (about 2 s each at 320 px on 2 cores).
        end2end, augment: see :func:`make_detector`.

    Returns:
        Flat dict of floats: ``box/mAP50-95``, ``box/mAP50``, ``box/mAP75``, ``box/mAP_small``,
        ``box/mAP_medium``, ``box/mAP_large``, ``box/AR100`` and the same for ``mask/``,
        plus ``images`` (count) and ``seconds``.
    """
    start = time.perf_counter()
    evaluator = COCOEvaluator(ground_truth, category_ids, class_names)
    names = evaluator.class_names
    detect = detector or make_detector(model, conf, iou, max_det, agnostic, multi_label,
                                       end2end, augment)
    confusion = ConfusionMatrix(len(names))
    first_batch = None
    for step, (images, targets) in enumerate(dataset):
        if max_batches is not None and step >= max_batches:
            break
        detections = {k: v.numpy() for k, v in detect(images).items()}
        image_ids = targets["image_id"].numpy()
        for b, result in enumerate(to_original(detections, targets["letterbox"].numpy())):
            if image_ids[b] < 0:  # filler completing the last batch
                continue
            evaluator.add(int(image_ids[b]), result)
            _update_confusion(confusion, targets, detections, b)
        if first_batch is None:
            first_batch = (images.numpy(), detections)
        if verbose and step % 20 == 0:
            print(f"val: batch {step + 1}, {len(evaluator.image_ids)} images", flush=True)
    settings = dict(conf=conf, iou=iou, max_det=max_det, agnostic=agnostic, augment=augment)
    return finish(evaluator, confusion, start, output_dir, first_batch, plots, settings, verbose)


def finish(evaluator: COCOEvaluator, confusion: ConfusionMatrix, start: float,
           output_dir: str | Path | None, first_batch, plots: bool, settings: dict,
           verbose: bool) -> dict:
    """The metrics of everything added to ``evaluator`` (plus ``images`` and ``seconds``
    since ``start``), the table printed when ``verbose``, and the files written into
    ``output_dir`` when given (see :func:`write_outputs`)."""
    metrics = evaluator.result()
    metrics.update(images=float(len(evaluator.image_ids)), seconds=time.perf_counter() - start)
    table = format_table(metrics, evaluator.per_class())
    if verbose:
        print(table)
    if output_dir is not None:
        write_outputs(Path(output_dir), evaluator, metrics, table, confusion, first_batch,
                      evaluator.class_names, plots, settings)
    return metrics


def _update_confusion(confusion, targets, detections, b):
    valid = targets["classes"][b].numpy() >= 0
    n = int(detections["num_detections"][b])
    confusion.update(targets["boxes"][b].numpy()[valid], targets["classes"][b].numpy()[valid],
                     detections["boxes"][b, :n], detections["classes"][b, :n],
                     detections["scores"][b, :n])


def format_table(metrics: dict, per_class: dict) -> str:
    """A readable table: overall box and mask metrics, then AP per class."""
    names = ["mAP50-95", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large", "AR100"]
    lines = [f"{'metric':<12}{'box':>9}{'mask':>9}"]
    lines += [f"{n:<12}{metrics[f'box/{n}']:>9.4f}{metrics[f'mask/{n}']:>9.4f}" for n in names]
    lines.append(f"\n{'class':<16}{'box AP':>9}{'box AP50':>10}{'mask AP':>9}{'mask AP50':>11}")

    def show(value):
        return "-" if value is None else f"{value:.4f}"

    for name, row in per_class.items():
        lines.append(f"{name[:15]:<16}{show(row['box/AP50-95']):>9}{show(row['box/AP50']):>10}"
                     f"{show(row['mask/AP50-95']):>9}{show(row['mask/AP50']):>11}")
    lines.append(f"\n{int(metrics['images'])} images in {metrics['seconds']:.1f} s")
    return "\n".join(lines)


def write_outputs(out: Path, evaluator, metrics, table, confusion, first_batch, names, plots,
                  settings):
    """metrics.json (metrics, per-class AP, settings), metrics.txt, predictions.json and, with
    ``plots``, PR curves, the confusion matrix and a grid of ``first_batch`` (when given)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": metrics, "per_class": evaluator.per_class(), "settings": settings,
         "ground_truth": evaluator.ground_truth_path}, indent=2))
    (out / "metrics.txt").write_text(table + "\n")
    evaluator.write_results(out / "predictions.json")
    if not plots:
        return
    for iou_type, label in (("bbox", "box"), ("segm", "mask")):
        coco_eval = evaluator.evals.get(iou_type)
        if coco_eval is not None:
            order = [evaluator.category_ids.index(c) for c in coco_eval.params.catIds]
            plot_pr_curves(coco_eval.eval["precision"], [names[i] for i in order],
                           out / f"pr_curve_{label}.png", label)
    confusion.plot(names, out / "confusion_matrix.png")
    if first_batch is not None:
        images, detections = first_batch
        plot_prediction_grid(images[:16], {k: v[:16] for k, v in detections.items()}, names,
                             out / "predictions_grid.png")
