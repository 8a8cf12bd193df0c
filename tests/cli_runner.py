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


def run_tfseg(cwd: Path, *args: str, expect: int | None = 0,
              timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``tfseg args...`` in ``cwd`` with TensorFlow's C++ logging quiet.

    Args:
        cwd: the folder the user types the command in.
        args: the command line after ``tfseg``.
        expect: the exit code to assert (the output's tail is the failure message); None
            leaves the check to the caller.
        timeout: seconds before the run counts as hung.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([*TFSEG, *args], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=timeout)
    if expect is not None:
        assert result.returncode == expect, (f"tfseg {' '.join(args)} -> {result.returncode}\n"
                                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result
