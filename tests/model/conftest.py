"""Shared fixtures of tests/model: the reference files and their weight generator.

Exposed as one fixture, ``reference``, whose attributes are the helpers below (a conftest
cannot be imported by name under --import-mode=importlib)."""

from __future__ import annotations

import json
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from reference_weights import reference_like_weights

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "model"


def reference_state(model_name: str) -> dict:
    """The state dict the reference ran with, regenerated: ``{name: np.ndarray}``."""
    entries = json.loads((FIXTURES / f"{model_name}.state.json").read_text())
    return reference_like_weights(entries)


def reference_outputs(model_name: str) -> dict:
    with np.load(FIXTURES / f"{model_name}.outputs.npz") as data:
        return {k: data[k] for k in data.files}


def scene_batch() -> np.ndarray:
    """The fixture scene as the model input: ``[1, 160, 160, 3]`` float32 RGB in [0, 1]."""
    bgr = cv2.imread(str(FIXTURES / "scene.png"), cv2.IMREAD_COLOR)
    return (bgr[..., ::-1].astype(np.float32) / 255.0)[None]


@pytest.fixture(scope="session")
def reference():
    """Helpers over tests/fixtures/model: state(name), outputs(name), scene(),
    counts (the reference's parameter counts and GFLOPs), fixtures (the folder)."""
    return types.SimpleNamespace(
        state=reference_state, outputs=reference_outputs, scene=scene_batch,
        fixtures=FIXTURES,
        counts=json.loads((FIXTURES / "reference_counts.json").read_text()))
