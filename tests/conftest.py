"""The suite's order: files with slow tests first, so the workers finish together.

The README runs the suite with ``-n 3 --dist loadfile``: each worker takes whole files from
a queue. pytest-xdist's default queue puts the files with the most tests first, which sends
the few-test files that train or export for minutes to the end, where one worker runs them
alone while the others have finished. Starting with the files that hold slow tests (in their
collection order) and leaving the many short files to fill the gaps keeps them all busy.
"""

from __future__ import annotations


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep the order set below
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: files stay whole
