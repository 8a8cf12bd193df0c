"""Where a dataset's files are, from its DataConfig: the one rule for every command.

Two layouts, one answer (``dataset_paths``) for both, used by prepare, train and val:

- ``format: coco``: image folders and COCO JSON files under ``data.root``; the JSON files are
  the evaluation ground truth.
- ``format: yolo``: a YOLO-seg ``data.yaml`` (Ultralytics' keys ``path``, ``train``, ``val``,
  ``names``) names the image folders; the labels are in the sibling ``labels/`` folders. Each
  split is converted to COCO JSON under the records folder before preparation
  (``converted_annotations``), and that converted file is the split's evaluation ground truth.

An Ultralytics ``data.yaml`` can be the dataset itself (``data=path/to/data.yaml``): it is
recognised by its keys and mapped onto the data section (``ultralytics_data_section``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from tfseg.config.schema import DataConfig
from tfseg.errors import ConfigError, DatasetError

# Keys of an Ultralytics dataset YAML; none of them is a key of our data section.
ULTRALYTICS_KEYS = ("path", "train", "val", "test", "names")


@dataclass(frozen=True)
class DatasetPaths:
    """Absolute paths of a dataset's files.

    ``*_annotations`` are the COCO JSON files preparation reads and evaluation scores
    against: the user's files (format coco) or the converted ones (format yolo).
    """
    root: Path
    train_images: Path
    train_annotations: Path
    val_images: Path
    val_annotations: Path
    records: Path
    data_yaml: Path | None = None  # format yolo: the YOLO-seg data.yaml


@dataclass(frozen=True)
class YoloLayout:
    """What a YOLO-seg data.yaml says: the dataset root, one image folder per split, classes."""
    root: Path
    splits: dict[str, Path]
    names: list[str]
    category_ids: list[int]


def converted_annotations(records: Path, split: str) -> Path:
    """Format yolo: the COCO JSON a split is converted to (and evaluated against)."""
    return Path(records) / "coco_json" / f"instances_{split}.json"


def _names(names, data_yaml: str) -> list[str]:
    """``names`` as a list, or an {index: name} dict whose keys are 0..n-1."""
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise DatasetError(f"class indices must be 0..{len(names) - 1}, got {sorted(names)}",
                               file=data_yaml, field="names")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise DatasetError("'names' must be a non-empty list or an {index: name} mapping",
                           file=data_yaml, field="names")
    return [str(n) for n in names]


def _split_folder(content: dict, split: str, root: Path, data_yaml: str) -> Path | None:
    folder = content.get(split)
    if folder is None:
        return None
    if not isinstance(folder, str) or folder.endswith(".txt"):
        raise DatasetError("give one images folder per split (lists and .txt image lists are "
                           "not supported)", file=data_yaml, field=split)
    return Path(folder) if Path(folder).is_absolute() else root / folder


def read_yolo_layout(data_yaml: str | Path, content: dict | None = None) -> YoloLayout:
    """Read a YOLO-seg data.yaml (``path`` relative to the YAML's folder when relative).

    Args:
        data_yaml: the file.
        content: its parsed mapping, when the caller has read it already.

    Raises:
        DatasetError: unreadable file, missing or malformed ``names``, a split that is not
            one folder, ``nc`` or ``category_ids`` that disagree with ``names``.
    """
    import yaml

    data_yaml = str(data_yaml)
    if content is None:
        try:
            with open(data_yaml) as f:
                content = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            raise DatasetError(f"cannot read the YOLO data.yaml ({e})", file=data_yaml) from None
    if not isinstance(content, dict) or "names" not in content:
        raise DatasetError("data.yaml needs 'names' (the class names)", file=data_yaml,
                           field="names")
    names = _names(content["names"], data_yaml)
    if "nc" in content and content["nc"] != len(names):
        raise DatasetError(f"nc is {content['nc']} but names lists {len(names)} classes",
                           file=data_yaml, field="nc")
    root = (Path(data_yaml).resolve().parent / str(content.get("path") or "")).resolve()
    splits = {s: f for s in ("train", "val", "test")
              if (f := _split_folder(content, s, root, data_yaml)) is not None}
    ids = content.get("category_ids") or list(range(1, len(names) + 1))
    if len(ids) != len(names):
        raise DatasetError("category_ids must have one id per name", file=data_yaml,
                           field="category_ids")
    return YoloLayout(root, splits, names, [int(i) for i in ids])


def is_ultralytics_yaml(content: dict) -> bool:
    """Whether a dataset YAML's mapping is an Ultralytics data.yaml (by its keys)."""
    return any(key in content for key in ULTRALYTICS_KEYS)


def ultralytics_data_section(data_yaml: str | Path, content: dict) -> dict:
    """An Ultralytics data.yaml as the keys of our data section.

    ``format: yolo``, ``data_yaml`` (absolute) and ``root`` (the YAML's ``path``); keys of our
    data section in the same file (``max_instances``...) are kept, other keys Ultralytics
    knows (``nc``, ``download``...) are left out.

    Raises:
        DatasetError: what ``read_yolo_layout`` raises, or no ``train`` or ``val`` folder.
    """
    layout = read_yolo_layout(data_yaml, content)
    for split in ("train", "val"):
        if split not in layout.splits:
            raise DatasetError(f"needs '{split}': the {split} images folder (relative to "
                               f"'path'; labels in the sibling labels/ folder)",
                               file=str(data_yaml), field=split)
    ours = {f.name for f in dataclasses.fields(DataConfig)}
    section = {k: v for k, v in content.items() if k in ours}
    section.update(format="yolo", data_yaml=str(Path(data_yaml).resolve()),
                   root=str(layout.root))
    return section


def _default_folder(data: DataConfig) -> str:
    """datasets/<name>; for shapes the folder names its parameters, so a differently sized
    shapes set is written beside an existing one instead of silently reusing it."""
    if data.name != "shapes":
        return data.name
    objects = f"-{data.shapes_objects}objects" if data.shapes_objects else ""
    return (f"shapes-{data.shapes_train}-{data.shapes_val}-{data.shapes_min_size}-"
            f"{data.shapes_max_size}px-{data.shapes_num_classes}c{objects}-seed{data.shapes_seed}")


def _yolo_paths(data: DataConfig, root: Path, records: Path) -> DatasetPaths:
    if not data.data_yaml:
        raise ConfigError("data.format is yolo: set data.data_yaml to the dataset's data.yaml "
                          "(or pass the data.yaml itself as data=path/to/data.yaml)")
    data_yaml = Path(data.data_yaml) if Path(data.data_yaml).is_absolute() else root / data.data_yaml
    layout = read_yolo_layout(data_yaml)
    for split in ("train", "val"):
        if split not in layout.splits:
            raise DatasetError(f"no '{split}' images folder", file=str(data_yaml), field=split)
    return DatasetPaths(root, layout.splits["train"], converted_annotations(records, "train"),
                        layout.splits["val"], converted_annotations(records, "val"), records,
                        data_yaml)


def dataset_paths(data: DataConfig) -> DatasetPaths:
    """Absolute paths of a dataset's files; relative ones are under ``data.root``.

    Raises:
        ConfigError: format yolo without ``data.data_yaml``.
        DatasetError: format yolo with an unreadable data.yaml or one without train or val.
    """
    root = Path(data.root or Path("datasets") / _default_folder(data)).expanduser().resolve()

    def under(path: str) -> Path:
        return Path(path) if Path(path).is_absolute() else root / path

    records = under(data.records or "records")
    if data.format == "yolo":
        return _yolo_paths(data, root, records)
    return DatasetPaths(root, under(data.train_images), under(data.train_annotations),
                        under(data.val_images), under(data.val_annotations), records)
