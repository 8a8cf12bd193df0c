"""Inputs of predict -> frames: an image, a list, a folder, a glob, a video file, a network
stream (rtsp://, rtmp://, http(s)://, udp://, tcp:// URLs, read by OpenCV's FFmpeg), a camera.

Unreadable image files inside a folder, glob or list are reported and skipped; a path that
does not exist, a folder or glob without images, and a video, stream or camera that cannot
be opened raise InputError.
"""

from __future__ import annotations

import glob as globbing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from tfseg.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".mpg", ".mpeg", ".webm"}
STREAM_SCHEMES = ("rtsp://", "rtmp://", "http://", "https://", "udp://", "tcp://")


@dataclass
class Frame:
    """One image to predict on.

    Attributes:
        image: ``[H, W, 3]`` uint8 RGB.
        name: output name (file stem, or ``<video stem>_<frame:06d>``).
        source: the file (or ``camera:<index>``) it came from.
        index: frame index within a video or camera stream (0 for images).
        fps: frames per second of its video (None for images).
    """
    image: np.ndarray
    name: str
    source: str
    index: int = 0
    fps: float | None = None

    @property
    def is_video(self) -> bool:
        return self.fps is not None


def read_image(path: str | Path) -> np.ndarray | None:
    """An image file as ``[H, W, 3]`` uint8 RGB (grey expanded, alpha dropped), or None."""
    data = np.fromfile(str(path), np.uint8)  # imdecode also copes with non-ASCII paths
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _image_files(source) -> list[Path]:
    """Resolve an image source (file, folder, glob or list) into a list of files."""
    if isinstance(source, (list, tuple)):
        files = [Path(p) for p in source]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise InputError(f"input files do not exist: {', '.join(missing)}")
        return files
    text = str(source)
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in globbing.glob(text, recursive=True) if Path(p).is_file())
        files = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not files:
            raise InputError(f"no images match the pattern {text}")
        return files
    path = Path(text)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise InputError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        return files
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    return [path]


def _video_frames(capture: cv2.VideoCapture, stem: str, source: str) -> Iterator[Frame]:
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    index = 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            yield Frame(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), f"{stem}_{index:06d}", source, index, fps)
            index += 1
    finally:
        capture.release()


def _open_video(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise InputError(f"video {path} cannot be opened")
    return capture


def is_camera(source) -> bool:
    return isinstance(source, int) or (isinstance(source, str) and source.isdigit())


def is_stream(source) -> bool:
    """A network stream's URL (read as a video, frame by frame, until it ends)."""
    return isinstance(source, str) and source.lower().startswith(STREAM_SCHEMES)


def iter_frames(source, on_skip: Callable[[str, str], None] | None = None) -> Iterator[Frame]:
    """Frames of a predict source, in order.

    Args:
        source: an image path, a folder, a glob pattern, a list of image paths, a video file,
            a stream URL (``rtsp://...``, ``http://.../live.mp4``), or a camera index (int or
            digit string).
        on_skip: called with (path, reason) for every unreadable image that is skipped.

    Yields:
        Frame objects (RGB uint8).

    Raises:
        InputError: missing path, no images, video, stream or camera that cannot be opened,
            or a single image file that cannot be read.
    """
    if is_camera(source):
        capture = cv2.VideoCapture(int(source))
        if not capture.isOpened():
            raise InputError(f"camera {int(source)} cannot be opened")
        yield from _video_frames(capture, f"camera{int(source)}", f"camera:{int(source)}")
        return
    if is_stream(source):
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            raise InputError(f"stream {source} cannot be opened")
        stem = Path(source.split("?")[0].rstrip("/")).stem.replace(":", "") or "stream"
        yield from _video_frames(capture, stem, source)
        return
    files = _image_files(source)
    single = len(files) == 1 and not isinstance(source, (list, tuple))
    for path in files:
        if path.suffix.lower() in VIDEO_SUFFIXES:
            yield from _video_frames(_open_video(path), path.stem, str(path))
            continue
        image = read_image(path)
        if image is None:
            if single:
                raise InputError(f"image {path} cannot be read")
            if on_skip is not None:
                on_skip(str(path), "not a readable image")
            continue
        yield Frame(image, path.stem, str(path))
