"""Ultralytics checkpoint files -> numpy state dicts (and class names), without Ultralytics.

Formats (chosen by suffix):
    .npz            a dict of numpy arrays (``np.savez``); what the tests use
    .safetensors    the ``safetensors`` package alone (``pip install -e ".[safetensors]"``)
    .pt / .pth      torch (``pip install -e ".[torch]"``): a plain ``torch.save(state_dict)``,
                    or an Ultralytics training checkpoint (``yolov8n-seg.pt``)

An Ultralytics checkpoint pickles its model *object* (``ultralytics.nn.tasks.SegmentationModel``
and its layers). tfseg reads it without importing or running Ultralytics code: an unpickler
that builds torch tensors (the same rebuild functions torch's ``weights_only`` load allows)
and turns every other class the pickle names into an inert placeholder that only stores the
attributes it is given. The state dict is then collected from the placeholders' torch-module
attributes (``_parameters``, ``_buffers``, ``_modules``), and the class names and architecture
from the model's ``names`` and ``yaml`` attributes.
"""

from __future__ import annotations

import pickle
import re
import types
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tfseg.errors import WeightsError
from tfseg.optional import require

# The 80 COCO class names, class index order, as the official COCO-trained checkpoints use.
COCO_CLASS_NAMES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich",
    "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote",
    "keyboard", "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book",
    "clock", "vase", "scissors", "teddy bear", "hair drier", "toothbrush")


@dataclass
class Checkpoint:
    """What a checkpoint file holds.

    Args:
        state: ``{name: np.ndarray}``, reference names (with or without ``model.``).
        class_names: names in class index order, when the file stores them.
        model_name: ``yolov8-seg-n`` ..., when the file says which architecture it is.
        image_size: the training input size, when the file stores it.
    """

    state: dict
    class_names: list[str] | None = None
    model_name: str | None = None
    image_size: int | None = None


def read_checkpoint_file(path: str | Path) -> Checkpoint:
    """Read a checkpoint file (format by suffix, see the module docstring).

    Raises:
        WeightsError: missing, unreadable or truncated file, unknown suffix, or the package
            the format needs is not installed (the message says what to install).
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path}: no such file")
    readers = {".npz": _read_npz, ".safetensors": _read_safetensors, ".pt": _read_torch,
               ".pth": _read_torch}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise WeightsError(f"checkpoint {path}: unknown format '{path.suffix}' "
                           f"(expected one of {', '.join(readers)})")
    return reader(path)


def _read_npz(path: Path) -> Checkpoint:
    try:
        with np.load(path, allow_pickle=False) as data:
            return Checkpoint({name: data[name] for name in data.files})
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise WeightsError(f"checkpoint {path}: unreadable or truncated .npz ({error})") from error


def _read_safetensors(path: Path) -> Checkpoint:
    safetensors_numpy = require("safetensors.numpy", extra="safetensors",
                                purpose=f"reading the .safetensors checkpoint {path}")
    try:
        return Checkpoint(dict(safetensors_numpy.load_file(str(path))))
    except Exception as error:  # safetensors raises its own SafetensorError
        raise WeightsError(f"checkpoint {path}: unreadable or truncated .safetensors "
                           f"({error})") from error


def _read_torch(path: Path) -> Checkpoint:
    torch = require("torch", extra="torch", purpose=f"reading the .pt checkpoint {path}")
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # a pickled model object: read it with placeholders
        return _read_ultralytics_pickle(torch, path)
    except (RuntimeError, EOFError, OSError) as error:
        raise WeightsError(f"checkpoint {path}: unreadable or truncated ({error})") from error
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(hasattr(v, "numpy") for v in loaded.values()):
        raise WeightsError(f"checkpoint {path}: not a state dict of tensors")
    return Checkpoint({name: _to_numpy(tensor) for name, tensor in loaded.items()})


def _to_numpy(tensor) -> np.ndarray:
    return tensor.detach().float().numpy() if tensor.is_floating_point() else tensor.numpy()


class _Inert:
    """Stands in for a class or function a pickle names: stores state, runs nothing."""

    def __init__(self, *args, **kwargs):
        self.__dict__["_pickled_args"] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __setitem__(self, key, value):
        self.__dict__[key] = value

    def append(self, value):
        self.__dict__.setdefault("_items", []).append(value)


# What is rebuilt for real: containers and torch's tensor rebuild functions (the globals
# torch's own weights_only unpickler allows for tensors). Everything else is an _Inert.
# (Protocol-2 pickles name builtins "__builtin__"; pickle maps the name back itself.)
_REAL = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
         ("__builtin__", "set"), ("__builtin__", "frozenset"),
         ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
         ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Tensor"),
         ("torch._tensor", "_rebuild_from_type_v2"), ("torch.nn.parameter", "Parameter")}


class _PlaceholderUnpickler(pickle.Unpickler):
    _classes: dict = {}

    def find_class(self, module, name):
        if (module, name) in _REAL:
            return super().find_class(module, name)
        key = f"{module}.{name}"
        if key not in self._classes:
            self._classes[key] = type(name, (_Inert,), {"__module__": f"inert:{module}"})
        return self._classes[key]


def _read_ultralytics_pickle(torch, path: Path) -> Checkpoint:
    placeholder_pickle = types.ModuleType("tfseg_placeholder_pickle")
    placeholder_pickle.Unpickler = _PlaceholderUnpickler
    placeholder_pickle.load = pickle.load
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=False,
                            pickle_module=placeholder_pickle)
    except Exception as error:  # any failure here means the file is not what we read
        raise WeightsError(f"checkpoint {path}: unreadable as an Ultralytics checkpoint "
                           f"({type(error).__name__}: {error})") from None
    model = loaded
    if isinstance(loaded, dict):  # Ultralytics keeps {"model", "ema", "train_args", ...}
        model = loaded.get("ema") or loaded.get("model")
    state: dict = {}
    _collect_state(model, "", state)
    if not state:
        raise WeightsError(f"checkpoint {path}: holds no model tensors")
    attrs = vars(model) if isinstance(model, _Inert) else {}
    args = loaded.get("train_args") if isinstance(loaded, dict) else None
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    return Checkpoint({k: _to_numpy(v) for k, v in state.items()}, _names(attrs.get("names")),
                      _model_name(attrs.get("yaml")), imgsz if isinstance(imgsz, int) else None)


def _collect_state(module, prefix: str, out: dict) -> None:
    """A torch module's state dict, from the attributes its pickle restored."""
    attrs = vars(module) if isinstance(module, _Inert) else {}
    for name, tensor in (attrs.get("_parameters") or {}).items():
        if tensor is not None:
            out[prefix + name] = tensor
    skipped = attrs.get("_non_persistent_buffers_set") or set()
    for name, tensor in (attrs.get("_buffers") or {}).items():
        if tensor is not None and name not in skipped:
            out[prefix + name] = tensor
    for name, child in (attrs.get("_modules") or {}).items():
        if child is not None:
            _collect_state(child, f"{prefix}{name}.", out)


def _names(names) -> list[str] | None:
    if isinstance(names, dict) and sorted(names) == list(range(len(names))):
        return [str(names[i]) for i in range(len(names))]
    if isinstance(names, (list, tuple)):
        return [str(n) for n in names]
    return None


def _model_name(yaml) -> str | None:
    """``yolov8-seg-n`` from the model's YAML dict (file name ``yolov8n-seg.yaml``, scale)."""
    if not isinstance(yaml, dict):
        return None
    found = re.search(r"yolo(v8|11|26)([nsmlx]?)-seg", str(yaml.get("yaml_file", "")))
    scale = yaml.get("scale") or (found.group(2) if found else "")
    if not found or scale not in tuple("nsmlx"):
        return None
    return f"yolo{found.group(1)}-seg-{scale}"
