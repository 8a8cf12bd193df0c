"""Defaults live in tfseg/config/schema.py alone; configs/train/default.yaml is their printed
form, and the shipped dataset YAMLs hold only what differs from them."""

import dataclasses
from pathlib import Path

import yaml

from tfseg.config import load_config
from tfseg.config.load import LEAF_KEYS, defaults_yaml
from tfseg.config.schema import DataConfig, RunConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
DEFAULTS_FILE = CONFIGS / "train" / "default.yaml"


def test_the_defaults_file_is_the_schema_printed():
    assert DEFAULTS_FILE.read_text() == defaults_yaml(), (
        "configs/train/default.yaml differs from tfseg/config/schema.py: run "
        "`python tools/write_default_config.py` and commit the file")


def test_every_key_is_in_the_file_with_its_default_and_a_sentence():
    content = yaml.safe_load(DEFAULTS_FILE.read_text())
    defaults = dataclasses.asdict(RunConfig())
    assert content == defaults
    lines = DEFAULTS_FILE.read_text().splitlines()
    for dotted in LEAF_KEYS:
        *section, leaf = dotted.split(".")
        # searched from its section's header: a key may share a section's name (eval.augment)
        start = lines.index(f"{section[0]}:") if section else 0
        line = next(text for text in lines[start:] if text.strip().startswith(f"{leaf}:"))
        assert len(line.split("#", 1)[1].strip()) > 5, dotted


def test_the_file_loads_back_to_the_schema_defaults():
    # As a user file it sets every key, the dataset's too (shapes.yaml's max_instances 16
    # included): hence its header says to copy only the keys one changes.
    assert load_config([f"cfg={DEFAULTS_FILE}"]) == RunConfig()


def test_no_file_is_read_between_the_schema_and_the_dataset():
    """The default run differs from RunConfig() only by what configs/data/shapes.yaml sets:
    no recipe file sits in between with values of its own."""
    loaded = dataclasses.asdict(load_config([]))
    defaults = dataclasses.asdict(RunConfig())
    changed = {f"{section}.{k}" for section, values in loaded.items() if isinstance(values, dict)
               for k, v in values.items() if defaults[section][k] != v}
    shapes = yaml.safe_load((CONFIGS / "data" / "shapes.yaml").read_text())
    assert changed == {f"data.{k}" for k in shapes if k != "name"} == {"data.max_instances"}


def test_dataset_yamls_set_only_values_that_differ_from_the_defaults():
    defaults = DataConfig()
    for path in sorted((CONFIGS / "data").glob("*.yaml")):
        content = yaml.safe_load(path.read_text())
        assert content["name"] == path.stem, path.name
        repeated = [k for k, v in content.items() if k != "name" and getattr(defaults, k) == v]
        assert not repeated, f"{path.name} repeats the schema's defaults of {repeated}"
