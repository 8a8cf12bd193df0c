"""Run the installed ``tfseg`` command in a folder, as a user types it (the CLI journey tests)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# This venv's console script; ``python -m tfseg`` where the package is not installed as one.
_SCRIPT = shutil.which("tfseg", path=str(Path(sys.executable).parent)) or shutil.which("tfseg")
TFSEG = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "tfseg"]


# TensorFlow's C++ log lines: "I0000 00:00:1796... 123 port.cc:113] ..." (absl) or
# "2026-12-06 21:00:00.000: I tensorflow/core/...] ..." (older TensorFlow logging).
CPP_LOG_LINE = re.compile(r"^([IWEF]\d{4} \d\d:\d\d:\d+\.\d+ |\d{4}-\d\d-\d\d [\d:.]+: [IWEF] )")
PYTHON_WARNING = re.compile(r"^(?P<file>\S+\.py):\d+: (?P<kind>\w*Warning): ")


def our_folders() -> tuple[str, ...]:
    """tfseg's own source folders: a warning raised from one of their files is ours to fix."""
    import tfseg
    import tfseg.export

    return tuple(str(Path(m.__file__).parent) for m in (tfseg, tfseg.export))


def unwanted_lines(output: str) -> list[str]:
    """The console lines a user should not meet: deprecations, warnings from tfseg's files,
    Python warnings, TensorFlow's C++ start-up lines, and its warning that an inference file
    has no gradient functions."""
    ours, found = our_folders(), []
    for line in output.splitlines():
        warning = PYTHON_WARNING.match(line)
        if ("deprecat" in line.lower() or CPP_LOG_LINE.match(line)
                or "absl::InitializeLog" in line
                or "unsaved custom gradients" in line  # TensorFlow loading an inference file
                or (warning and (warning["file"].startswith(ours)
                                 or warning["kind"] in ("DeprecationWarning", "UserWarning",
                                                        "FutureWarning")))):
            found.append(line)
    return found


def assert_clean_console(result: subprocess.CompletedProcess) -> None:
    """A command run with ``user_console=True`` printed nothing a user should not meet."""
    assert unwanted_lines(result.stdout + result.stderr) == [], result.args


def user_console_env() -> dict[str, str]:
    """The environment of a user who set no logging variable: tfseg's defaults decide."""
    return {k: v for k, v in os.environ.items()
            if k not in ("TF_CPP_MIN_LOG_LEVEL", "TFSEG_VERBOSE")}


def run_tfseg(cwd: Path, *args: str, expect: int | None = 0, timeout: float = 900,
              user_console: bool = False) -> subprocess.CompletedProcess:
    """Run ``tfseg args...`` in ``cwd`` with TensorFlow's C++ logging quiet.

    Args:
        cwd: the folder the user types the command in.
        args: the command line after ``tfseg``.
        expect: the exit code to assert (the output's tail is the failure message); None
            leaves the check to the caller.
        timeout: seconds before the run counts as hung.
        user_console: leave TensorFlow's logging to tfseg's defaults, as for a user who
            set nothing (what tests/cli/test_console.py checks).
    """
    env = user_console_env() if user_console else {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([*TFSEG, *args], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=timeout)
    if expect is not None:
        assert result.returncode == expect, (f"tfseg {' '.join(args)} -> {result.returncode}\n"
                                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
