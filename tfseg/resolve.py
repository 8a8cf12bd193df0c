"""One resolver from what a user passes as ``weights=`` to a loaded model and what it is.

    resolve_model(path, model_name=None, image_size=None) -> LoadedModel

Accepted paths:
    run folder              runs/train/train: its weights/best.weights.h5, else last
    .weights.h5             with model.json (or <stem>.json) beside it (tfseg.model.artifact)
    .keras                  a saved Keras model (classes from <stem>.json when present)
    .pt .pth .safetensors .npz   an Ultralytics checkpoint, converted in memory
    .tflite                 an end-to-end export (metadata inside the file)
    SavedModel folder       <name>/<version> of an export (metadata in assets.extra)
    export folder           runs/export/<name>: its float32 end-to-end .tflite, else its SavedModel

Every failure is a WeightsError whose message names the path and what is missing. Every
command (predict, export, val), the demo and ``tfseg.load`` load models through here, and
nowhere else. Exports are opened through tfseg.export.backends (imported when one is met),
which is why this module sits beside the commands, above the export stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tfseg.config.load import parse_overrides, resolve_key
from tfseg.errors import ExportError, WeightsError
from tfseg.model.artifact import INFO_FILE, ModelInfo, info_path, load_weights_file, read_model_info
from tfseg.runs import WEIGHTS_DIR, run_weights

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".npz")
EXPORT_METADATA = "metadata.json"


@dataclass
class LoadedModel:
    """A model ready to run, and what it is.

    Args:
        model: a Keras YoloSeg, or an export's backend (``image_size``, ``detect``).
        info: architecture, image size, class names, category ids, recipe.
        path: the file (or SavedModel folder) it was loaded from.
        kind: keras, ultralytics, tflite or savedmodel.
    """

    model: object
    info: ModelInfo
    path: Path
    kind: str

    @property
    def is_export(self) -> bool:
        return self.kind in ("tflite", "savedmodel")

    @property
    def run_name(self) -> str:
        """A name for outputs made from it: the run folder's name, else the file's stem."""
        if self.path.parent.name == WEIGHTS_DIR:
            return self.path.parent.parent.name
        return self.path.name.split(".")[0]


def explicit_model_options(overrides: list[str], section: str) -> dict:
    """The model options a user typed (``model=``, ``imgsz=``), as resolve_model arguments."""
    typed = {resolve_key(k, section): v for k, v in parse_overrides(overrides) if k != "cfg"}
    return {"model_name": typed.get("model.name"),
            "image_size": int(typed["model.image_size"]) if "model.image_size" in typed else None}


def resolve_model(path: str | Path, model_name: str | None = None,
                  image_size: int | None = None) -> LoadedModel:
    """Load what ``path`` points to (see the module docstring for the accepted paths).

    Args:
        path: what the user gave as ``weights=``.
        model_name: the architecture the user asked for; None: the artifact's own. A
            different one than the artifact's is an error.
        image_size: S to build a Keras model at (weights do not depend on it); None: the
            artifact's. Exports and .keras files keep their own size.

    Raises:
        WeightsError: nothing loadable at ``path``, or it does not fit (the message says why).
    """
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"weights not found: {path}")
    if path.is_dir():
        path = _file_in_folder(path)
    if path.suffix == ".tflite" or (path / "saved_model.pb").is_file():
        return _load_export(path)
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        from tfseg.model.import_ultralytics import load_ultralytics

        model, info = load_ultralytics(path, model_name, image_size)
        return LoadedModel(model, info, path, "ultralytics")
    if path.suffix == ".keras":
        return _load_keras_file(path)
    if not path.name.endswith(".weights.h5"):
        raise WeightsError(f"{path}: not a model tfseg reads (a run folder, .weights.h5, .keras, "
                           f"{', '.join(CHECKPOINT_SUFFIXES)}, .tflite or an export folder)")
    info = read_model_info(path)
    if info is None:
        raise WeightsError(f"{path}: no {info_path(path).name} beside it saying which model and "
                           f"classes these weights are; copy the run's {WEIGHTS_DIR}/{INFO_FILE} "
                           "next to the weights file")
    if model_name and model_name != info.model_name:
        raise WeightsError(f"{path}: the weights are {info.model_name} ({info_path(path)}), "
                           f"not {model_name}")
    size = image_size or info.image_size
    model = load_weights_file(path, info.model_name, info.num_classes, size)
    info.image_size = size
    return LoadedModel(model, info, path, "keras")


def _file_in_folder(folder: Path) -> Path:
    """The model file a folder offers: a run's weights, an export's file, or a SavedModel."""
    if (folder / "saved_model.pb").is_file():
        return folder
    if (folder / WEIGHTS_DIR).is_dir():
        found = run_weights(folder)
        if found is None:
            raise WeightsError(f"run folder {folder} holds no weights ({WEIGHTS_DIR}/"
                               "best.weights.h5 or last.weights.h5): train first")
        return found
    if (folder / EXPORT_METADATA).is_file():
        end_to_end = sorted(p for p in folder.glob("*.tflite") if "_raw_" not in p.name)
        preferred = [p for p in end_to_end if p.name.endswith("_float32.tflite")]
        if preferred or end_to_end:
            return (preferred or end_to_end)[0]
        savedmodels = sorted(folder.glob("*/*/saved_model.pb"))
        if savedmodels:
            return savedmodels[0].parent
    raise WeightsError(f"{folder}: not a run folder (no {WEIGHTS_DIR}/), an export folder (no "
                       f"{EXPORT_METADATA} with a .tflite or SavedModel) or a SavedModel")


def _load_export(path: Path) -> LoadedModel:
    from tfseg.export.backends import load_backend

    try:
        backend = load_backend(path)
    except ExportError as error:
        raise WeightsError(str(error)) from None
    names = getattr(backend, "class_names", None)
    if not names:
        raise WeightsError(f"{path}: an export without its metadata (class names); export it "
                           "again with tfseg export")
    metadata = getattr(backend, "metadata", {}) or {}
    info = ModelInfo(str(metadata.get("model_name", "")), backend.image_size, list(names),
                     list(metadata.get("category_ids") or range(len(names))),
                     source=f"export {path}")
    return LoadedModel(backend, info, path, "tflite" if path.suffix == ".tflite" else "savedmodel")


def _load_keras_file(path: Path) -> LoadedModel:
    import keras

    import tfseg.model.yolo_seg  # noqa: F401  (registers tfseg's layers for deserialization)

    try:
        model = keras.saving.load_model(str(path))
    except (ValueError, TypeError, OSError) as error:
        raise WeightsError(f"{path}: not a loadable .keras model ({error})") from None
    size = int(model.inputs[0].shape[1])
    info = read_model_info(path)
    if info is None:
        count = int(getattr(model, "num_classes", 0))
        info = ModelInfo(getattr(model, "model_name", ""), size,
                         [f"class{i}" for i in range(count)], list(range(count)),
                         source=str(path))
    info.image_size = size
    return LoadedModel(model, info, path, "keras")
