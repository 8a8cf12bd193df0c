"""Checkpoint files: .safetensors without torch; Ultralytics' pickled training checkpoints read
without Ultralytics and without running pickled code (torch needed for .pt files)."""

from __future__ import annotations

import subprocess
import sys
import types

import numpy as np
import pytest

from tfseg.errors import WeightsError
from tfseg.model.checkpoint_files import read_checkpoint_file
from tfseg.model.import_ultralytics import load_ultralytics

NAME = "yolov8-seg-n"
NAMES = ["circle", "rectangle", "triangle"]


def test_safetensors_are_read_with_the_safetensors_package_alone(tmp_path, reference):
    pytest.importorskip("safetensors", reason="the optional [safetensors] extra is not installed")
    from safetensors.numpy import save_file

    path = tmp_path / "v8n.safetensors"
    save_file(reference.state(NAME), str(path))
    code = ("import sys; from tfseg.model.checkpoint_files import read_checkpoint_file; "
            f"state = read_checkpoint_file({str(path)!r}).state; "
            "print(len(state), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[-2:] == [str(len(reference.state(NAME))), "False"]


def fake_ultralytics_checkpoint(torch, state: dict, path, names, yaml_file="yolov8n-seg.yaml"):
    """Write what Ultralytics saves: {"model": SegmentationModel object, "ema": None,
    "train_args": {...}}, the model a torch module tree whose classes live in (fake)
    ``ultralytics.*`` modules that are gone again when this returns."""
    modules = {name: types.ModuleType(name) for name in (
        "ultralytics", "ultralytics.nn", "ultralytics.nn.tasks", "ultralytics.nn.modules.block")}
    model_class = type("SegmentationModel", (torch.nn.Module,),
                       {"__module__": "ultralytics.nn.tasks"})
    block_class = type("C2f", (torch.nn.Module,), {"__module__": "ultralytics.nn.modules.block"})
    modules["ultralytics.nn.tasks"].SegmentationModel = model_class
    modules["ultralytics.nn.modules.block"].C2f = block_class
    root = model_class()
    for key, value in state.items():
        *parents, leaf = key.split(".")
        node = root
        for part in parents:
            if part not in node._modules:
                node.add_module(part, block_class())
            node = node._modules[part]
        tensor = torch.from_numpy(np.array(value))
        if leaf in ("running_mean", "running_var", "num_batches_tracked"):
            node.register_buffer(leaf, tensor)
        else:
            node.register_parameter(leaf, torch.nn.Parameter(tensor, requires_grad=False))
    root.names = dict(enumerate(names))
    root.yaml = {"yaml_file": yaml_file, "scale": "n", "nc": len(names)}
    sys.modules.update(modules)
    try:
        torch.save({"model": root, "ema": None, "train_args": {"imgsz": 160}, "epoch": -1}, path)
    finally:
        for name in modules:
            sys.modules.pop(name)
    return path


def test_an_ultralytics_training_checkpoint_loads_with_its_names(tmp_path, reference):
    torch = pytest.importorskip("torch", reason="the optional [torch] extra is not installed")
    path = fake_ultralytics_checkpoint(torch, reference.state(NAME), tmp_path / "v8n.pt", NAMES)
    checkpoint = read_checkpoint_file(path)
    assert checkpoint.class_names == NAMES and checkpoint.model_name == NAME
    assert checkpoint.image_size == 160
    assert set(checkpoint.state) == set(reference.state(NAME))
    model, info = load_ultralytics(path)  # architecture and size from the file itself
    assert (info.model_name, info.image_size, info.class_names) == (NAME, 160, NAMES)
    got = np.asarray(model(reference.scene())["prototypes"])[0]
    np.testing.assert_allclose(got, reference.outputs(NAME)["proto"][0].transpose(1, 2, 0),
                               atol=1e-4)
    assert "ultralytics" not in sys.modules


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_pickled_call_is_never_run(tmp_path):
    torch = pytest.importorskip("torch", reason="the optional [torch] extra is not installed")
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(marker)}, path)
    with pytest.raises(WeightsError, match="holds no model tensors"):
        read_checkpoint_file(path)
    assert not marker.exists()


def test_an_unknown_architecture_asks_for_model(tmp_path, reference):
    path = tmp_path / "v8n.npz"
    np.savez(path, **reference.state(NAME))
    with pytest.raises(WeightsError, match="give it as model="):
        load_ultralytics(path)
    model, info = load_ultralytics(path, NAME, 64)
    assert info.class_names == ["class0", "class1", "class2"] and info.image_size == 64


@pytest.mark.slow  # a training
def test_training_starts_from_an_ultralytics_checkpoint_with_another_class_count(tmp_path, reference):
    # Fine-tuning the reference's 3-class state dict (an .npz, no torch needed) into a 2-class
    # model: every tensor the two share comes from the checkpoint, the class outputs stay fresh.
    import numpy as np

    from tfseg.model.yolo_seg import build_model
    from tfseg.train.fit import load_start_weights

    path = tmp_path / "v8n.npz"
    np.savez(path, **reference.state(NAME))
    imported, _ = load_ultralytics(path, NAME, 160)
    model = build_model(NAME, 2, 160)
    fresh = load_start_weights(model, path)
    assert fresh and all("cls" in name or "class" in name or "predict" in name for name in fresh)
    loaded = {v.path: v.numpy() for v in imported.weights}
    same = [v for v in model.weights if v.path not in fresh and v.path in loaded]
    assert len(same) > 0.9 * len(model.weights)
    for variable in same:
        np.testing.assert_array_equal(variable.numpy(), loaded[variable.path])
