"""Run directories (``<project>/<verb>/<name>``) and atomic file writes.

A run directory holds everything one command produced: ``config.yaml`` (the config actually
used), logs, ``weights/``, metrics JSON, plots, exports. Names auto-increment (``train``,
``train2``, ...) so nothing is overwritten by accident.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tfseg.config.load import dump_config
from tfseg.config.schema import RunConfig

CONFIG_FILE = "config.yaml"
CLASSES_FILE = "classes.json"  # the dataset's class names and category ids, beside config.yaml
WEIGHTS_DIR = "weights"  # *.weights.h5 and model.json (tfseg.model.artifact)


def new_run_dir(project: str | Path, verb: str, name: str = "") -> Path:
    """Create and return a fresh run directory; never reuses an existing one.

    Args:
        project: the root of all runs (``runs``).
        verb: the command (``train``, ``val``, ``predict``, ``export``).
        name: the wanted name; empty means the verb. ``name``, ``name2``, ``name3``... is
            the first that does not exist yet.
    """
    parent = Path(project) / verb
    parent.mkdir(parents=True, exist_ok=True)
    base = name or verb
    for index in range(1, 100_000):
        candidate = parent / (base if index == 1 else f"{base}{index}")
        try:
            candidate.mkdir()  # atomic: two processes never get the same directory
            return candidate
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory name under {parent}")


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename (no torn files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(payload)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, content: Any) -> Path:
    """Atomic JSON write, indented for people to read."""
    return write_atomic(path, json.dumps(content, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def save_config(run_dir: str | Path, cfg: RunConfig) -> Path:
    """Snapshot the config actually used into the run directory."""
    return write_atomic(Path(run_dir) / CONFIG_FILE, dump_config(cfg))


def run_weights(run_dir: str | Path) -> Path | None:
    """The weights a run directory offers: its best, else its last; None if it has neither."""
    for name in ("best.weights.h5", "last.weights.h5"):
        candidate = Path(run_dir) / WEIGHTS_DIR / name
        if candidate.is_file():
            return candidate
    return None
