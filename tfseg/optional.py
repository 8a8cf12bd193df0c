"""Optional packages: imported by the feature that needs them, or one line naming the extra.

A package that only some features use (torch for ``.pt`` checkpoints, Apache Beam for
preparation on a cluster, ...) lives in an extra of ``pyproject.toml``. Without it the user
gets a :class:`~tfseg.errors.MissingPackageError` saying what needed it and which extra adds
it; the CLI prints that as one line and exits 2. Every such import goes through
:func:`require`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from tfseg.errors import MissingPackageError


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Imports ``module``, or raises MissingPackageError naming the extra that installs it.

    Args:
        module: the import name, a package or a module inside one ("safetensors.numpy").
        extra: the extra of tfseg that installs its package ("torch").
        purpose: what needs it, the subject of the message ("reading a .pt checkpoint").

    Returns:
        The imported module.

    Raises:
        MissingPackageError: the package is not installed. An ImportError raised for another
        name (an installed package whose own dependency is broken, or too old to have the
        module) propagates as it is: its traceback is the clue.

    Example:
        >>> torch = require("torch", extra="torch", purpose="reading a .pt checkpoint")
    """
    package = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        if error.name != package and not (error.name == module and _missing(package)):
            raise
        raise MissingPackageError(f'{purpose} needs the {package} package, which is not '
                                  f'installed: pip install -e ".[{extra}]"') from None


def _missing(package: str) -> bool:
    """Whether ``package`` itself cannot be imported (a module inside it can fail to import
    because the package is absent, or because an installed package lacks that module)."""
    try:
        importlib.import_module(package)
    except ImportError as error:
        return error.name == package
    return False


def litert_interpreter(purpose: str) -> type:
    """LiteRT's ``Interpreter`` class: the TFLite runtime of every .tflite tfseg runs.

    ai-edge-litert is a base dependency, so this only fails on a broken install; the message
    names the ``litert`` extra, which reinstalls it.
    """
    return require("ai_edge_litert.interpreter", extra="litert", purpose=purpose).Interpreter
