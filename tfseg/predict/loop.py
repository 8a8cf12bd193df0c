"""predict(): frames -> letterbox -> backend -> host post-processing -> files and a summary.

Writes into ``output_dir``: an overlay per image (same name, .jpg; videos as one .mp4 of
overlays), optional cut-outs (``cutouts/<name>_<i>_<class>.png``), and optionally
``predictions.json`` with boxes in original pixels and RLE or polygon masks.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from tfseg.errors import InputError
from tfseg.ops.letterbox import letterbox_image
from tfseg.postprocess.host import ImageDetections, encode_rle, polygons, to_original
from tfseg.predict.backends import KerasBackend
from tfseg.predict.draw import cutouts as make_cutouts
from tfseg.predict.draw import draw_overlay
from tfseg.predict.sources import Frame, iter_frames
from tfseg.predict.tiles import detect_tiled


def letterbox_frame(image: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``[H, W, 3]`` uint8 -> (``[S, S, 3]`` uint8 letterboxed, ``[5]`` letterbox info)."""
    padded, info = letterbox_image(tf.constant(image), size)
    return tf.cast(tf.round(padded), tf.uint8).numpy(), info.numpy()


def detections_json(frame: Frame, detections: ImageDetections, class_names: list[str],
                    mask_format: str) -> dict:
    """One frame's detections for predictions.json (boxes xyxy original pixels)."""
    masks = encode_rle(detections) if mask_format == "rle" else [
        polygons(detections, i) for i in range(len(detections))]
    items = []
    for i in range(len(detections)):
        cls = int(detections.classes[i])
        items.append({"class_id": cls, "class_name": class_names[cls] if cls < len(class_names) else str(cls),
                      "score": round(float(detections.scores[i]), 4),
                      "box_xyxy": [round(float(v), 2) for v in detections.boxes[i]],
                      "mask_area": int(detections.mask_crops[i].sum()),
                      ("mask_rle" if mask_format == "rle" else "mask_polygons"): masks[i]})
    return {"source": frame.source, "name": frame.name, "frame": frame.index,
            "height": detections.height, "width": detections.width, "detections": items}


class _Writer:
    """Output files of one predict run: overlays, videos, cut-outs."""

    def __init__(self, output_dir: Path, save_overlays: bool, cutouts: bool, background: str):
        self.dir, self.save_overlays, self.cutouts, self.background = output_dir, save_overlays, cutouts, background
        self.videos: dict[str, cv2.VideoWriter] = {}
        self.names: Counter = Counter()
        self.files: list[str] = []

    def _unique(self, name: str) -> str:
        self.names[name] += 1
        return name if self.names[name] == 1 else f"{name}_{self.names[name] - 1}"

    def write(self, frame: Frame, detections: ImageDetections, class_names: list[str]) -> None:
        name = self._unique(frame.name)
        if self.save_overlays:
            overlay = cv2.cvtColor(draw_overlay(frame.image, detections, class_names), cv2.COLOR_RGB2BGR)
            if frame.is_video:
                self._video(frame, overlay).write(overlay)
            else:
                self._save(self.dir / f"{name}.jpg", overlay)
        if self.cutouts:
            for i, cut in enumerate(make_cutouts(frame.image, detections, self.background)):
                if cut.size == 0:
                    continue
                cls = int(detections.classes[i])
                code = cv2.COLOR_RGBA2BGRA if cut.shape[-1] == 4 else cv2.COLOR_RGB2BGR
                self._save(self.dir / "cutouts" / f"{name}_{i}_{class_names[cls] if cls < len(class_names) else cls}.png",
                           cv2.cvtColor(cut, code))

    def _video(self, frame: Frame, overlay: np.ndarray) -> cv2.VideoWriter:
        if frame.source not in self.videos:
            path = self.dir / f"{Path(frame.source).stem.replace(':', '')}.mp4"
            height, width = overlay.shape[:2]
            self.videos[frame.source] = cv2.VideoWriter(
                str(path), cv2.VideoWriter_fourcc(*"mp4v"), frame.fps or 30.0, (width, height))
            self.files.append(str(path))
        return self.videos[frame.source]

    def _save(self, path: Path, image: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(path), image):
            raise OSError(f"could not write {path}")
        self.files.append(str(path))

    def close(self) -> None:
        for video in self.videos.values():
            video.release()


def predict(model_or_backend, source, output_dir: str | Path, class_names: list[str],
            conf: float = 0.25, iou: float = 0.7, max_det: int = 300, save_json: bool = True,
            cutouts: bool = False, image_size: int | None = None, agnostic: bool = False,
            cutout_background: str = "transparent", mask_format: str = "rle",
            save_overlays: bool = True, verbose: bool = True, end2end: bool = True,
            tile: int = 0, tile_overlap: float = 0.2, augment: bool = False) -> dict:
    """Segment every frame of ``source`` and write overlays, cut-outs and JSON.

    Args:
        model_or_backend: a Keras model (images float32 [0, 1] -> raw outputs), or a backend
            with ``image_size`` and ``detect`` (tfseg.predict.backends).
        source: image, folder, glob, list of images, video file or camera index.
        output_dir: where files go (created).
        class_names: name per class index.
        conf: score threshold (also applied on the host to a backend's detections);
            iou, max_det, agnostic: NMS settings of the Keras backend.
        save_json: write predictions.json.
        cutouts: write one PNG per instance.
        image_size: checked against the backend's input size when given.
        cutout_background: "transparent" (RGBA) or "black".
        mask_format: "rle" or "polygon" masks in the JSON.
        save_overlays: write overlay images / videos.
        verbose: progress lines on long inputs and a summary at the end.
        end2end: the Keras backend's choice for a one-to-one head (top-k, no NMS).
        augment: test-time augmentation in the Keras backend (tfseg.postprocess.tta).
        tile, tile_overlap: 0: one letterboxed pass per frame; n: also overlapping n px
            tiles (1: the input size), merged with it (tfseg.predict.tiles.detect_tiled).

    Returns:
        Summary dict: frames, detections, per_class counts, skipped [(path, reason)],
        seconds, fps, output_dir, files.
    """
    if mask_format not in ("rle", "polygon"):
        raise ValueError(f"mask_format must be 'rle' or 'polygon', got {mask_format!r}")
    if augment and hasattr(model_or_backend, "detect"):
        raise InputError("augment=true needs a Keras model: an export is a fixed one-view graph")
    backend = model_or_backend if hasattr(model_or_backend, "detect") else KerasBackend(
        model_or_backend, conf, iou, max_det, agnostic, end2end, augment)
    if image_size is not None and image_size != backend.image_size:
        raise InputError(f"image_size {image_size} differs from the model's input size {backend.image_size}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    skipped: list[tuple[str, str]] = []

    def report_skip(path: str, reason: str) -> None:
        skipped.append((path, reason))
        print(f"predict: skipped {path}: {reason}", file=sys.stderr)

    writer = _Writer(output_dir, save_overlays, cutouts, cutout_background)
    records, per_class, start, frames = [], Counter(), time.perf_counter(), 0
    last_report = start
    try:
        for frame in iter_frames(source, on_skip=report_skip):
            if tile:
                detections = detect_tiled(backend, frame.image, conf, iou, max_det, tile,
                                          tile_overlap, agnostic)
            else:
                detections = detect_image(backend, frame.image, conf)
            writer.write(frame, detections, class_names)
            per_class.update(class_names[c] if c < len(class_names) else str(c) for c in detections.classes.tolist())
            if save_json:
                records.append(detections_json(frame, detections, class_names, mask_format))
            frames += 1
            if verbose and time.perf_counter() - last_report > 5.0:
                last_report = time.perf_counter()
                print(f"predict: {frames} frames, {frames / (last_report - start):.1f} frames/s", flush=True)
    finally:
        writer.close()
    if save_json:
        path = output_dir / "predictions.json"
        path.write_text(json.dumps(records))
        writer.files.append(str(path))
    seconds = time.perf_counter() - start
    summary = {"frames": frames, "detections": int(sum(per_class.values())), "per_class": dict(per_class),
               "skipped": skipped, "seconds": seconds, "fps": frames / seconds if seconds else 0.0,
               "output_dir": str(output_dir), "files": writer.files}
    if verbose:
        print(f"predict: {frames} frames, {summary['detections']} detections "
              f"({', '.join(f'{n} {k}' for k, n in per_class.most_common()) or 'none'}), "
              f"{len(skipped)} skipped, {summary['fps']:.1f} frames/s -> {output_dir}")
    return summary


def detect_image(backend, image: np.ndarray, conf: float) -> ImageDetections:
    """One ``[H, W, 3]`` uint8 RGB image through letterbox, backend and host post-processing
    (masks at the image's own resolution); detections below ``conf`` dropped."""
    letterboxed, info = letterbox_frame(image, backend.image_size)
    raw = backend.detect(letterboxed[None])
    detections = to_original(raw, info[None])[0]
    keep = detections.scores >= conf
    if np.all(keep):
        return detections
    return ImageDetections(detections.boxes[keep], detections.scores[keep], detections.classes[keep],
                           [c for c, k in zip(detections.mask_crops, keep) if k],
                           detections.mask_origins[keep], detections.height, detections.width)
