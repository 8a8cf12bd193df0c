"""Rewrite configs/train/default.yaml from the schema (tfseg/config/schema.py).

    python tools/write_default_config.py

The defaults and the sentence documenting each key live in the schema; the YAML file is their
printed form for reading and copying. tests/config/test_defaults_file.py fails when the file
and the schema differ; run this after changing a key.
"""

from pathlib import Path

from tfseg.config.load import defaults_yaml

TARGET = Path(__file__).resolve().parents[1] / "configs" / "train" / "default.yaml"

if __name__ == "__main__":
    TARGET.write_text(defaults_yaml())
    print(f"wrote {TARGET}")
