"""Where a dataset's files are, from its DataConfig: the one rule for every command."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfseg.config.schema import DataConfig


@dataclass(frozen=True)
class DatasetPaths:
    root: Path
    train_images: Path
    train_annotations: Path
    val_images: Path
    val_annotations: Path
    records: Path


def _default_folder(data: DataConfig) -> str:
    """datasets/<name>; for shapes the folder names its parameters, so a differently sized
    shapes set is written beside an existing one instead of silently reusing it."""
    if data.name != "shapes":
        return data.name
    return (f"shapes-{data.shapes_train}-{data.shapes_val}-{data.shapes_min_size}-"
            f"{data.shapes_max_size}px-{data.shapes_num_classes}c-seed{data.shapes_seed}")


def dataset_paths(data: DataConfig) -> DatasetPaths:
    """Absolute paths of a dataset's files; relative ones are under ``data.root``."""
    root = Path(data.root or Path("datasets") / _default_folder(data)).expanduser().resolve()

    def under(path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else root / path

    return DatasetPaths(root, under(data.train_images), under(data.train_annotations),
                        under(data.val_images), under(data.val_annotations),
                        under(data.records or "records"))
