"""Make the reference fixtures of tests/model/ from an Ultralytics install (torch needed).

Run once, in a separate environment that has ``ultralytics`` and ``torch`` (never a test
dependency); nothing is downloaded (models are built from their YAML names):

    YOLO_OFFLINE=1 /work/ultra-venv/bin/python tools/make_model_fixtures.py tests/fixtures/model

Writes into the output folder:
    reference_counts.json       parameters (the reference's count) and GFLOPs at 640 of every
                                family and scale at 80 classes
    scene.png                   a 160x160 RGB test scene drawn here (deterministic)
    <model>.state.json          the reference state-dict names, shapes and dtypes, in order
    <model>.outputs.npz         the reference's raw head outputs on scene.png with the weights
                                of ``reference_like_weights`` (NCHW, before decoding), and
                                its decoded boxes, scores and mask probabilities of the top anchors
                                (YOLOv8/11). YOLO26 (end-to-end) models run on the central 96x96
                                crop of the scene (``scene_crop``) to keep the file small; their
                                file adds the one-to-one outputs (``o2o_box0``...), the semantic
                                logits and the reference's own end-to-end detections
                                (``e2e_detections``: x1, y1, x2, y2, score, class, 32 coefficients)

The weights are made by ``reference_like_weights`` from the names and shapes alone with
seeded numpy; it lives with the tests (tests/reference_weights.py), which rebuild the same
weights without torch, and this script takes it from there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_weights import FIXTURE_SEED, reference_like_weights, scene_crop  # noqa: E402

IMAGE_SIZE = 160
NUM_CLASSES = 3
TOP_ANCHORS = 8
PARITY_MODELS = {"yolov8-seg-n": "yolov8n-seg", "yolo11-seg-n": "yolo11n-seg"}
END_TO_END_MODELS = {"yolo26-seg-n": "yolo26n-seg", "yolo26-seg-s": "yolo26s-seg"}
FAMILIES = {"yolov8-seg": "yolov8{}-seg", "yolo11-seg": "yolo11{}-seg",
            "yolo26-seg": "yolo26{}-seg"}


def draw_scene(size: int = IMAGE_SIZE) -> np.ndarray:
    """A deterministic RGB scene (sky, ground, a few solid shapes, mild noise).

    Returns:
        ``[size, size, 3]`` uint8, RGB.
    """
    rng = np.random.default_rng(FIXTURE_SEED)
    rows = np.linspace(0.0, 1.0, size)[:, None]
    image = np.zeros((size, size, 3), np.float32)
    image[...] = np.stack([90 + 100 * rows, 140 + 80 * rows, 230 - 40 * rows], -1)  # sky
    ground = slice(int(size * 0.62), size)
    image[ground] = (95, 120, 70)
    yy, xx = np.mgrid[:size, :size]
    circle = (yy - size * 0.45) ** 2 + (xx - size * 0.3) ** 2 < (size * 0.14) ** 2
    image[circle] = (220, 60, 40)
    image[int(size * .40):int(size * .80), int(size * .55):int(size * .85)] = (40, 60, 160)
    image[int(size * .15):int(size * .25), int(size * .65):int(size * .95)] = (250, 240, 90)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _reference_model(reference_name: str, num_classes: int):
    from ultralytics.nn.tasks import SegmentationModel

    model = SegmentationModel(f"{reference_name}.yaml", nc=num_classes, verbose=False)
    return model.eval()


def record_counts(out_dir: Path, families: list) -> None:
    """Parameters and GFLOPs at 640 of every scale at 80 classes, as the reference reports,
    and the scale's row of the reference's YAML (``[depth, width, max_channels]``), merged
    into the existing reference_counts.json (only ``families`` are recomputed)."""
    from ultralytics.utils.torch_utils import get_flops

    path = out_dir / "reference_counts.json"
    counts = json.loads(path.read_text()) if path.is_file() else {}
    for family in families:
        pattern = FAMILIES[family]
        for scale in "nsmlx":
            model = _reference_model(pattern.format(scale), 80)
            counts[f"{family}-{scale}"] = {
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "gradients": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
                "gflops_640": round(float(get_flops(model, 640)), 2),
                "scale": [float(v) for v in model.yaml["scales"][scale]],
            }
            print(family, scale, counts[f"{family}-{scale}"])
    path.write_text(json.dumps(counts, indent=1) + "\n")


def _raw_outputs(model, image):
    """Run the model; return the head's raw per-level outputs and the decoded predictions."""
    import torch

    head = model.model[-1]
    captured = {}
    hook = head.register_forward_hook(lambda m, args, out: captured.update(features=args[0]))
    with torch.no_grad():
        (decoded, _), _ = model(image)
        hook.remove()
        features = captured["features"]
        raw = {}
        for i in range(len(features)):
            raw[f"box{i}"] = head.cv2[i](features[i]).numpy()
            raw[f"cls{i}"] = head.cv3[i](features[i]).numpy()
            raw[f"coef{i}"] = head.cv4[i](features[i]).numpy()
        raw["proto"] = head.proto(features[0]).numpy()
    return raw, decoded.numpy()


def _top_anchor_reference(raw: dict, decoded: np.ndarray, num_classes: int) -> dict:
    """The reference's decoded boxes, scores and mask probabilities of its top anchors."""
    scores = decoded[0, 4:4 + num_classes]  # [C, A], sigmoid
    top = np.argsort(-scores.max(0), kind="stable")[:TOP_ANCHORS]
    coefs = decoded[0, 4 + num_classes:, top]  # [k, 32]
    proto = raw["proto"][0]  # [32, P, P]
    logits = coefs @ proto.reshape(proto.shape[0], -1)
    masks = 1.0 / (1.0 + np.exp(-logits))
    return {"top_anchors": top, "top_boxes_xywh": decoded[0, :4, top],
            "top_scores": scores[:, top].T, "top_masks": masks.reshape(len(top), *proto.shape[1:])}


def _end_to_end_outputs(model, image):
    """Raw outputs of both heads, the prototypes, the semantic logits and the reference's
    own end-to-end detections of a YOLO26 model."""
    import torch

    head = model.model[-1]
    head.end2end = True  # the one-to-one path (the reference's default is nms=None: one-to-many)
    captured = {}
    hooks = [head.register_forward_hook(lambda m, args, out: captured.update(features=args[0])),
             head.proto.feat_fuse.register_forward_hook(
                 lambda m, args, out: captured.update(fused=args[0]))]
    with torch.no_grad():
        (detections, _), _ = model(image)  # [B, k, 6 + 32]
        for hook in hooks:
            hook.remove()
        features = captured["features"]
        raw = {"proto": head.proto(features).numpy(),
               "semantic": head.proto.semseg(captured["fused"]).numpy(),
               "e2e_detections": detections.numpy()}
        for prefix, branches in (("", (head.cv2, head.cv3, head.cv4)),
                                 ("o2o_", (head.one2one_cv2, head.one2one_cv3, head.one2one_cv4))):
            for i, feature in enumerate(features):
                for kind, branch in zip(("box", "cls", "coef"), branches):
                    raw[f"{prefix}{kind}{i}"] = branch[i](feature).numpy()
    return raw


def _seeded_reference(reference_name: str):
    """The reference model with ``reference_like_weights``, and its state entries."""
    import torch

    model = _reference_model(reference_name, NUM_CLASSES)
    state = model.state_dict()
    entries = [[k, list(v.shape), str(v.dtype).replace("torch.", "")] for k, v in state.items()]
    weights = reference_like_weights(entries)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
    return model, entries


def _as_input(pixels: np.ndarray):
    import torch

    return torch.from_numpy(pixels.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def record_parity(out_dir: Path) -> None:
    """State-dict layout, scene and reference outputs of the parity models."""
    scene = draw_scene()
    import cv2  # ultralytics depends on opencv

    cv2.imwrite(str(out_dir / "scene.png"), scene[..., ::-1])
    for ours, reference_name in PARITY_MODELS.items():
        model, entries = _seeded_reference(reference_name)
        raw, decoded = _raw_outputs(model, _as_input(scene))
        raw.update(_top_anchor_reference(raw, decoded, NUM_CLASSES))
        (out_dir / f"{ours}.state.json").write_text(json.dumps(entries) + "\n")
        np.savez_compressed(out_dir / f"{ours}.outputs.npz", **raw)
        print(ours, {k: v.shape for k, v in raw.items()})
    for ours, reference_name in END_TO_END_MODELS.items():
        model, entries = _seeded_reference(reference_name)
        raw = _end_to_end_outputs(model, _as_input(scene_crop(scene)))
        (out_dir / f"{ours}.state.json").write_text(json.dumps(entries) + "\n")
        np.savez_compressed(out_dir / f"{ours}.outputs.npz", **raw)
        print(ours, {k: v.shape for k, v in raw.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--skip-counts", action="store_true", help="only the parity fixtures")
    parser.add_argument("--count-families", default=",".join(FAMILIES),
                        help="families whose counts are recomputed (others are kept)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    record_parity(args.out_dir)
    if not args.skip_counts:
        record_counts(args.out_dir, args.count_families.split(","))


if __name__ == "__main__":
    main()
