"""Typed configuration: dataclasses filled from YAML and ``key=value`` overrides."""

from tfseg.config.load import dump_config, load_config, resolve_key
from tfseg.config.schema import RunConfig

__all__ = ["RunConfig", "dump_config", "load_config", "resolve_key"]
