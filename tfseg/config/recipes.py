"""The published augmentation recipe of each model family and scale (configs/train/recipes.yaml).

``load_config`` lays a model's recipe under the user's YAML and command line, so a key the
user sets wins and every other key of the recipe applies; ``recipe_line`` says what applied.
"""

from __future__ import annotations

import dataclasses
from importlib import resources

import yaml

from tfseg.config.schema import AugmentConfig, RunConfig
from tfseg.errors import ConfigError

RECIPES = "train/recipes.yaml"  # under the shipped configs (tfseg.configs)


def _table() -> dict:
    return yaml.safe_load((resources.files("tfseg.configs") / RECIPES).read_text()) or {}


def recipe_for(model_name: str) -> dict:
    """The recipe's keys of the augment section for ``model_name`` (``yolo11-seg-m``); empty
    for a scale the table does not list.

    Raises:
        ConfigError: the table names a key the augment section does not have.
    """
    family, _, scale = model_name.rpartition("-")
    values = dict((_table().get(family) or {}).get(scale) or {})
    known = {spec.name for spec in dataclasses.fields(AugmentConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{RECIPES}: {model_name} names unknown augment keys {unknown}")
    return values


def recipe_layer(model_name: str) -> list[tuple[str, object]]:
    """The recipe as ``(dotted key, value)`` pairs, the form of load_config's layers."""
    return [(f"augment.{name}", value) for name, value in recipe_for(model_name).items()]


def recipe_line(cfg: RunConfig) -> str:
    """One line: the recipe applied for ``cfg.model.name`` and the keys the user set instead."""
    values = recipe_for(cfg.model.name)
    if not values:
        return f"augmentation recipe {cfg.model.name}: the defaults (configs/{RECIPES} lists no other)"
    applied = [f"{k}={v:g}" for k, v in values.items() if getattr(cfg.augment, k) == v]
    yours = [f"{k}={getattr(cfg.augment, k):g}" for k, v in values.items()
             if getattr(cfg.augment, k) != v]
    line = f"augmentation recipe {cfg.model.name} (configs/{RECIPES}): {' '.join(applied) or 'none'}"
    return line + (f"; yours instead: {' '.join(yours)}" if yours else "")
