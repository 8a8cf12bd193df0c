"""YAML files and ``key=value`` overrides -> a validated ``RunConfig``; dumping it back.

Layers, later ones winning: the dataclass defaults of tfseg/config/schema.py (the only place
defaults live), the dataset's YAML (``configs/data/<name>.yaml``), user YAMLs given as
``cfg=path.yaml``, then the command-line overrides. ``defaults_yaml`` writes the defaults with
the sentence that documents each key (configs/train/default.yaml is that text, for reading and
copying: no command loads it).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

import yaml

from tfseg.config.factory import (augment_arguments, cache_mode, check_auto_optimizer,
                                  predict_arguments)
from tfseg.config.paths import is_ultralytics_yaml, ultralytics_data_section
from tfseg.config.recipes import recipe_layer
from tfseg.config.schema import ALIASES, SECTIONS, RunConfig
from tfseg.errors import ConfigError

_MODEL_NAME = re.compile(r"^(yolov8-seg|yolo11-seg|yolo26-seg)-[nsmlx]$")


def configs_dir() -> Path:
    """The folder of shipped YAML configs (installed as the package ``tfseg.configs``)."""
    return Path(str(resources.files("tfseg.configs")))


def _leaf_keys() -> dict[str, type]:
    """Every dotted key of RunConfig and its type."""
    keys: dict[str, type] = {}
    for top in dataclasses.fields(RunConfig):
        if top.name in SECTIONS:
            for leaf in dataclasses.fields(top.default_factory()):
                keys[f"{top.name}.{leaf.name}"] = type(getattr(top.default_factory(), leaf.name))
        else:
            keys[top.name] = type(getattr(RunConfig(), top.name))
    return keys


LEAF_KEYS = _leaf_keys()


def resolve_key(key: str, section: str | None = None) -> str:
    """The dotted key a user's ``key`` means, or a ConfigError listing close matches.

    Args:
        key: ``section.key``, an alias (``imgsz``), or a bare key name.
        section: the section of the verb being run (``eval`` for ``tfseg val``); a bare key
            found there wins, so ``conf=`` means eval.conf under val and predict.conf under
            predict.
    """
    if key in LEAF_KEYS:
        return key
    if section and f"{section}.{key}" in LEAF_KEYS:
        return f"{section}.{key}"
    if key in ALIASES:
        return ALIASES[key]
    owners = [k for k in LEAF_KEYS if k.split(".")[-1] == key]
    if len(owners) == 1:
        return owners[0]
    if len(owners) > 1:
        raise ConfigError(f"key '{key}' is ambiguous: write one of {', '.join(sorted(owners))}")
    names = sorted(set(LEAF_KEYS) | set(ALIASES) | {k.split('.')[-1] for k in LEAF_KEYS})
    close = difflib.get_close_matches(key, names, n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown config key '{key}'{hint}")


def _convert(key: str, value: Any, kind: type, source: str) -> Any:
    """``value`` (from YAML or a command-line string) as the key's type."""
    if isinstance(value, str) and kind is not str:
        text = value.strip().lower()
        if kind is bool:
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
        else:
            try:
                return kind(float(text)) if kind is int and re.fullmatch(r"-?\d+(\.0*)?", text) else kind(text)
            except ValueError:
                pass
        raise ConfigError(f"{source}: '{key}' must be {kind.__name__}, got '{value}'")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if kind is str and isinstance(value, bool):  # YAML's false/true for a key such as cache
        return str(value).lower()
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{source}: '{key}' must be {kind.__name__}, got {value!r}")
    return value


def _set(cfg: RunConfig, dotted: str, value: Any, source: str) -> None:
    value = _convert(dotted, value, LEAF_KEYS[dotted], source)
    if "." in dotted:
        section, leaf = dotted.split(".", 1)
        setattr(getattr(cfg, section), leaf, value)
    else:
        setattr(cfg, dotted, value)


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of keys, got {type(content).__name__}")
    return content


def _flatten(content: dict, source: str, section: str | None = None) -> list[tuple[str, Any]]:
    """YAML mapping (sections of keys, or the keys of one section) -> [(dotted key, value)]."""
    items: list[tuple[str, Any]] = []
    for key, value in content.items():
        if section is None and key in SECTIONS and isinstance(value, dict):
            items += _flatten(value, source, key)
            continue
        dotted = f"{section}.{key}" if section else str(key)
        if section and dotted not in LEAF_KEYS:
            names = [k.split(".", 1)[1] for k in LEAF_KEYS if k.startswith(section + ".")]
            close = difflib.get_close_matches(str(key), names, n=4, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"{source}: unknown key '{key}' in section '{section}'{hint}")
        try:
            items.append((resolve_key(dotted), value))
        except ConfigError as err:
            raise ConfigError(f"{source}: {err}") from None
    return items


def parse_overrides(args: Iterable[str]) -> list[tuple[str, str]]:
    """``["epochs=3", "imgsz=320"]`` -> ``[("epochs", "3"), ("imgsz", "320")]``."""
    pairs = []
    for arg in args:
        if "=" not in arg or arg.startswith("="):
            raise ConfigError(f"expected key=value, got '{arg}'")
        key, value = arg.split("=", 1)
        pairs.append((key.strip(), value))
    return pairs


def data_yaml(name: str) -> Path | None:
    """The YAML of a dataset name: a path to a YAML file, or configs/data/<name>.yaml."""
    if name.endswith((".yaml", ".yml")):
        return Path(name)
    shipped = configs_dir() / "data" / f"{name}.yaml"
    return shipped if shipped.is_file() else None


def _dataset_layer(path: Path) -> list[tuple[str, Any]]:
    """A dataset YAML's keys: our data section's, or an Ultralytics data.yaml mapped onto it."""
    content = _read_yaml(path)
    if is_ultralytics_yaml(content):
        content = ultralytics_data_section(path, content)
    return _flatten(content, str(path), "data")


def load_config(overrides: Iterable[str] = (), section: str | None = None) -> RunConfig:
    """Build the RunConfig of one command.

    Args:
        overrides: ``key=value`` strings from the command line; ``cfg=file.yaml`` loads a
            user YAML (sections of keys) before the other overrides.
        section: the section of the running verb, for bare keys (see ``resolve_key``).

    Raises:
        ConfigError: unknown key (with close matches), wrong type, bad value or path.
    """
    pairs = parse_overrides(overrides)
    user_files = [Path(v) for k, v in pairs if k == "cfg"]
    pairs = [(k, v) for k, v in pairs if k != "cfg"]
    resolved = [(resolve_key(k, section), v) for k, v in pairs]

    layers = [(str(path), _flatten(_read_yaml(path), str(path))) for path in user_files]
    layers.append(("command line", resolved))

    # The dataset YAML sits under the user's layers but needs the final dataset name.
    data_name = RunConfig().data.name
    for _, items in layers:
        data_name = next((v for k, v in reversed(items) if k == "data.name"), data_name)
    yaml_path = data_yaml(str(data_name))
    if yaml_path is None or not yaml_path.is_file():
        known = sorted(p.stem for p in (configs_dir() / "data").glob("*.yaml"))
        raise ConfigError(f"dataset config not found: '{data_name}' is neither a YAML file nor "
                          f"one of the shipped datasets ({', '.join(known) or 'none'})")
    layers.insert(0, (str(yaml_path), _dataset_layer(yaml_path)))
    # The model's published augmentation recipe sits under everything the user wrote.
    model_name = RunConfig().model.name
    for _, items in layers:
        model_name = next((v for k, v in reversed(items) if k == "model.name"), model_name)
    layers.insert(0, ("augmentation recipe", recipe_layer(str(model_name))))

    cfg = RunConfig()
    for source, items in layers:
        for dotted, value in items:
            _set(cfg, dotted, value, source)
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Check values that a type alone does not constrain."""
    if not _MODEL_NAME.match(cfg.model.name):
        raise ConfigError(f"model.name '{cfg.model.name}' is not a known model; expected "
                          "yolov8-seg-<scale>, yolo11-seg-<scale> or yolo26-seg-<scale> with scale "
                          "in n, s, m, l, x")
    if cfg.model.image_size <= 0 or cfg.model.image_size % 32:
        raise ConfigError(f"model.image_size must be a positive multiple of 32, got {cfg.model.image_size}")
    for key in ("mosaic", "fliplr", "flipud", "mixup", "cutmix", "copy_paste"):
        value = getattr(cfg.augment, key)
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"augment.{key} is a probability in [0, 1], got {value}")
    if not 0.0 <= cfg.augment.perspective <= 0.001:
        raise ConfigError(f"augment.perspective must lie in [0, 0.001] (larger terms fold the "
                          f"image over itself), got {cfg.augment.perspective}")
    if not 0.0 <= cfg.augment.multi_scale < 1.0:
        raise ConfigError(f"augment.multi_scale is a fraction of imgsz in [0, 1), got "
                          f"{cfg.augment.multi_scale}")
    augment_arguments(cfg)  # checks augment.copy_paste_mode
    for section in ("eval", "predict", "export"):
        sub = getattr(cfg, section)
        if not 0.0 <= sub.conf <= 1.0 or not 0.0 < sub.iou <= 1.0:
            raise ConfigError(f"{section}.conf and {section}.iou must lie in [0, 1]")
        if sub.max_det <= 0:
            raise ConfigError(f"{section}.max_det must be positive, got {sub.max_det}")
    if cfg.train.epochs <= 0 or cfg.train.batch <= 0:
        raise ConfigError("train.epochs and train.batch must be positive")
    if cfg.train.optimizer not in ("auto", "sgd", "adamw"):
        raise ConfigError(f"train.optimizer must be auto, sgd or adamw, got '{cfg.train.optimizer}'")
    if cfg.task != "segment":
        raise ConfigError(f"task: tfseg trains and runs instance segmentation only ('segment'), "
                          f"got '{cfg.task}'")
    check_auto_optimizer(cfg.train)
    predict_arguments(cfg)  # checks predict.cutouts and predict.mask_format
    cache_mode(cfg.data)  # checks data.cache
    if cfg.data.format not in ("coco", "yolo"):
        raise ConfigError(f"data.format must be coco or yolo, got '{cfg.data.format}'")
    for key in ("model.weights", "train.resume"):
        section, leaf = key.split(".")
        path = getattr(getattr(cfg, section), leaf)
        if path and not Path(path).exists():
            raise ConfigError(f"{key}: path does not exist: {path}")


def to_dict(cfg: RunConfig) -> dict:
    """The config as plain nested dicts (for YAML/JSON)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: RunConfig) -> str:
    """The config as YAML text, sections in a stable order."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


DEFAULTS_HEADER = """\
# Every config key of tfseg with its default and why, generated from tfseg/config/schema.py
# (where the defaults live) by tools/write_default_config.py; a test fails when the two differ.
# No command reads this file. Change a key on the command line (`tfseg train epochs=50
# cosine=true`) or copy the keys you change into your own YAML and pass it as cfg=my.yaml.
"""


def _commented_keys(owner: Any, specs: Iterable[dataclasses.Field], indent: str) -> list[str]:
    """``key: value  # why`` for the given fields of a schema dataclass; long sentences wrap."""
    lines = []
    for spec in specs:
        text = indent + yaml.safe_dump({spec.name: getattr(owner, spec.name)}).strip()
        column = max(len(text), 26) + 2
        comment = textwrap.wrap(spec.metadata["why"], max(100 - column - 4, 40),
                                break_on_hyphens=False)
        lines.append(f"{text:<{column}}# {comment[0]}")
        lines += [f"{'':<{column}}#   {more}" for more in comment[1:]]
    return lines


def defaults_yaml() -> str:
    """Every key's default as commented YAML (``cfg=`` loads it back to ``RunConfig()``)."""
    defaults = RunConfig()
    top = [spec for spec in dataclasses.fields(defaults) if spec.name not in SECTIONS]
    lines = _commented_keys(defaults, top, "")
    for name in SECTIONS:
        section = getattr(defaults, name)
        lines += ["", f"{name}:", *_commented_keys(section, dataclasses.fields(section), "  ")]
    return DEFAULTS_HEADER + "\n" + "\n".join(lines) + "\n"
