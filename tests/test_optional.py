"""Optional packages: a missing one is one line naming the extra, from the real code paths.

The CLI tests run ``tfseg`` in a subprocess whose import system has the package removed
(``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed), so
they hold whether or not this environment has the package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tfseg.errors import MissingPackageError, TfsegError
from tfseg.optional import require


def test_require_returns_the_module():
    import json as expected

    assert require("json", extra="unused", purpose="reading JSON") is expected
    assert require("os.path", extra="unused", purpose="paths") is os.path


def test_a_missing_package_names_the_extra_and_the_purpose():
    with pytest.raises(MissingPackageError) as caught:
        require("tfseg_absent_package.sub", extra="absent", purpose="doing the absent thing")
    message = str(caught.value)
    assert message == ('doing the absent thing needs the tfseg_absent_package package, which is '
                       'not installed: pip install -e ".[absent]"')
    assert isinstance(caught.value, TfsegError)  # what the CLI prints as one line


def test_a_broken_install_is_not_reported_as_missing(tmp_path, monkeypatch):
    """The package is there but one of its own imports fails: that traceback is the clue."""
    (tmp_path / "half_installed").mkdir()
    (tmp_path / "half_installed" / "__init__.py").write_text("import tfseg_absent_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as caught:
        require("half_installed", extra="half", purpose="using it")
    assert caught.value.name == "tfseg_absent_dependency"
    with pytest.raises(ModuleNotFoundError):  # installed, but without that module: too old
        require("json.tfseg_absent_module", extra="json", purpose="using it")


def _tfseg_without(blocked: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """``tfseg args`` (tfseg.cli.main) in a process where the ``blocked`` packages cannot import."""
    script = textwrap.dedent(f"""
        import sys
        for name in {blocked!r}:
            sys.modules[name] = None  # import name -> ModuleNotFoundError, as if not installed
        from tfseg.cli import main
        raise SystemExit(main({args!r}))
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def _assert_one_line_naming(result: subprocess.CompletedProcess, verb: str, extra: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tfseg {verb}: error: ")
    assert f'pip install -e ".[{extra}]"' in lines[0]
    return lines[0]


@pytest.mark.parametrize("suffix, blocked, extra", [
    (".pt", ["torch"], "torch"),
    (".safetensors", ["safetensors"], "safetensors"),
])
def test_importing_a_checkpoint_without_its_package(tmp_path, suffix, blocked, extra):
    (tmp_path / f"yolov8n-seg{suffix}").write_bytes(b"not read: the package is missing")
    result = _tfseg_without(blocked, ["import-weights", f"yolov8n-seg{suffix}",
                                      "model=yolov8-seg-n"], tmp_path)
    line = _assert_one_line_naming(result, "import-weights", extra)
    assert f"yolov8n-seg{suffix}" in line


def test_preparing_on_beam_without_apache_beam(tmp_path):
    """The records already there stay where they are: the check comes before anything moves."""
    root = tmp_path / "mine"
    (root / "img").mkdir(parents=True)
    for split in ("train", "val"):
        (root / f"{split}.json").write_text(json.dumps(
            {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}))
    (tmp_path / "mine.yaml").write_text(
        f"name: mine\nroot: {root}\ntrain_images: img\ntrain_annotations: train.json\n"
        "val_images: img\nval_annotations: val.json\n")
    records = root / "records" / "coco_segmentation" / "1.0.0"
    records.mkdir(parents=True)
    (records / "dataset_info.json").write_text("{}")
    result = _tfseg_without(["apache_beam"], ["data", "prepare", "data=mine.yaml",
                                              "data.beam_options=--runner=DirectRunner"],
                            tmp_path)
    line = _assert_one_line_naming(result, "data", "beam")
    assert "Apache Beam" in line
    assert (records / "dataset_info.json").is_file()


@pytest.mark.parametrize("runs_a_tflite", ["predict", "export"])
def test_a_broken_install_without_litert_names_the_extra(tmp_path, monkeypatch, runs_a_tflite):
    """ai-edge-litert is a base dependency; an install that lost it still gets one line (the
    CLI prints a TfsegError as one), not a traceback, from predict's backend and from the
    parity check every export runs."""
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, name, None)  # import name -> ImportError
    path = tmp_path / "model_float32.tflite"
    path.write_bytes(b"not read: the runtime is missing")
    with pytest.raises(MissingPackageError) as caught:
        if runs_a_tflite == "predict":
            from tfseg.predict.backends import TFLiteBackend

            TFLiteBackend(path)
        else:
            from tfseg.export.certificate import _boxes_only

            _boxes_only("tflite_float32", path)
    assert 'needs the ai_edge_litert package' in str(caught.value)
    assert 'pip install -e ".[litert]"' in str(caught.value)
