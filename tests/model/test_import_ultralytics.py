"""Weight import: files on disk -> .weights.h5 with reference outputs; every bad checkpoint
raises a WeightsError naming the tensor, and leaves the model untouched."""

from __future__ import annotations

import numpy as np
import pytest

from tfseg.errors import WeightsError
from tfseg.model import build_model
from tfseg.model.import_ultralytics import (apply_state_dict, import_weights, read_checkpoint,
                                            reference_name_table)

NAME = "yolov8-seg-n"


@pytest.fixture(scope="module")
def state(reference):
    return reference.state(NAME)


@pytest.fixture(scope="module")
def model():
    return build_model(NAME, 3, 64)


def _weights(model):
    return [w.numpy() for w in model.weights]


def test_name_table_covers_every_reference_tensor_once(model, state):
    names = [name for name, _, _ in reference_name_table(model)]
    assert len(names) == len(set(names)) == 417
    assert {f"model.{n}" for n in names} == set(state)
    variables = [v for _, v, _ in reference_name_table(model) if v is not None]
    assert len(variables) == len(model.weights)  # every Keras weight is filled
    assert len({id(v) for v in variables}) == len(variables)


def test_import_from_npz_writes_weights_with_reference_outputs(tmp_path, state, reference):
    checkpoint = tmp_path / "v8n.npz"
    np.savez(checkpoint, **state)
    out, info = import_weights(checkpoint, NAME, 160, tmp_path / "w" / "v8n.weights.h5")
    assert info.class_names == ["class0", "class1", "class2"]  # a state dict names no classes
    assert (tmp_path / "w" / "v8n.json").is_file()  # the metadata beside the weights
    fresh = build_model(NAME, 3, 160)  # classes came from the checkpoint
    fresh.load_weights(out)
    got = np.asarray(fresh(reference.scene())["prototypes"])[0]
    np.testing.assert_allclose(got, reference.outputs(NAME)["proto"][0].transpose(1, 2, 0),
                               atol=1e-4)


def test_layouts_oihw_to_hwio_depthwise_and_transposed(model, state):
    apply_state_dict(model, state)
    stem = state["model.0.conv.weight"]  # [16, 3, 3, 3] OIHW
    kernel = model.get_layer("stem").conv.kernel.numpy()  # [3, 3, 3, 16] HWIO
    assert kernel[1, 2, 0, 5] == stem[5, 0, 1, 2]
    up = state["model.22.proto.upsample.weight"]  # [in, out, kh, kw]
    transposed = model.get_layer("head").proto.upsample.kernel.numpy()  # [kh, kw, out, in]
    assert transposed[0, 1, 3, 7] == up[7, 3, 0, 1]


def _expect_error(model, state, pattern):
    before = _weights(model)
    with pytest.raises(WeightsError, match=pattern):
        apply_state_dict(model, state)
    for old, new in zip(before, _weights(model)):  # all or nothing
        np.testing.assert_array_equal(old, new)


def test_detection_checkpoint_is_refused(model, state):
    detect = {k: v for k, v in state.items() if ".proto." not in k and ".cv4." not in k}
    _expect_error(model, detect, r"no prototype branch \(model\.22\.proto\.\*\).*detection or pose")


def test_other_scale_is_refused_naming_the_first_tensor(state):
    small = build_model("yolov8-seg-s", 3, 64)
    _expect_error(small, state, r"tensor model\.0\.conv\.weight: shape \[16, 3, 3, 3\], "
                                r"model expects \[32, 3, 3, 3\].*another scale")


def test_other_family_is_refused(state):
    eleven = build_model("yolo11-seg-n", 3, 64)
    _expect_error(eleven, state, r"no prototype branch \(model\.23\.proto")


def test_wrong_number_of_classes_names_the_class_tensor(state):
    five = build_model(NAME, 5, 64)
    _expect_error(five, state, r"tensor model\.22\.cv3\.0\.2\.weight: .*checkpoint has 3 "
                               r"classes, the model 5")


def test_missing_extra_and_misshapen_tensors_are_named(model, state):
    missing = dict(state)
    del missing["model.15.m.0.cv1.bn.running_var"]
    _expect_error(model, missing, r"missing 1 tensors, first model\.15\.m\.0\.cv1\.bn\.running_var")
    extra = {**state, "model.22.cv5.weight": np.zeros(3, np.float32)}
    _expect_error(model, extra, r"1 unexpected tensors, first model\.22\.cv5\.weight")
    bad_dfl = {**state, "model.22.dfl.conv.weight": np.ones((1, 16, 1, 1), np.float32)}
    _expect_error(model, bad_dfl, r"model\.22\.dfl\.conv\.weight: the DFL projection")


def test_truncated_and_unknown_files_are_refused(tmp_path, state):
    whole = tmp_path / "whole.npz"
    np.savez(whole, **state)
    truncated = tmp_path / "cut.npz"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(WeightsError, match=r"cut\.npz: unreadable or truncated"):
        import_weights(truncated, NAME, 64, tmp_path / "out.weights.h5")
    unknown = tmp_path / "weights.bin"
    unknown.write_bytes(b"x")
    with pytest.raises(WeightsError, match="unknown format '.bin'"):
        read_checkpoint(unknown)
    with pytest.raises(WeightsError, match="no such file"):
        read_checkpoint(tmp_path / "absent.safetensors")
    with pytest.raises(WeightsError, match=r"must end with \.weights\.h5"):
        import_weights(whole, NAME, 64, tmp_path / "out.h5")


def test_plain_torch_state_dict(tmp_path, state):
    torch = pytest.importorskip("torch", reason="the optional [torch] extra is not installed")
    plain = tmp_path / "plain.pt"
    torch.save({k: torch.from_numpy(v) for k, v in state.items()}, plain)
    read = read_checkpoint(plain)
    np.testing.assert_array_equal(read["model.0.conv.weight"], state["model.0.conv.weight"])
