"""Ultralytics segmentation checkpoints -> Keras weights of our YoloSeg.

Every reference tensor has exactly one place in our model, listed by an explicit name
table built from the model's own layers (:func:`reference_name_table`). Import is strict:
the checkpoint's tensor names must equal the table's, every shape must match, and the
first mismatch raises a WeightsError naming the tensor (with a hint: detection or pose
checkpoint, another scale, another number of classes, another family).

Checkpoint files (.npz, .safetensors, .pt state dicts and Ultralytics' own training
checkpoints) are read by tfseg.model.checkpoint_files, without Ultralytics.
Names may carry the ``model.`` prefix of a full model's state dict or not.

Layouts: conv OIHW -> HWIO; depthwise [C, 1, kh, kw] -> [kh, kw, C, 1]; transposed conv
[in, out, kh, kw] -> [kh, kw, out, in]. BN counters (num_batches_tracked) are read and
dropped; the DFL projection must be the fixed 0..reg_max-1 ramp our decoding assumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tfseg.errors import WeightsError
from tfseg.model.artifact import ModelInfo, default_category_ids, write_model_info
from tfseg.model.checkpoint_files import COCO_CLASS_NAMES, read_checkpoint_file
from tfseg.model.head import HeadBranch, SegmentHead
from tfseg.model.head26 import DualSegmentHead, MultiScaleProto
from tfseg.model.attention import C2PSA, Attention, BottleneckPSA, PSABlock
from tfseg.model.layers import C2f, C3k, C3k2, SPPF, Bottleneck, ConvBNSiLU
from tfseg.model.yolo_seg import YoloSeg, build_model

# Reference module index -> our top-level layer name, per family (the published layouts).
LAYER_INDEX = {
    "yolov8-seg": {0: "stem", 1: "down2", 2: "stage2", 3: "down3", 4: "stage3", 5: "down4",
                   6: "stage4", 7: "down5", 8: "stage5", 9: "sppf", 12: "top_down_p4",
                   15: "out_p3", 16: "down_p3", 18: "out_p4", 19: "down_p4", 21: "out_p5",
                   22: "head"},
    "yolo11-seg": {0: "stem", 1: "down2", 2: "stage2", 3: "down3", 4: "stage3", 5: "down4",
                   6: "stage4", 7: "down5", 8: "stage5", 9: "sppf", 10: "c2psa",
                   13: "top_down_p4", 16: "out_p3", 17: "down_p3", 19: "out_p4",
                   20: "down_p4", 22: "out_p5", 23: "head"},
}
LAYER_INDEX["yolo26-seg"] = LAYER_INDEX["yolo11-seg"]  # the same layout, index for index

SKIP = "skip"  # a tensor read and deliberately dropped (BN counters)
DFL = "dfl"  # the fixed DFL projection: checked, not stored


def _conv(prefix: str, layer: ConvBNSiLU) -> list:
    kind = "depthwise" if layer.depthwise else "conv"
    return [(f"{prefix}.conv.weight", layer.conv.kernel, kind),
            (f"{prefix}.bn.weight", layer.bn.gamma, "vector"),
            (f"{prefix}.bn.bias", layer.bn.beta, "vector"),
            (f"{prefix}.bn.running_mean", layer.bn.moving_mean, "vector"),
            (f"{prefix}.bn.running_var", layer.bn.moving_variance, "vector"),
            (f"{prefix}.bn.num_batches_tracked", None, SKIP)]


def _block(prefix: str, layer) -> list:
    """Table rows of one block (recursing into its inner blocks)."""
    if isinstance(layer, ConvBNSiLU):
        return _conv(prefix, layer)
    if isinstance(layer, Bottleneck):
        return _conv(f"{prefix}.cv1", layer.cv1) + _conv(f"{prefix}.cv2", layer.cv2)
    if isinstance(layer, (C2f, C3k2, C3k, C2PSA)):  # C3k2 is a C2f
        rows = _conv(f"{prefix}.cv1", layer.cv1) + _conv(f"{prefix}.cv2", layer.cv2)
        if isinstance(layer, C3k):
            rows += _conv(f"{prefix}.cv3", layer.cv3)
        for i, inner in enumerate(layer.blocks):
            rows += _block(f"{prefix}.m.{i}", inner)
        return rows
    if isinstance(layer, SPPF):
        return _conv(f"{prefix}.cv1", layer.cv1) + _conv(f"{prefix}.cv2", layer.cv2)
    if isinstance(layer, BottleneckPSA):  # Sequential(Bottleneck, PSABlock)
        return _block(f"{prefix}.0", layer.bottleneck) + _block(f"{prefix}.1", layer.psa)
    if isinstance(layer, PSABlock):
        return (_block(f"{prefix}.attn", layer.attn) + _conv(f"{prefix}.ffn.0", layer.ffn1)
                + _conv(f"{prefix}.ffn.1", layer.ffn2))
    if isinstance(layer, Attention):
        return (_conv(f"{prefix}.qkv", layer.qkv) + _conv(f"{prefix}.proj", layer.proj)
                + _conv(f"{prefix}.pe", layer.pe))
    raise TypeError(f"no reference name table for {type(layer).__name__}")


def _branch(prefix: str, branch: HeadBranch) -> list:
    if branch.lightweight:  # Sequential(Sequential(DW, Conv), Sequential(DW, Conv), Conv2d)
        rows = (_conv(f"{prefix}.0.0", branch.dw1) + _conv(f"{prefix}.0.1", branch.pw1)
                + _conv(f"{prefix}.1.0", branch.dw2) + _conv(f"{prefix}.1.1", branch.pw2))
    else:
        rows = _conv(f"{prefix}.0", branch.cv1) + _conv(f"{prefix}.1", branch.cv2)
    return rows + [(f"{prefix}.2.weight", branch.predict.kernel, "conv"),
                   (f"{prefix}.2.bias", branch.predict.bias, "vector")]


def _proto(prefix: str, proto) -> list:
    rows = _conv(f"{prefix}.cv1", proto.cv1)
    rows += [(f"{prefix}.upsample.weight", proto.upsample.kernel, "transposed"),
             (f"{prefix}.upsample.bias", proto.upsample.bias, "vector")]
    return rows + _conv(f"{prefix}.cv2", proto.cv2) + _conv(f"{prefix}.cv3", proto.cv3)


def _multi_scale_proto(prefix: str, proto: MultiScaleProto) -> list:
    """YOLO26's Proto: its own Proto convs first, then refine, fuse and semantic convs."""
    rows = _proto(prefix, proto.proto)
    for i, refine in enumerate(proto.refine):
        rows += _conv(f"{prefix}.feat_refine.{i}", refine)
    rows += _conv(f"{prefix}.feat_fuse", proto.fuse)
    for i, conv in enumerate(proto.semantic):
        rows += _conv(f"{prefix}.semseg.{i}", conv)
    predict = proto.semantic_predict
    return rows + [(f"{prefix}.semseg.2.weight", predict.kernel, "conv"),
                   (f"{prefix}.semseg.2.bias", predict.bias, "vector")]


def _head(prefix: str, head: SegmentHead) -> list:
    kinds = [("cv2", head.box_branches), ("cv3", head.class_branches),
             ("cv4", head.mask_branches)]
    if isinstance(head, DualSegmentHead):
        kinds += [("one2one_cv2", head.o2o_box_branches), ("one2one_cv3", head.o2o_class_branches),
                  ("one2one_cv4", head.o2o_mask_branches)]
    rows = []
    for name, branches in kinds:
        for i, branch in enumerate(branches):
            rows += _branch(f"{prefix}.{name}.{i}", branch)
    if head.reg_max > 1:  # with reg_max 1 the reference has no DFL layer
        rows += [(f"{prefix}.dfl.conv.weight", None, DFL)]
    if isinstance(head.proto, MultiScaleProto):
        return rows + _multi_scale_proto(f"{prefix}.proto", head.proto)
    return rows + _proto(f"{prefix}.proto", head.proto)


def reference_name_table(model: YoloSeg) -> list:
    """Every reference tensor name with our variable and its layout conversion.

    Args:
        model: a built YoloSeg.

    Returns:
        ``[(reference_name, keras_variable_or_None, layout), ...]``, layout one of
        conv, depthwise, transposed, vector, skip, dfl; names without the ``model.`` prefix.
    """
    rows = []
    for index, layer_name in LAYER_INDEX[model.spec.family].items():
        layer = model.get_layer(layer_name)
        rows += _head(str(index), layer) if isinstance(layer, SegmentHead) else _block(str(index), layer)
    return rows


def _to_keras_layout(array: np.ndarray, layout: str) -> np.ndarray:
    if layout == "conv":
        return array.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if layout == "depthwise":
        return array.transpose(2, 3, 0, 1)  # [C, 1, kh, kw] -> [kh, kw, C, 1]
    if layout == "transposed":
        return array.transpose(2, 3, 1, 0)  # [in, out, kh, kw] -> [kh, kw, out, in]
    return array


def _reference_shape(variable_shape: tuple, layout: str) -> tuple:
    """The shape the checkpoint must have for a variable of ``variable_shape``."""
    order = {"conv": (3, 2, 0, 1), "depthwise": (2, 3, 0, 1), "transposed": (3, 2, 0, 1)}
    if layout in order:
        return tuple(variable_shape[i] for i in order[layout])
    return tuple(variable_shape)


def _strip_prefix(state: dict) -> dict:
    if all(name.startswith("model.") for name in state):
        return {name[len("model."):]: value for name, value in state.items()}
    return dict(state)


def _mismatch_hint(name: str, got: tuple, model: YoloSeg) -> str:
    head_index = max(LAYER_INDEX[model.spec.family])
    if name.startswith(f"{head_index}.cv3.") and name.split(".")[-2] == "2":  # class prediction
        return (f"; the checkpoint has {got[0]} classes, the model {model.num_classes}: "
                f"build it with num_classes={got[0]}")
    return f"; the checkpoint is not {model.model_name} (another scale or family?)"


def _check_names(state: dict, table: list, model: YoloSeg) -> None:
    expected = {name for name, _, _ in table}
    missing = [name for name, _, _ in table if name not in state]
    extra = sorted(set(state) - expected)
    head_index = max(LAYER_INDEX[model.spec.family])
    if not any(name.startswith(f"{head_index}.proto.") for name in state):
        raise WeightsError(
            f"checkpoint has no prototype branch (model.{head_index}.proto.*): it is a detection "
            f"or pose checkpoint (or another family), not a {model.model_name} segmentation one")
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensors, first model.{missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected tensors, first model.{extra[0]}")
        raise WeightsError(f"checkpoint does not match {model.model_name}: {'; '.join(parts)}")


def apply_state_dict(model: YoloSeg, state: dict) -> int:
    """Copy an Ultralytics state dict into a built YoloSeg, strictly.

    Args:
        model: the target (its name, scale and classes must match the checkpoint).
        state: ``{name: array}`` (numpy or anything ``np.asarray`` takes), names with or
            without the ``model.`` prefix.

    Returns:
        The number of checkpoint tensors read (assigned, checked or dropped).

    Raises:
        WeightsError: a missing, extra or mis-shaped tensor, named.
    """
    state = _strip_prefix(state)
    table = reference_name_table(model)
    _check_names(state, table, model)
    assignments = []
    for name, variable, layout in table:
        array = np.asarray(state[name])
        if layout == SKIP:
            continue
        if layout == DFL:
            ramp = np.arange(model.spec.reg_max, dtype=np.float32).reshape(1, -1, 1, 1)
            if array.shape != ramp.shape or not np.allclose(array, ramp):
                raise WeightsError(f"tensor model.{name}: the DFL projection must be the ramp "
                                   f"0..{model.spec.reg_max - 1} of shape {ramp.shape}")
            continue
        expected = _reference_shape(tuple(variable.shape), layout)
        if array.shape != expected:
            raise WeightsError(f"tensor model.{name}: shape {list(array.shape)}, model expects "
                               f"{list(expected)}{_mismatch_hint(name, array.shape, model)}")
        assignments.append((variable, _to_keras_layout(array.astype(np.float32), layout)))
    for variable, value in assignments:  # only after every check passed: all or nothing
        variable.assign(value)
    return len(table)


def read_checkpoint(path: str | Path) -> dict:
    """The state dict of a checkpoint file: ``{name: np.ndarray}`` (formats: checkpoint_files).

    Raises:
        WeightsError: unreadable, truncated, unknown suffix, or a missing package.
    """
    return read_checkpoint_file(path).state


def infer_num_classes(state: dict) -> int:
    """C of a segmentation checkpoint: the channels of its first class prediction."""
    state = _strip_prefix(state)
    for name, value in state.items():
        parts = name.split(".")
        if len(parts) == 5 and parts[1:] == ["cv3", "0", "2", "bias"]:
            return int(np.shape(value)[0])
    raise WeightsError("checkpoint has no class prediction tensor (cv3.0.2.bias): "
                       "not a YOLOv8/11/26 checkpoint")


def load_ultralytics(checkpoint_path: str | Path, model_name: str | None = None,
                     image_size: int | None = None) -> tuple[YoloSeg, ModelInfo]:
    """An Ultralytics checkpoint as a built YoloSeg, in memory, and what it is.

    Args:
        checkpoint_path: .npz, .safetensors, a plain .pt/.pth state dict, or an Ultralytics
            training checkpoint (``yolov8n-seg.pt``).
        model_name: e.g. ``yolov8-seg-n``; None: the one the checkpoint names (Ultralytics
            .pt files do; state dicts do not).
        image_size: S to build at; None: the checkpoint's training size, else 640.

    Returns:
        (the model with the weights, its ModelInfo). Class names: the checkpoint's own, else
        the COCO names for an 80-class checkpoint, else ``class<i>``.

    Raises:
        WeightsError: unreadable file, unknown architecture, or tensors that do not fit
            (the tensor is named).
    """
    checkpoint = read_checkpoint_file(checkpoint_path)
    model_name = model_name or checkpoint.model_name
    if not model_name:
        raise WeightsError(f"checkpoint {checkpoint_path}: it does not say which architecture "
                           "it is; give it as model=<yolov8-seg-n, yolo11-seg-s, ...>")
    num_classes = infer_num_classes(checkpoint.state)
    size = image_size or checkpoint.image_size or 640
    model = build_model(model_name, num_classes, size)
    try:
        apply_state_dict(model, checkpoint.state)
    except WeightsError as error:
        raise WeightsError(f"checkpoint {checkpoint_path}: {error}") from None
    names = checkpoint.class_names
    if not names or len(names) != num_classes:
        names = list(COCO_CLASS_NAMES) if num_classes == len(COCO_CLASS_NAMES) else [
            f"class{i}" for i in range(num_classes)]
    info = ModelInfo(model_name, size, names, default_category_ids(num_classes),
                     source=f"imported from {Path(checkpoint_path).name}")
    return model, info


def import_weights(checkpoint_path: str | Path, model_name: str | None, image_size: int | None,
                   output_path: str | Path) -> tuple[Path, ModelInfo]:
    """Import an Ultralytics checkpoint: Keras weights plus their metadata JSON.

    Args:
        checkpoint_path: see :func:`load_ultralytics`.
        model_name: e.g. ``yolov8-seg-n``; None: the checkpoint's own.
        image_size: S recorded in the metadata (weights do not depend on it); None: the
            checkpoint's, else 640.
        output_path: where to write; must end with ``.weights.h5``. The metadata goes to
            ``<stem>.json`` beside it (tfseg.model.artifact).

    Returns:
        (the weights path, the ModelInfo written beside it).

    Raises:
        WeightsError: the checkpoint does not fit (the tensor is named).
    """
    output_path = Path(output_path)
    if not output_path.name.endswith(".weights.h5"):
        raise WeightsError(f"output {output_path}: Keras weights files must end with .weights.h5")
    model, info = load_ultralytics(checkpoint_path, model_name, image_size)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    model.save_weights(str(output_path))
    stem = output_path.name[: -len(".weights.h5")]
    write_model_info(output_path.with_name(f"{stem}.json"), info)
    return output_path, info
