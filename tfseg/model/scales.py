"""Model names, the scale tables of configs/models/*.yaml, and channel/depth rounding.

A model name is ``<family>-<scale>``: ``yolov8-seg-n`` ... ``yolo26-seg-x``. The family's YAML
holds what changes with scale (depth, width, max channels, the C3k switch of YOLO11/26); the
base layout of each family is code (backbone.py, neck.py).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from importlib import resources

import yaml

from tfseg.errors import ConfigError

FAMILIES = ("yolov8-seg", "yolo11-seg", "yolo26-seg")
SCALE_NAMES = ("n", "s", "m", "l", "x")


@dataclass(frozen=True)
class ModelSpec:
    """Everything the builders need to know about one named model.

    Attributes:
        name: the model name, e.g. ``yolov8-seg-n``.
        family: ``yolov8-seg``, ``yolo11-seg`` or ``yolo26-seg``.
        scale: one of n, s, m, l, x.
        depth: multiplier of block repeats.
        width: multiplier of channels.
        max_channels: cap on base channels before the width multiplier.
        c3k: YOLO11/26: force C3k inner blocks in every C3k2.
        reg_max: DFL bins per box side (1: plain distances, no DFL).
        num_masks: prototype count.
        proto_channels: Proto hidden channels before width scaling.
        end2end: the family has a one-to-one head (NMS-free inference, YOLO26).
    """
    name: str
    family: str
    scale: str
    depth: float
    width: float
    max_channels: int
    c3k: bool
    reg_max: int
    num_masks: int
    proto_channels: int
    end2end: bool = False

    def channels(self, base: int) -> int:
        """Channels of a block whose base (width 1.0) channel count is ``base``."""
        return make_divisible(min(base, self.max_channels) * self.width, 8)

    def repeats(self, base: int) -> int:
        """Repeats of a block whose base repeat count is ``base``."""
        return max(round(base * self.depth), 1) if base > 1 else base


def make_divisible(value: float, divisor: int) -> int:
    """The smallest multiple of ``divisor`` not below ``value`` (the reference's rounding)."""
    return int(math.ceil(value / divisor) * divisor)


def all_model_names() -> list[str]:
    """Every supported model name, family by family, scale by scale."""
    return [f"{family}-{scale}" for family in FAMILIES for scale in SCALE_NAMES]


def _family_table(family: str) -> dict:
    text = resources.files("tfseg.configs").joinpath("models", f"{family}.yaml").read_text()
    return yaml.safe_load(text)


def model_spec(name: str) -> ModelSpec:
    """Look up a model by name.

    Args:
        name: ``<family>-<scale>``, e.g. ``yolo11-seg-s``.

    Returns:
        The ModelSpec of that model.

    Raises:
        ConfigError: the name is not a known model (with the closest known names).
    """
    family, _, scale = name.rpartition("-")
    if family not in FAMILIES or scale not in SCALE_NAMES:
        close = difflib.get_close_matches(name, all_model_names(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"model.name: unknown model '{name}'{hint} "
                          f"(known: {', '.join(all_model_names())})")
    table = _family_table(family)
    row = table["scales"][scale]
    return ModelSpec(name=name, family=family, scale=scale, depth=float(row["depth"]),
                     width=float(row["width"]), max_channels=int(row["max_channels"]),
                     c3k=bool(row.get("c3k", False)), reg_max=int(table["reg_max"]),
                     num_masks=int(table["num_masks"]),
                     proto_channels=int(table["proto_channels"]),
                     end2end=bool(table.get("end2end", False)))

