"""The parity certificate: every file an export writes, scored against the Keras model.

``tfseg export`` measures each artifact it wrote (the SavedModel, each end-to-end and raw
.tflite) on the first validation images of the run's dataset, beside the Keras network it
was made from, all post-processed with the export's own thresholds:

* box and mask mAP50-95 with pycocotools, through tfseg.evaluate.loop.evaluate (the
  evaluation ``tfseg val`` runs), for the Keras model and for every file;
* end-to-end files and the SavedModel: the largest box (input pixels) and score difference
  over detections matched to Keras's by IoU (tfseg.export.parity);
* raw files: the largest absolute difference of each raw output from the network's (their
  mAP is scored through tfseg.postprocess.PostProcess, as an app would decode them).

Every file sees the same uint8 letterboxed pixels. The certificate goes into metadata.json
(``parity``) and into each file's own metadata (the .tflite's ``tfseg_metadata``, the
SavedModel's ``assets.extra/metadata.json``); the export fails when a file's mask mAP50-95 is
more than ``max_drop`` points (1 point = 0.01 mAP) below the Keras model's.

    certify(model, written, check, thresholds) -> certificate dict
    not_measured(reason)                       -> certificate saying why nothing was measured
    record(certificate, written)               -> into metadata.json and every file
    format_table(certificate)                  -> text table
    enforce(certificate, folder)               -> ExportError naming each failing file
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from tfseg.errors import ExportError
from tfseg.export import signatures
from tfseg.export.metadata import update_tflite_metadata, write_json
from tfseg.export.parity import ParityReport, compare_image
from tfseg.optional import litert_interpreter

KERAS = "keras"


@dataclass
class ParityCheck:
    """The images a certificate is measured on, and how much a file may lose.

    Args:
        records: prepared records folder (tfseg.data.prepare) holding ``split``.
        annotations: the split's COCO annotation JSON (original category ids).
        category_ids: source category id per class index.
        images: score the first ``images`` images of the split (an int8 .tflite at 640 px
            runs a few images a second on 2 CPU cores).
        max_drop: the largest mask mAP50-95 drop allowed, in points.
        split: the split scored.
    """
    records: str
    annotations: str
    category_ids: list[int]
    images: int = 200
    max_drop: float = 1.0
    split: str = "val"


class _RawTFLite:
    """A raw (network-only) .tflite: ``raw(images)`` and ``postprocess(raw)`` -> DETECTIONS."""

    def __init__(self, path: Path, post, num_threads: int = 2):
        interpreter_class = litert_interpreter("checking an export's parity")
        self._runner = interpreter_class(model_path=str(path), num_threads=num_threads
                                   ).get_signature_runner(signatures.TFLITE_RAW)
        self.image_size = int(self._runner.get_input_details()[signatures.INPUT_PIXELS]
                              ["shape"][1])
        self._post = tf.function(post, reduce_retracing=True)

    def raw(self, images: np.ndarray) -> dict[str, np.ndarray]:
        parts = [self._runner(**{signatures.INPUT_PIXELS: image[None]}) for image in images]
        # Every output the file has: a YOLO26 file's one-to-one keys select the top-k path
        # in postprocess(), as in the Keras model's evaluation.
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def postprocess(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self._post({k: tf.constant(v) for k, v in raw.items()}
                                                    ).items()}


class _Probe:
    """An artifact as evaluate() runs it (``image_size``, ``detect``), measuring on the way.

    The Keras pass (``keras_rows`` None) records each image's boxes, scores and classes;
    later passes match theirs to those rows, image by image (the evaluation order is fixed).
    A raw file also has its raw outputs compared with the network's on the same pixels.
    """

    def __init__(self, artifact, keras_rows: list | None = None, network=None):
        self.artifact = artifact
        self.image_size = artifact.image_size
        self.keras_rows = keras_rows
        self.rows: list[dict] = []  # the Keras pass's rows, per image
        self._seen = 0
        self.report = ParityReport()
        self.raw_diff: dict[str, float] = {}
        self._network = None
        if network is not None:
            self._network = tf.function(lambda images: signatures.raw_outputs(network, images),
                                        reduce_retracing=True)

    def detect(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self._network is None:
            detections = self.artifact.detect(images)
        else:
            raw = self.artifact.raw(images)
            reference = self._network(tf.constant(images, tf.uint8))
            for name in raw:
                diff = float(np.abs(raw[name] - reference[name].numpy()).max())
                self.raw_diff[name] = max(self.raw_diff.get(name, 0.0), diff)
            detections = self.artifact.postprocess(raw)
        for b in range(len(images)):
            n = int(detections["num_detections"][b])
            row = {k: np.asarray(detections[k][b, :n]) for k in ("boxes", "scores", "classes")}
            if self.keras_rows is None:
                self.rows.append(row)
            else:
                self.report = self.report.add(compare_image(self.keras_rows[self._seen], row))
            self._seen += 1
        return detections


def _artifact(key: str, path: Path, post):
    """(backend, kind, is_raw) of one written file."""
    from tfseg.predict.backends import SavedModelBackend, TFLiteBackend

    if key == "savedmodel":
        return SavedModelBackend(path), f"SavedModel {signatures.SERVING_PIXELS}", False
    if key.startswith("tflite_raw_"):
        return _RawTFLite(path, post), "TFLite raw", True
    return TFLiteBackend(path), "TFLite end-to-end", False


def _boxes_only(key: str, path: Path) -> bool:
    """An end-to-end .tflite exported with ``standard_outputs`` (boxes only, no masks)."""
    if not key.startswith("tflite_") or key.startswith("tflite_raw_"):
        return False
    interpreter_class = litert_interpreter("checking an export's parity")
    runner = interpreter_class(model_path=str(path)).get_signature_runner(signatures.TFLITE_DETECT)
    return "masks" not in runner.get_output_details() and \
        "box_masks" not in runner.get_output_details()


def _score(probe: _Probe, dataset, check: ParityCheck) -> dict:
    from tfseg.evaluate.loop import evaluate

    start = time.perf_counter()
    metrics = evaluate(probe, dataset, check.annotations, check.category_ids, plots=False,
                       max_batches=check.images, verbose=False)
    return {"box_mAP50-95": round(float(metrics["box/mAP50-95"]), 6),
            "mask_mAP50-95": round(float(metrics["mask/mAP50-95"]), 6),
            "images": int(metrics["images"]),
            "seconds": round(time.perf_counter() - start, 1)}


def _entry(key: str, path: Path, kind: str, scores: dict, probe: _Probe, keras: dict,
           check: ParityCheck) -> dict:
    """One file's line of the certificate."""
    drop = 100.0 * (keras["mask_mAP50-95"] - scores["mask_mAP50-95"])
    mode = key.removeprefix("tflite_").removeprefix("raw_") if key != "savedmodel" else "float32"
    name = f"{path.parent.name}/{path.name}" if key == "savedmodel" else path.name
    entry = {"file": name, "kind": kind, "mode": mode, **scores,
             "mask_drop_points": round(drop, 3), "passed": bool(drop <= check.max_drop)}
    if probe.raw_diff:
        entry["max_abs_raw_diff"] = {k: float(f"{v:.4g}") for k, v in probe.raw_diff.items()}
    else:
        report = probe.report
        entry.update(matched=report.matched, unmatched_keras=report.unmatched_reference,
                     unmatched_file=report.unmatched_candidate,
                     max_box_diff_px=float(f"{report.max_box_diff:.4g}"),
                     max_score_diff=float(f"{report.max_score_diff:.4g}"))
    return entry


def certify(model, written: dict, check: ParityCheck, thresholds: dict) -> dict:
    """Score the Keras model and every written file on the same validation images.

    Args:
        model: the Keras network the files were made from.
        written: :func:`tfseg.export.export`'s result (name -> path).
        check: the images and the allowed drop.
        thresholds: the export's PostProcess options (score_threshold, iou_threshold,
            max_detections, agnostic), used for Keras and the raw files alike.

    Returns:
        The certificate (JSON-serializable): ``measured``, the images, thresholds and
        tolerance, ``keras`` scores, ``artifacts`` (name -> scores and differences), ``passed``.
    """
    from tfseg.pipeline.dataset import build_dataset
    from tfseg.postprocess import PostProcess
    from tfseg.predict.backends import KerasBackend

    size = int(model.inputs[0].shape[1])
    dataset = build_dataset(check.records, check.split, size, batch_size=1, training=False,
                            masks=False)
    reference = _Probe(KerasBackend(model, thresholds["score_threshold"],
                                    thresholds["iou_threshold"], thresholds["max_detections"],
                                    thresholds["agnostic"]))
    keras = _score(reference, dataset, check)
    post = PostProcess(**thresholds)
    artifacts = {}
    for key, path in written.items():
        if key == "metadata":
            continue
        if key.startswith("tflite_segmenter_"):
            artifacts[key] = {"file": Path(path).name, "kind": "TFLite segmenter",
                              "skipped": "per-class masks for MediaPipe's ImageSegmenter, no "
                                         "instances to score", "passed": True}
            continue
        if _boxes_only(key, Path(path)):
            artifacts[key] = {"file": Path(path).name, "kind": "TFLite end-to-end",
                              "skipped": "standard_outputs: the object detectors' four outputs, "
                                         "no masks to score", "passed": True}
            continue
        backend, kind, raw = _artifact(key, Path(path), post)
        probe = _Probe(backend, reference.rows, model if raw else None)
        artifacts[key] = _entry(key, Path(path), kind, _score(probe, dataset, check), probe,
                                keras, check)
    return {"measured": True, "split": check.split, "images": keras["images"],
            "annotations": Path(check.annotations).name,  # no host path inside deployed files
            "thresholds": dict(thresholds),
            "tolerance": {"mask_mAP50-95_drop_points": float(check.max_drop)},
            KERAS: keras, "artifacts": artifacts,
            "passed": all(a["passed"] for a in artifacts.values())}


def not_measured(reason: str) -> dict:
    """The certificate of an export whose parity was not measured, saying why."""
    return {"measured": False, "reason": reason}


def _for_file(certificate: dict, key: str) -> dict:
    """The certificate as one file carries it: the header and that file's own entry."""
    if not certificate["measured"]:
        return certificate
    return {**certificate, "artifacts": {key: certificate["artifacts"][key]},
            "passed": certificate["artifacts"][key]["passed"]}


def record(certificate: dict, written: dict) -> None:
    """Write the certificate into metadata.json (whole) and into each file (its own part).

    Args:
        certificate: from :func:`certify` or :func:`not_measured`.
        written: :func:`tfseg.export.export`'s result.
    """
    for key, path in written.items():
        path = Path(path)
        if key == "metadata":
            write_json({**json.loads(path.read_text()), "parity": certificate}, path)
        elif key == "savedmodel":
            inside = path / "assets.extra" / "metadata.json"
            if inside.is_file():
                write_json({**json.loads(inside.read_text()),
                            "parity": _for_file(certificate, key)}, inside)
        elif path.suffix == ".tflite":
            update_tflite_metadata(path, {"parity": _for_file(certificate, key)})


def format_table(certificate: dict) -> str:
    """The certificate as a table (or one line saying it was not measured)."""
    if not certificate["measured"]:
        return f"parity: not measured ({certificate['reason']})"
    t = certificate["thresholds"]
    lines = [f"parity on {certificate['images']} {certificate['split']} images (export "
             f"thresholds: score {t['score_threshold']}, IoU {t['iou_threshold']}, "
             f"N {t['max_detections']}); a file fails when its mask mAP50-95 is more than "
             f"{certificate['tolerance']['mask_mAP50-95_drop_points']:g} point(s) below Keras's",
             f"{'file':<40}{'box mAP':>9}{'mask mAP':>10}{'drop pts':>10}{'max|box|px':>12}"
             f"{'max|score|':>12}{'max|raw|':>10}  result"]
    keras = certificate[KERAS]
    lines.append(f"{'Keras model (reference)':<40}{keras['box_mAP50-95']:>9.4f}"
                 f"{keras['mask_mAP50-95']:>10.4f}{'-':>10}{'-':>12}{'-':>12}{'-':>10}")
    for entry in certificate["artifacts"].values():
        if "skipped" in entry:
            lines.append(f"{entry['file'][:39]:<40}  not scored: {entry['skipped']}")
            continue
        raw = entry.get("max_abs_raw_diff")
        box, score = (f"{entry['max_box_diff_px']:.2g}", f"{entry['max_score_diff']:.2g}"
                      ) if raw is None else ("-", "-")
        raw_text = f"{max(raw.values()):.2g}" if raw else "-"
        lines.append(f"{entry['file'][:39]:<40}{entry['box_mAP50-95']:>9.4f}"
                     f"{entry['mask_mAP50-95']:>10.4f}{entry['mask_drop_points']:>10.2f}"
                     f"{box:>12}{score:>12}{raw_text:>10}  "
                     f"{'ok' if entry['passed'] else 'FAILED'}")
    return "\n".join(lines)


def enforce(certificate: dict, folder: str | Path) -> None:
    """Raise if any file lost more mask mAP than allowed.

    Raises:
        ExportError: naming each failing file, its mask mAP50-95, the Keras model's and the
            allowed drop (``export.parity_max_drop``).
    """
    if not certificate["measured"] or certificate["passed"]:
        return
    keras = certificate[KERAS]["mask_mAP50-95"]
    allowed = certificate["tolerance"]["mask_mAP50-95_drop_points"]
    failed = [f"{e['file']} has mask mAP50-95 {e['mask_mAP50-95']:.4f} against the Keras "
              f"model's {keras:.4f} (a drop of {e['mask_drop_points']:.2f} points)"
              for e in certificate["artifacts"].values() if not e["passed"]]
    raise ExportError(f"parity check failed on {certificate['images']} {certificate['split']} "
                      f"images: {'; '.join(failed)}; at most {allowed:g} point(s) allowed "
                      f"(export.parity_max_drop). The files and their certificate are kept in "
                      f"{folder}; export.parity=false skips the check")
