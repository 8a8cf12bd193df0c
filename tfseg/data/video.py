"""A synthetic video with ground-truth identities: shapes that move, cross and occlude.

The objects are the built-in dataset's shapes (tfseg.data.shapes: the same outlines, the
same textured backgrounds, saturated colours), so a model trained on that dataset detects
them. Each object keeps its kind, size, colour and id for the whole clip, moves at a
constant velocity with a slow spin, and bounces off the frame's edges; objects drawn later
cover earlier ones, so crossing paths occlude. Deterministic by seed.

Written under ``output``, in the MOTChallenge layout::

    <name>.mp4         the frames (mp4v)
    gt/gt.txt          frame,id,x,y,w,h,1,class,visibility (1-based frames; the box of the
                       VISIBLE part; rows only where at least ``min_visible`` of it shows;
                       class is the 0-based class index, 0 = circle)
    seqinfo.ini        name, frame rate, length, size
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tfseg.data.shapes import KINDS, background, shape_polygon


@dataclass
class MovingShape:
    """One object of the clip: ``outline [k, 2]`` is its polygon around its centre at angle 0."""
    track_id: int
    class_index: int
    outline: np.ndarray
    colour: np.ndarray
    position: np.ndarray  # [2] centre x, y in pixels
    velocity: np.ndarray  # [2] pixels per frame
    spin: float           # radians per frame
    radius: float
    angle: float = 0.0

    def polygon(self) -> np.ndarray:
        """``[k, 2]`` outline at the current position and angle."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        return self.outline @ np.array([[c, s], [-s, c]]) + self.position

    def step(self, width: int, height: int) -> None:
        """Move one frame; reflect off the edges (the centre stays a radius inside)."""
        self.position = self.position + self.velocity
        self.angle += self.spin
        for axis, size in ((0, width), (1, height)):
            low, high = self.radius, size - self.radius
            if not low <= self.position[axis] <= high:
                self.velocity[axis] = -self.velocity[axis]
                self.position[axis] = np.clip(self.position[axis], low, high)


def _make_objects(count, width, height, num_classes, radius, speed, rng) -> list[MovingShape]:
    short = min(width, height)
    objects = []
    for i in range(count):
        cls = int(rng.integers(num_classes))
        r = float(rng.uniform(*radius)) * short
        flat = np.array(shape_polygon(KINDS[cls], 0.0, 0.0, r, rng)).reshape(-1, 2)
        direction = float(rng.uniform(0, 2 * np.pi))
        velocity = float(rng.uniform(*speed)) * short / 100 * np.array([np.cos(direction), np.sin(direction)])
        colour = rng.permutation([rng.uniform(200, 255), rng.uniform(0, 60), rng.uniform(0, 255)])
        position = np.array([rng.uniform(r, width - r), rng.uniform(r, height - r)])
        objects.append(MovingShape(i + 1, cls, flat, colour, position, velocity,
                                   float(rng.uniform(-0.03, 0.03)), r))
    return objects


def _fill(polygon: np.ndarray, height: int, width: int) -> np.ndarray:
    """``[H, W]`` bool mask of a polygon (sub-pixel vertices, 4 fractional bits)."""
    mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon * 16).astype(np.int32)], 1, cv2.LINE_8, shift=4)
    return mask.astype(bool)


def render_frames(frames: int, width: int, height: int, objects: int, seed: int = 0,
                  num_classes: int = 3, radius: tuple[float, float] = (0.08, 0.14),
                  speed: tuple[float, float] = (0.4, 1.2)):
    """Yield ``(image [H, W, 3] uint8 RGB, [(id, class, visible mask, visible fraction)])``
    per frame.

    Args:
        frames, width, height: clip length and frame size.
        objects: number of shapes; num_classes: kinds 1..5 (circle, rectangle, triangle...).
        radius: range of each shape's radius as a fraction of the shorter side.
        speed: range of each shape's speed in hundredths of the shorter side per frame.
    """
    rng = np.random.default_rng([seed, width, height, objects])
    scene = background(height, width, rng)
    shapes = _make_objects(objects, width, height, num_classes, radius, speed, rng)
    for _ in range(frames):
        image = scene.copy()
        full = [_fill(s.polygon(), height, width) for s in shapes]
        for shape, mask in zip(shapes, full):
            noise = rng.normal(0, 8, size=(int(mask.sum()), 3))
            image[mask] = np.clip(shape.colour + noise, 0, 255).astype(np.uint8)
        covered = np.zeros((height, width), bool)
        instances = []
        for shape, mask in reversed(list(zip(shapes, full))):  # topmost first
            visible = mask & ~covered
            covered |= mask
            fraction = float(visible.sum()) / max(int(mask.sum()), 1)
            instances.append((shape.track_id, shape.class_index, visible, fraction))
        yield image, instances[::-1]
        for shape in shapes:
            shape.step(width, height)


def write_clip(output: str | Path, frames: int = 300, width: int = 640, height: int = 480,
               objects: int = 10, seed: int = 0, num_classes: int = 3, fps: float = 30.0,
               min_visible: float = 0.25) -> dict:
    """Render a clip and write its video, ground truth and seqinfo.ini (see the module doc).

    Returns:
        ``{"video", "gt", "frames", "rows"}``: the paths and the counts written.
    """
    output = Path(output)
    (output / "gt").mkdir(parents=True, exist_ok=True)
    name = output.resolve().name
    video_path, gt_path = output / f"{name}.mp4", output / "gt" / "gt.txt"
    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise OSError(f"could not open {video_path} for writing")
    rows = []
    try:
        for index, (image, instances) in enumerate(render_frames(frames, width, height, objects,
                                                                 seed, num_classes)):
            writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            for track_id, cls, visible, fraction in instances:
                if fraction < min_visible or not visible.any():
                    continue
                ys, xs = np.nonzero(visible)
                x0, y0 = int(xs.min()), int(ys.min())
                rows.append(f"{index + 1},{track_id},{x0},{y0},{int(xs.max()) + 1 - x0},"
                            f"{int(ys.max()) + 1 - y0},1,{cls},{fraction:.3f}")
    finally:
        writer.release()
    gt_path.write_text("\n".join(rows) + "\n")
    (output / "seqinfo.ini").write_text(
        f"[Sequence]\nname={name}\nimDir={video_path.name}\nframeRate={fps:g}\nseqLength={frames}\n"
        f"imWidth={width}\nimHeight={height}\nimExt=.mp4\n")
    return {"video": str(video_path), "gt": str(gt_path), "frames": frames, "rows": len(rows)}
