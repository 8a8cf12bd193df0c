""".tflite files as written on disk: the model flatbuffer, then an optional zip of associated files.

The standard TFLite metadata (export/standard_metadata.py) packs its associated files
(``labels.txt``) as a zip archive appended after the flatbuffer; MediaPipe Tasks and the
TFLite Task Library open that zip by name. A flatbuffer reader stops at the end of the
model, so every rewrite of the model must put the archive back, or the file keeps its
metadata but loses the files it names. :func:`rewrite` is the one way this package rewrites
a .tflite: unpack, edit, pack, append the archive again.

    rewrite(data, edit, files)   -> new bytes, appended files kept (``files`` added)
    rewrite_file(path, edit)     -> the same, in place and atomically
    write_atomically(path, data) -> through a temporary file and a rename
    append_files(data, files)    -> data + a zip of ``files`` (stored)
    appended_files(data)         -> {name: bytes} of the appended zip ({} if none)
    flatbuffer_part(data)        -> data without the appended zip
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path
from typing import Callable

import flatbuffers
from tensorflow.lite.python import schema_py_generated as schema

TFLITE_IDENTIFIER = b"TFL3"


def append_files(model_bytes: bytes, files: dict[str, str | bytes]) -> bytes:
    """The model followed by a zip archive (stored, not compressed) of ``files``, as the TFLite
    metadata writer packs associated files."""
    stream = io.BytesIO()
    stream.write(model_bytes)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return stream.getvalue()


def appended_files(data: bytes) -> dict[str, bytes]:
    """The files of the zip appended to a .tflite ({} if none)."""
    stream = io.BytesIO(data)
    if not zipfile.is_zipfile(stream):
        return {}
    with zipfile.ZipFile(stream) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def flatbuffer_part(data: bytes) -> bytes:
    """The model flatbuffer alone: ``data`` up to the first member of its appended zip."""
    stream = io.BytesIO(data)
    if not zipfile.is_zipfile(stream):
        return data
    with zipfile.ZipFile(stream) as archive:
        starts = [info.header_offset for info in archive.infolist()]
    return data[:min(starts)] if starts else data


def rewrite(data: bytes, edit: Callable[[schema.ModelT], None],
            files: dict[str, str | bytes] | None = None) -> bytes:
    """The .tflite ``data`` with its model edited by ``edit`` and its appended files kept.

    Args:
        data: a .tflite as on disk (flatbuffer, then possibly the associated-files zip).
        edit: changes the unpacked model (schema.ModelT) in place.
        files: associated files to add, or to replace those of the same name.

    Returns:
        The packed model, followed by the associated files if there are any.
    """
    packed = {**appended_files(data), **(files or {})}
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer_part(data)), 0)
    edit(model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    rewritten = bytes(builder.Output())
    return append_files(rewritten, packed) if packed else rewritten


def write_atomically(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


def rewrite_file(path: str | os.PathLike, edit: Callable[[schema.ModelT], None]) -> Path:
    """:func:`rewrite` a .tflite file in place (replaced atomically)."""
    path = Path(path)
    return write_atomically(path, rewrite(path.read_bytes(), edit))
