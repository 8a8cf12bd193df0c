"""Open an export as a predict backend: ``load_backend(path)`` for a .tflite or a SavedModel.

The backends themselves live in tfseg.predict.backends (SavedModelBackend, TFLiteBackend);
this adds what only the export stage knows: where the metadata is and the class count.
"""

from __future__ import annotations

import json
from pathlib import Path

from tfseg.errors import ExportError
from tfseg.export.metadata import read_tflite_metadata
from tfseg.predict.backends import SavedModelBackend, TFLiteBackend


def _savedmodel_metadata(path: Path) -> dict | None:
    for candidate in (path / "assets.extra" / "metadata.json",
                      path.parent.parent / "metadata.json"):
        if candidate.is_file():
            return json.loads(candidate.read_text())
    return None


def load_backend(path: str | Path, num_threads: int = 2):
    """A predict backend for an exported file, with ``num_classes``, ``class_names`` and
    ``metadata`` (the export's metadata dict, or None).

    Args:
        path: an end-to-end .tflite file, or a SavedModel version folder.
        num_threads: TFLite CPU threads.

    Raises:
        ExportError: not a .tflite or SavedModel, or a raw (network-only) .tflite.
    """
    path = Path(path)
    if path.suffix == ".tflite":
        metadata = read_tflite_metadata(path)
        if metadata and metadata.get("tflite_file", "").startswith("raw_"):
            raise ExportError(f"{path} is a raw (network-only) export: predict needs the "
                              "end-to-end file (signature 'detect')")
        if metadata and metadata.get("masks", {}).get("standard_outputs"):
            raise ExportError(f"{path} has the four object-detector outputs (exported with "
                              "export.standard_outputs=true) and no masks: predict needs a "
                              "file exported without it")
        backend = TFLiteBackend(path, num_threads=num_threads)
    elif (path / "saved_model.pb").is_file():
        metadata = _savedmodel_metadata(path)
        backend = SavedModelBackend(path)
    else:
        raise ExportError(f"{path} is neither a .tflite file nor a SavedModel folder")
    backend.metadata = metadata
    if metadata:
        backend.num_classes = int(metadata["num_classes"])
        backend.class_names = list(metadata["class_names"])
    return backend
