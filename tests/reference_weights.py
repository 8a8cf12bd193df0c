"""The weights and input crop of the reference fixtures in tests/fixtures/model, rebuilt
from the stored state-dict names and shapes with seeded numpy (no torch).

tools/make_model_fixtures.py made the fixtures with these same functions, in an environment
with the reference installed; the tests regenerate the identical weights from here.
"""

from __future__ import annotations

import numpy as np

FIXTURE_SEED = 20240601
CROP_SIZE = 96  # input of the end-to-end fixtures: the scene's central 96 x 96 pixels


def reference_like_weights(entries: list, seed: int = FIXTURE_SEED, gain: float = 1.3) -> dict:
    """Deterministic weights and BN statistics for a state dict, from names and shapes.

    Values keep activations of order one through ~20 layers, so a parity check at 1e-4
    compares numbers that mean something: conv weights N(0, 1/fan_in) * gain, BN scale in
    [0.7, 1.3], shift and mean in [-0.2, 0.2], variance in [0.5, 1.5], biases in [-0.5, 0.5];
    the DFL projection keeps its fixed ramp.

    Args:
        entries: ``[[name, shape, dtype], ...]`` in state-dict order.
        seed: base seed; entry i uses the generator seeded with (seed, i).

    Returns:
        ``{name: np.ndarray}`` with the given shapes (float32; int64 for counters).
    """
    weights = {}
    for index, (name, shape, dtype) in enumerate(entries):
        rng = np.random.default_rng([seed, index])
        shape = tuple(shape)
        if dtype == "int64":
            weights[name] = np.zeros(shape, np.int64)
        elif name.endswith("dfl.conv.weight"):  # the fixed DFL projection 0..reg_max-1
            weights[name] = np.arange(shape[1], dtype=np.float32).reshape(shape)
        elif name.endswith("running_var"):
            weights[name] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif name.endswith(("running_mean", "bn.bias")):
            weights[name] = rng.uniform(-0.2, 0.2, shape).astype(np.float32)
        elif name.endswith("bn.weight"):
            weights[name] = rng.uniform(0.7, 1.3, shape).astype(np.float32)
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            if name.endswith("upsample.weight"):  # transposed conv: [in, out, kh, kw]
                fan_in = shape[0]
            weights[name] = (rng.standard_normal(shape) * gain / np.sqrt(fan_in)).astype(np.float32)
        else:
            weights[name] = rng.uniform(-0.5, 0.5, shape).astype(np.float32)
    return weights


def scene_crop(scene: np.ndarray, size: int = CROP_SIZE) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of a ``[H, W, 3]`` scene."""
    top, left = (scene.shape[0] - size) // 2, (scene.shape[1] - size) // 2
    return scene[top:top + size, left:left + size]
