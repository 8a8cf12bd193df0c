"""The errors tfseg raises for bad input. The CLI prints them as one line and exits 2.

Each carries enough context for a user to find the problem: the file, the record
(image id, annotation id, line number) and the field.
"""

from __future__ import annotations


class TfsegError(Exception):
    """Base class of every error caused by user input (configs, files, weights)."""


class ConfigError(TfsegError):
    """A config key, value or path is wrong."""


class DatasetError(TfsegError):
    """A dataset file or record is unusable.

    Args:
        message: what is wrong.
        file: the file the problem is in.
        record: the record inside it (e.g. "annotation id 17", "line 4").
        field: the field of that record (e.g. "segmentation").
    """

    def __init__(self, message: str, file: str | None = None, record: str | None = None,
                 field: str | None = None):
        self.file, self.record, self.field = file, record, field
        where = ", ".join(p for p in (
            f"file {file}" if file else "",
            record or "",
            f"field '{field}'" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)


class WeightsError(TfsegError):
    """A checkpoint does not match the model (missing, extra or mis-shaped tensors)."""


class ExportError(TfsegError):
    """An export cannot be made from what was given."""


class InputError(TfsegError):
    """An input to predict (image, folder, video, camera) cannot be read."""


class MissingPackageError(TfsegError):
    """An optional package a feature needs is not installed (the message names the extra)."""
