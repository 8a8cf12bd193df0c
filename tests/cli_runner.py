"""Run the installed ``tfseg`` command in a folder, as a user types it (the CLI journey tests)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# This venv's console script; ``python -m tfseg`` where the package is not installed as one.
_SCRIPT = shutil.which("tfseg", path=str(Path(sys.executable).parent)) or shutil.which("tfseg")
TFSEG = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "tfseg"]


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
