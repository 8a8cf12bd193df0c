"""Test files that several test processes need, made once per test run.

pytest-xdist runs each worker in its own process, so a session fixture is made once per
worker. A fixture whose product is files on disk (an export, a trained run) can be made
once per run instead: the first process to ask makes it in the run's shared temporary
folder while it holds a lock; the others wait for the lock and read the same files. The
files are read-only by convention: a test that changes one copies it first.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path


def shared_folder(tmp_path_factory) -> Path:
    """The temporary folder every process of this run sees (xdist: the workers' parent)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(tmp_path_factory, name: str, make: Callable[[Path], dict]) -> tuple[Path, dict]:
    """``(folder, record)``: ``make(folder)`` run by the first process of the run to ask.

    Args:
        tmp_path_factory: pytest's fixture of the same name.
        name: the product's name, unique in the run (its folder's name).
        make: writes the product into the empty folder it is given and returns a record
            of it (JSON-serialisable: strings, numbers, lists, dicts), which every process
            gets back.

    A ``make`` that raised leaves no record, so the next process to ask tries again and
    fails in its own test with its own traceback.
    """
    folder = shared_folder(tmp_path_factory) / f"made-once-{name}"
    record_file = folder / "record.json"
    with open(folder.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not record_file.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            record = make(folder)
            partial = record_file.with_suffix(".partial")
            partial.write_text(json.dumps(record))
            partial.replace(record_file)
        return folder, json.loads(record_file.read_text())
