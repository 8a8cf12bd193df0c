"""The import direction of tfseg's stages (STYLE.md's table), enforced by walking the AST."""

import ast
import re
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (pyproject allows it): no TOML reader in the stdlib
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]

# package -> the packages of ours it may import
ALLOWED = {
    "errors": set(),
    "contracts": set(),
    "optional": {"errors"},  # imports of optional packages, for any stage that has one
    "config": {"errors"},
    "runs": {"config", "errors"},
    "ops": {"contracts", "errors"},
    "data": {"ops", "config", "contracts", "errors", "runs", "optional"},
    "pipeline": {"data", "ops", "contracts", "errors"},
    "loss": {"ops", "contracts", "errors"},
    "model": {"ops", "contracts", "config", "errors", "loss", "optional"},
    "postprocess": {"ops", "contracts", "errors"},
    "evaluate": {"postprocess", "pipeline", "data", "ops", "contracts", "errors", "runs"},
    "predict": {"postprocess", "model", "ops", "contracts", "errors", "runs", "optional"},
    "train": {"pipeline", "data", "model", "loss", "evaluate", "postprocess", "config", "runs",
              "ops", "contracts", "errors"},
    "export": {"model", "postprocess", "pipeline", "data", "ops", "contracts", "config", "errors",
               "runs", "predict", "evaluate", "optional"},  # evaluate: the certificate's mAP
    # The one model loader (tfseg.resolve): run folders and weights through the model stage,
    # exports through the export stage's backends, so it sits above both (commands, the demo
    # and the Python API call it).
    "resolve": {"model", "runs", "config", "errors", "export"},
    # Tracking follows predict's detections through the frames (host side, numpy/scipy).
    "track": {"predict", "postprocess", "runs", "errors", "optional"},
}
# Front doors: the CLI and the Python API (tfseg/__init__.py, tfseg/api.py) may use anything.
TOP_LEVEL_FREE = {"cli", "commands", "demo", "benchmarks", "api", "__init__", "__main__"}
# What may import the export stage: itself, the front doors, and the loader of exports.
EXPORT_USERS = {"cli", "commands", "demo", "benchmarks", "api", "resolve", "export"}


def _modules():
    for path in sorted((ROOT / "tfseg").rglob("*.py")):
        parts = path.relative_to(ROOT / "tfseg").with_suffix("").parts
        yield path, parts[0]
    for path in sorted((ROOT / "export").rglob("*.py")):
        yield path, "export"


def _imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tfseg" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_import_direction_follows_the_table():
    violations = []
    for path, package in _modules():
        if package in TOP_LEVEL_FREE:
            continue
        assert package in ALLOWED, f"{path}: package '{package}' missing from the import table"
        for imported in _imported_packages(path) - {package}:
            if imported not in ALLOWED[package]:
                violations.append(f"{path.relative_to(ROOT)} imports tfseg.{imported}")
    assert not violations, "\n".join(violations)


def test_only_the_cli_layer_imports_export_and_nothing_imports_the_cli():
    for path, package in _modules():
        imported = _imported_packages(path)
        if package not in EXPORT_USERS:
            assert "export" not in imported, f"{path} imports tfseg.export"
        if package not in {"__main__"}:
            assert "cli" not in imported or package == "cli", f"{path} imports tfseg.cli"


def _declared_packages(text: str, reader=tomllib) -> set[str]:
    """``[tool.setuptools] packages`` of pyproject.toml: with tomllib where there is one,
    else read from the list's quoted names (all this test needs, with no extra dependency)."""
    if reader is not None:
        return set(reader.loads(text)["tool"]["setuptools"]["packages"])
    section = re.search(r"^\[tool\.setuptools\]\s*$(.*?)^\[", text, re.S | re.M).group(1)
    listed = re.search(r"^packages\s*=\s*\[(.*?)\]", section, re.S | re.M).group(1)
    return set(re.findall(r'"([^"]+)"', re.sub(r"#.*", "", listed)))


def test_the_python_3_10_reading_of_pyproject_agrees_with_tomllib():
    text = (ROOT / "pyproject.toml").read_text()
    assert "tfseg.export" in _declared_packages(text, reader=None)
    if tomllib is not None:
        assert _declared_packages(text, reader=None) == _declared_packages(text)


def test_every_package_folder_is_installed():
    declared = _declared_packages((ROOT / "pyproject.toml").read_text())
    folders = {"tfseg." + ".".join(p.parent.relative_to(ROOT / "tfseg").parts)
               for p in (ROOT / "tfseg").rglob("__init__.py") if p.parent != ROOT / "tfseg"}
    assert folders | {"tfseg", "tfseg.export", "tfseg.configs"} == declared


def test_export_stage_imports_as_tfseg_export_from_outside_the_tree(tmp_path):
    code = "import tfseg.export, tfseg.configs, pathlib; print(pathlib.Path(tfseg.configs.__file__).parent.name)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "configs"
