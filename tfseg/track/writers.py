"""Files of a tracking run: MOTChallenge text, per-frame JSON records, overlay video.

MOTChallenge text (``<sequence>.txt``), one row per tracked object and frame:
``frame,id,x,y,w,h,conf,-1,-1,-1`` with 1-based frames and the box's top-left corner,
width and height in original pixels (what MOT evaluation kits and motmetrics read).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tfseg.postprocess.host import ImageDetections, encode_rle
from tfseg.predict.draw import draw_overlay
from tfseg.track.bytetrack import TrackedObject

MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "x3d", "y3d", "z3d")


def mot_lines(frame: int, tracked: list[TrackedObject]) -> list[str]:
    """MOTChallenge rows of one frame (``frame`` 1-based)."""
    lines = []
    for obj in tracked:
        x1, y1, x2, y2 = (float(v) for v in obj.box)
        lines.append(f"{frame},{obj.track_id},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},"
                     f"{obj.score:.4f},-1,-1,-1")
    return lines


def read_mot(path: str | Path) -> np.ndarray:
    """A MOTChallenge text file -> ``[rows, columns]`` float64 (no rows: ``[0, 10]``)."""
    text = Path(path).read_text()
    if not text.strip():
        return np.zeros((0, len(MOT_COLUMNS)))
    return np.loadtxt(text.splitlines(), delimiter=",", ndmin=2)


def tracked_detections(detections: ImageDetections, tracked: list[TrackedObject]) -> ImageDetections:
    """The detections that a track matched, in the order of ``tracked``."""
    index = np.array([obj.detection for obj in tracked], int)
    return ImageDetections(detections.boxes[index], detections.scores[index],
                           detections.classes[index], [detections.mask_crops[i] for i in index],
                           detections.mask_origins[index].reshape(-1, 2), detections.height,
                           detections.width)


def frame_record(sequence: str, frame: int, detections: ImageDetections,
                 tracked: list[TrackedObject], class_names: list[str]) -> dict:
    """One frame of tracks.json: per tracked object its id, box xyxy (original pixels),
    score, class and mask (COCO RLE)."""
    kept = tracked_detections(detections, tracked)
    masks = encode_rle(kept)
    objects = []
    for obj, mask in zip(tracked, masks):
        objects.append({"id": obj.track_id, "class_id": obj.class_id,
                        "class_name": class_names[obj.class_id] if obj.class_id < len(class_names)
                        else str(obj.class_id),
                        "score": round(obj.score, 4),
                        "box_xyxy": [round(float(v), 2) for v in obj.box], "mask_rle": mask})
    return {"sequence": sequence, "frame": frame, "height": detections.height,
            "width": detections.width, "tracks": objects}


class SequenceWriter:
    """The MOT text and (optionally) the overlay video of one sequence.

    Overlays show each tracked object's mask and box in its id's colour, labelled
    "id:N class score"; videos and camera streams give an .mp4, image sequences one .jpg per
    frame under ``<sequence>/``.
    """

    def __init__(self, output_dir: Path, sequence: str, fps: float | None, save_overlays: bool):
        self.dir, self.sequence, self.fps, self.save_overlays = output_dir, sequence, fps, save_overlays
        self.mot_path = output_dir / f"{sequence}.txt"
        self._mot = self.mot_path.open("w")
        self._video: cv2.VideoWriter | None = None
        self.files = [str(self.mot_path)]

    def write(self, frame: int, name: str, image: np.ndarray, detections: ImageDetections,
              tracked: list[TrackedObject], class_names: list[str]) -> None:
        for line in mot_lines(frame, tracked):
            self._mot.write(line + "\n")
        if not self.save_overlays:
            return
        overlay = draw_overlay(image, tracked_detections(detections, tracked), class_names,
                               track_ids=[obj.track_id for obj in tracked])
        overlay = cv2.cvtColor(overlay, cv2.COLOR_RGB2BGR)
        if self.fps is None:
            path = self.dir / self.sequence / f"{name}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), overlay):
                raise OSError(f"could not write {path}")
            self.files.append(str(path))
            return
        if self._video is None:
            path = self.dir / f"{self.sequence}.mp4"
            height, width = overlay.shape[:2]
            self._video = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                          (width, height))
            self.files.append(str(path))
        self._video.write(overlay)

    def close(self) -> None:
        self._mot.close()
        if self._video is not None:
            self._video.release()
