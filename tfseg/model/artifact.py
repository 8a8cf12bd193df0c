"""The model artifact: Keras weights plus a small JSON that says what they are.

A ``.weights.h5`` file holds tensors only. Beside it, ``model.json`` (or ``<stem>.json`` for
one file, e.g. ``yolov8n-seg.json`` next to ``yolov8n-seg.weights.h5``) holds what inference
needs to rebuild and use the network without a dataset:

    {"format": "tfseg-model/1",
     "model_name": "yolov8-seg-n",          architecture (family and scale)
     "image_size": 640,                     S the network was trained or imported at
     "num_classes": 3,
     "class_names": ["circle", ...],        class index order
     "category_ids": [1, 3, 7],             class index -> source dataset category id
     "source": "tfseg train runs/train/train",   who wrote the weights
     "recipe": {...}}                       the RunConfig it came from (or {} for imports)

``tfseg train`` writes ``weights/model.json`` when a run starts (it describes both
``best.weights.h5`` and ``last.weights.h5``); ``tfseg import-weights`` writes
``<stem>.json``. Loading (:func:`load_weights_file`) is the one place a network is built
from a weights file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tfseg.errors import WeightsError

INFO_FILE = "model.json"
FORMAT = "tfseg-model/1"
WEIGHTS_SUFFIX = ".weights.h5"


@dataclass
class ModelInfo:
    """What a weights file is: architecture, input size, classes, provenance.

    Args:
        model_name: ``yolov8-seg-{n..x}`` or ``yolo11-seg-{n..x}``.
        image_size: S.
        class_names: C names, class index order.
        category_ids: C source category ids (class index -> dataset category id).
        source: a short line saying where the weights came from.
        recipe: the config the weights were trained with (nested dicts), or {}.
    """

    model_name: str
    image_size: int
    class_names: list[str]
    category_ids: list[int]
    source: str = ""
    recipe: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def to_json(self) -> dict:
        """The JSON content (``format`` and ``num_classes`` added for readers without tfseg)."""
        return {"format": FORMAT, "model_name": self.model_name, "image_size": self.image_size,
                "num_classes": self.num_classes, "class_names": list(self.class_names),
                "category_ids": [int(i) for i in self.category_ids], "source": self.source,
                "recipe": self.recipe}


def default_category_ids(num_classes: int) -> list[int]:
    return list(range(num_classes))


def info_path(weights: str | Path) -> Path:
    """Where the metadata of ``weights`` is: ``<stem>.json`` if present, else ``model.json``."""
    weights = Path(weights)
    stem = weights.name[: -len(WEIGHTS_SUFFIX)] if weights.name.endswith(WEIGHTS_SUFFIX) \
        else weights.stem
    own = weights.with_name(f"{stem}.json")
    return own if own.is_file() else weights.with_name(INFO_FILE)


def write_model_info(path: str | Path, info: ModelInfo) -> Path:
    """Write ``info`` as JSON (atomically: a reader never sees half a file).

    Args:
        path: the JSON file, or a folder (then ``<folder>/model.json``).
        info: what to write.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix != ".json":
        path = path / INFO_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(info.to_json(), indent=2) + "\n")
    tmp.replace(path)
    return path


def read_model_info(weights: str | Path) -> ModelInfo | None:
    """The metadata beside a weights file, or None when there is none.

    Raises:
        WeightsError: the JSON exists but is unreadable or misses a field (named).
    """
    path = info_path(weights)
    if not path.is_file():
        return None
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise WeightsError(f"{path}: not readable JSON ({error})") from None
    for key, kind in (("model_name", str), ("image_size", int), ("class_names", list)):
        if not isinstance(content.get(key), kind):
            raise WeightsError(f"{path}: field '{key}' missing or not a {kind.__name__}")
    names = [str(n) for n in content["class_names"]]
    ids = content.get("category_ids") or default_category_ids(len(names))
    if len(ids) != len(names):
        raise WeightsError(f"{path}: {len(ids)} category_ids for {len(names)} class_names")
    return ModelInfo(content["model_name"], int(content["image_size"]), names,
                     [int(i) for i in ids], str(content.get("source", "")),
                     dict(content.get("recipe") or {}))


def load_weights_file(path: str | Path, model_name: str, num_classes: int, image_size: int):
    """Build ``model_name`` with ``num_classes`` at ``image_size`` and load ``path`` into it.

    Weights do not depend on the input size, so ``image_size`` may differ from the one the
    weights were trained at.

    Args:
        path: a ``.weights.h5`` file.
        model_name, num_classes, image_size: the network to build.

    Returns:
        The YoloSeg with the weights loaded.

    Raises:
        WeightsError: the file is missing or its tensors do not fit that network.
    """
    from tfseg.model.yolo_seg import build_model

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    model = build_model(model_name, num_classes, image_size)
    try:
        model.load_weights(str(path))
    except (ValueError, KeyError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"weights {path} do not fit {model_name} with {num_classes} classes: "
                           f"{first}") from None
    return model


def write_training_info(weights_dir: str | Path, cfg, class_names: list[str],
                        category_ids: list[int]) -> Path:
    """``<weights_dir>/model.json`` for a training run (what ``tfseg train`` calls at start).

    Args:
        weights_dir: the run's ``weights`` folder.
        cfg: the run's RunConfig (its model section and the whole config as the recipe).
        class_names, category_ids: the training dataset's classes, class index order.
    """
    import dataclasses

    recipe = dataclasses.asdict(cfg)
    info = ModelInfo(cfg.model.name, cfg.model.image_size, list(class_names),
                     [int(i) for i in category_ids],
                     source=f"tfseg train {Path(weights_dir).parent}", recipe=recipe)
    return write_model_info(weights_dir, info)
