"""A constant-velocity Kalman filter on boxes, batched over tracks (numpy).

State per track (8 numbers): box centre x, y, aspect ratio a = w / h, height h, and the
velocity of each, in pixels (and aspect units) per frame. Only the first four are measured.
The noise of position and velocity scales with the box height, so a large, near object and
a small, far one are equally sure of themselves; the aspect ratio gets small fixed noise,
as boxes of one object change shape slowly. These are the weights SORT-family trackers use
(1/20 of the height for position, 1/160 for velocity).

Shapes: ``mean [n, 8]``, ``covariance [n, 8, 8]``, ``measurement [n, 4]`` (x, y, a, h).
"""

from __future__ import annotations

import numpy as np

STD_POSITION = 1.0 / 20
STD_VELOCITY = 1.0 / 160
_ASPECT_POSITION, _ASPECT_VELOCITY, _ASPECT_MEASURED = 1e-2, 1e-5, 1e-1

# x_{t+1} = x_t + v_t (one frame), v_{t+1} = v_t
TRANSITION = np.eye(8)
TRANSITION[:4, 4:] = np.eye(4)


def boxes_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """``[n, 4]`` xyxy -> ``[n, 4]`` (centre x, centre y, w / h, h)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width, height = boxes[:, 2] - boxes[:, 0], np.maximum(boxes[:, 3] - boxes[:, 1], 1e-6)
    return np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2,
                     width / height, height], axis=1)


def xyah_to_boxes(xyah: np.ndarray) -> np.ndarray:
    """``[n, >=4]`` (centre x, centre y, w / h, h, ...) -> ``[n, 4]`` xyxy."""
    cx, cy, aspect, height = (xyah[:, i] for i in range(4))
    width = aspect * height
    return np.stack([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2], axis=1)


def _std(height: np.ndarray, weight: float, aspect: float) -> np.ndarray:
    """``[n, 4]`` standard deviations (x, y, a, h) for boxes of ``height``."""
    scaled = weight * height
    return np.stack([scaled, scaled, np.full_like(height, aspect), scaled], axis=1)


def initiate(measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from unmatched measurements ``[n, 4]`` xyah: zero velocity, wide
    covariance (twice the position noise, ten times the velocity noise)."""
    n = len(measurement)
    mean = np.concatenate([measurement, np.zeros((n, 4))], axis=1)  # [n, 8]
    height = measurement[:, 3]
    std = np.concatenate([2 * _std(height, STD_POSITION, _ASPECT_POSITION),
                          10 * _std(height, STD_VELOCITY, _ASPECT_VELOCITY)], axis=1)  # [n, 8]
    covariance = np.einsum("ni,ij->nij", std ** 2, np.eye(8))  # [n, 8, 8] diagonal
    return mean, covariance


def predict(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame ahead: ``x = F x``, ``P = F P F^T + Q`` with Q from each track's height."""
    height = mean[:, 3]
    std = np.concatenate([_std(height, STD_POSITION, _ASPECT_POSITION),
                          _std(height, STD_VELOCITY, _ASPECT_VELOCITY)], axis=1)  # [n, 8]
    mean = mean @ TRANSITION.T
    covariance = TRANSITION @ covariance @ TRANSITION.T  # [n, 8, 8] (matmul broadcasts)
    covariance[:, np.arange(8), np.arange(8)] += std ** 2
    return mean, covariance


def update(mean: np.ndarray, covariance: np.ndarray,
           measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct each track with its measurement ``[n, 4]`` xyah.

    With H = [I 0] (the first four states are measured): S = P[:4, :4] + R,
    K = P[:, :4] S^-1, x += K (z - x[:4]), P -= K S K^T.
    """
    noise = _std(mean[:, 3], STD_POSITION, _ASPECT_MEASURED) ** 2  # [n, 4]
    innovation_cov = covariance[:, :4, :4].copy()
    innovation_cov[:, np.arange(4), np.arange(4)] += noise  # [n, 4, 4]
    cross = covariance[:, :, :4]  # [n, 8, 4] = P H^T
    # K = P H^T S^-1, solved as S^T K^T = (P H^T)^T; S is symmetric.
    gain = np.linalg.solve(innovation_cov, cross.transpose(0, 2, 1)).transpose(0, 2, 1)  # [n, 8, 4]
    residual = measurement - mean[:, :4]  # [n, 4]
    mean = mean + np.einsum("nij,nj->ni", gain, residual)
    covariance = covariance - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    return mean, covariance
