"""Run the user-facing scripts of examples/ as a user does: a subprocess with their CLI, then
read the files they write (tests never import a script)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python examples/<script> args...``; the output's tail is the failure message."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, str(EXAMPLES / script), *args], capture_output=True,
                            text=True, env=env, timeout=timeout)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    return result


def tflite_app(model: Path, image: Path, folder: Path) -> tuple[dict, np.ndarray]:
    """examples/tflite_app.py on one image: (its --json content, its --masks [n, H, W] bool)."""
    out_json, out_masks = folder / f"{image.stem}.json", folder / f"{image.stem}.npz"
    run_example("tflite_app.py", str(model), str(image), "--json", str(out_json),
                "--masks", str(out_masks))
    with np.load(out_masks) as data:
        return json.loads(out_json.read_text()), data["masks"]


def app_letterbox(rgb: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The letterbox the app's docstring specifies (cv2 bilinear, grey 114, centred):
    ``[S, S, 3]`` uint8 and the ``[5]`` float32 info tfseg's host code takes."""
    height, width = rgb.shape[:2]
    scale = min(size / height, size / width)
    new_h, new_w = min(round(height * scale), size), min(round(width * scale), size)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas = np.full((size, size, 3), 114, np.uint8)
    canvas[top:top + new_h, left:left + new_w] = cv2.resize(rgb, (new_w, new_h),
                                                            interpolation=cv2.INTER_LINEAR)
    return canvas, np.array([height, width, scale, top, left], np.float32)
