"""The YAML configs shipped with tfseg: model scale tables, datasets, and every config key's
default printed from tfseg/config/schema.py (train/default.yaml)."""
