"""Make the loss-parity fixtures of tests/loss/ from an Ultralytics install (torch needed).

Run once, in a separate environment that has ``ultralytics`` and ``torch`` (never a test
dependency); nothing is downloaded (the loss is built from the models' YAML names):

    YOLO_OFFLINE=1 /work/ultra-venv/bin/python tools/make_loss_fixtures.py tests/fixtures/loss

Writes ``<family>.npz`` for yolov8-seg, yolo11-seg and yolo26-seg (n scale, 3 classes,
128 px input, a batch of 3) holding, in the reference's own layouts:

    targets        ``batch_idx`` [N], ``cls`` [N], ``bboxes`` [N, 4] (xyxy input pixels; the
                   reference is fed them as normalized xywh, exact in binary for these
                   values), ``masks`` [N, 32, 32] uint8 per instance, ``sem_masks`` [B, 32, 32]
    raw outputs    seeded random values (YOLOv8/11: three anchors made to predict the huge
                   instance, whose DFL targets pass the last bin), stored as float16 (used as
                   float32 on both sides, exactly): ``boxes`` [B, 4 * reg_max, A], ``scores``
                   [B, C, A], ``mask_coefficient`` [B, 32, A], ``proto`` [B, 32, 32, 32]
                   (NCHW); YOLO26 adds the one-to-one head (``o2o_`` keys) and ``semantic``
                   [B, C, 16, 16]
    ``ref_terms``  the reference's own loss items (box, seg, cls, dfl or l1, sem) as it
                   computes them; YOLO26 stores each head's (``ref_terms`` one-to-many,
                   ``ref_o2o_terms`` one-to-one)
    ``ref_fg``, ``ref_gt_index``
                   the reference's assignment (positive anchors and their GT) per head
    ``conv_terms`` (and ``conv_o2o_terms``), ``grad_<output>``
                   the same loss with tfseg's documented conventions in place of the
                   reference's where the two differ on purpose (see below), and the gradient
                   of its total (the terms' sum times B; YOLO26: 0.8 one-to-many + 0.2
                   one-to-one, the first epoch's weights) with respect to each raw output
    ``empty_terms``, ``empty_grad_<output>``
                   the reference's terms on the same outputs for a batch without instances,
                   and its nonzero gradients (the class logits')
    ``o2m_schedule``   YOLO26: the reference's one-to-many weight in each epoch of 100

and ``yolov8-seg-at-96.npz``: YOLOv8-seg on the same targets (masks on the 32 x 32 grid of
128 px, ``bboxes`` in pixels of 128) under raw outputs of a 96 px input (``input_size``), a
batch that multi-scale training drew at 96: the reference resizes its prototypes to the
masks' grid (bilinear) and measures boxes against the 96 px input.

Where tfseg differs from the reference on purpose, the ``conv_`` loss swaps in tfseg's rule
and changes nothing else, so tfseg must equal it exactly while ``ref_`` shows the size of
the difference (tests/loss/test_reference_parity.py checks both):

- the mask term keeps a prototype pixel when its centre lies inside the box (the reference
  tests the pixel's top-left corner, a half-pixel shift up and left), and divides by the
  box area floored at one prototype pixel (the reference divides by the area itself);
- YOLO26: tfseg assigns by box overlap, as for YOLOv8/11; the reference's YOLO26 loss
  (SegmentLoss26) also averages in the IoU of each candidate's predicted mask.

The reference's masks are per instance (``overlap_mask=False``), as tfseg's targets are;
its default (one index image per image, the smaller instance on top) takes the covered
pixels out of the larger instance's mask, which tfseg does not do.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

IMAGE_SIZE = 128
NUM_CLASSES = 3
PROTO = IMAGE_SIZE // 4
STRIDES = (8, 16, 32)
NUM_ANCHORS = sum((IMAGE_SIZE // s) ** 2 for s in STRIDES)
SEED = 20261207
FAMILIES = {"yolov8-seg": "yolov8n-seg", "yolo11-seg": "yolo11n-seg",
            "yolo26-seg": "yolo26n-seg"}
O2M_WEIGHT = 0.8  # the reference's one-to-many weight in the first epoch
MULTI_SCALE_SIZE = 96  # a batch drawn below IMAGE_SIZE by multi-scale training
# Under this seed no anchor is claimed by several GTs whose overlaps with its prediction are
# all 0, the one case where the two assigners part on purpose (tfseg gives the anchor to a GT
# it lies in, the reference to the image's first GT; tfseg/loss/assigner.py). Seed 10 has such
# an anchor (seg 1% apart, the other terms equal); seeds 12-14 differ in seg alone, by 0.1-0.6%.
MULTI_SCALE_SEED = 11


def _ellipse_mask(box: np.ndarray) -> np.ndarray:
    """The ellipse inscribed in an xyxy box (input pixels), sampled at the prototype pixel
    centres -> [P, P] uint8."""
    centres = (np.arange(PROTO) + 0.5) * (IMAGE_SIZE / PROTO)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    rx, ry = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    inside = ((centres[None, :] - cx) / rx) ** 2 + ((centres[:, None] - cy) / ry) ** 2 <= 1.0
    return inside.astype(np.uint8)


def _rectangle_mask(box: np.ndarray) -> np.ndarray:
    """The box itself, sampled at the prototype pixel centres -> [P, P] uint8."""
    centres = (np.arange(PROTO) + 0.5) * (IMAGE_SIZE / PROTO)
    inside_x = (centres >= box[0]) & (centres < box[2])
    inside_y = (centres >= box[1]) & (centres < box[3])
    return (inside_y[:, None] & inside_x[None, :]).astype(np.uint8)


def _quarter(values) -> np.ndarray:
    """Round to quarter pixels, nudged off multiples of 4 (where anchor centres lie), then
    offset by 1/512 px: normalizing to xywh and back stays exact, no anchor sits on a box
    edge, and no GT edge can equal a predicted edge (YOLO26's distances lie on a 1/64 stride
    grid). At an exact tie the two frameworks take different subgradients of min and max in
    the CIoU, both valid, so the fixture has none."""
    values = np.round(np.asarray(values, np.float64) * 4) / 4
    return np.where(np.mod(values, 4.0) == 0.0, values + 0.25, values) + 1.0 / 512


def make_targets(rng: np.random.Generator) -> list[dict]:
    """Three images: a dense one (48 instances: clusters of overlapping shapes, tiny ones of
    2-5 px, medium ones), an empty one, and one with a huge instance (most of the image)
    with a tiny and a few medium instances on top of it.

    Returns:
        Per image: ``boxes`` [n, 4] float32 xyxy input pixels, ``classes`` [n] int32,
        ``masks`` [n, P, P] uint8.
    """
    dense = []
    for _ in range(6):  # clusters of overlapping instances
        cx, cy = rng.uniform(20, 108, 2)
        for _ in range(5):
            w, h = rng.uniform(8, 40, 2)
            x, y = cx + rng.uniform(-10, 10), cy + rng.uniform(-10, 10)
            dense.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
    for _ in range(6):  # tiny
        x, y = rng.uniform(6, 122, 2)
        w, h = rng.uniform(2, 5, 2)
        dense.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
    for _ in range(12):  # scattered medium and small
        x, y = rng.uniform(10, 118, 2)
        w, h = rng.uniform(5, 30, 2)
        dense.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2])
    huge = [[2.25, 5.75, 125.5, 122.25], [60.5, 30.25, 63.5, 33.75],  # huge, tiny (3 x 3.5)
            [10.5, 14.25, 50.75, 46.5], [70.25, 66.5, 118.5, 90.75], [30.75, 80.5, 58.25, 118.5]]
    images = []
    for boxes in (dense, [], huge):
        boxes = _quarter(np.clip(np.reshape(boxes, (-1, 4)), 0.25, IMAGE_SIZE - 0.5))
        classes = rng.integers(0, NUM_CLASSES, len(boxes)).astype(np.int32)
        masks = np.stack([(_rectangle_mask if i % 3 == 2 else _ellipse_mask)(box)
                          for i, box in enumerate(boxes)]) if len(boxes) else \
            np.zeros((0, PROTO, PROTO), np.uint8)
        images.append({"boxes": boxes.astype(np.float32), "classes": classes, "masks": masks})
    return images


def semantic_index(masks: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The reference data pipeline's semantic target (per-instance masks): each pixel takes
    the class of the smallest mask covering it (by mask pixels), 0 where none does ->
    [P, P] float32. Between covering masks of equal area the first wins, here (numpy's
    argmin) as in torch's ``min`` on the CPU; checked, since tfseg takes the first too."""
    import torch

    if not len(masks):
        return np.zeros((PROTO, PROTO), np.float32)
    areas = masks.reshape(len(masks), -1).sum(1).astype(np.int64)
    key = np.where(masks > 0, areas[:, None, None], areas.max() + 1)  # [n, P, P]
    first = key.argmin(0)
    assert np.array_equal(first, torch.from_numpy(key).min(0).indices.numpy())
    return (classes[first] * masks.any(0)).astype(np.float32)


def _grid(values) -> np.ndarray:
    """float16 on a 1/64 grid: exact in float32 too."""
    return (np.round(np.asarray(values) * 64) / 64).astype(np.float16)


def make_raw_outputs(rng: np.random.Generator, end_to_end: bool,
                     size: int = IMAGE_SIZE) -> dict[str, np.ndarray]:
    """Seeded raw outputs in the reference's layouts, float16 on a 1/64 grid: YOLOv8/11 DFL
    logits, or YOLO26's positive distances (strides) and both heads, class logits around -2,
    mask coefficients and prototypes of a few units; for an input of ``size`` pixels."""
    grid = _grid
    batch = 3
    heads = ("", "o2o_") if end_to_end else ("",)
    proto, anchors = size // 4, sum((size // s) ** 2 for s in STRIDES)
    raw = {"proto": grid(rng.normal(0.0, 1.0, (batch, 32, proto, proto)))}
    for prefix in heads:
        if end_to_end:
            boxes = np.abs(rng.normal(2.0, 1.2, (batch, 4, anchors))) + 0.25
        else:
            boxes = rng.normal(0.0, 1.5, (batch, 64, anchors))
        raw[prefix + "boxes"] = grid(boxes)
        raw[prefix + "scores"] = grid(rng.normal(-2.0, 1.5, (batch, NUM_CLASSES, anchors)))
        raw[prefix + "mask_coefficient"] = grid(rng.normal(0.0, 0.4, (batch, 32, anchors)))
    if end_to_end:
        raw["semantic"] = grid(rng.normal(-1.0, 1.5, (batch, NUM_CLASSES, proto // 2, proto // 2)))
    return raw


def plant_edge_predictions(raw: dict, images: list[dict], image: int = 2, gt: int = 0) -> None:
    """Make three stride-8 anchors of the left column (x = 4 px) predict image ``image``'s GT
    ``gt`` (the huge one) well, with a confident class: they become its positives, and their
    right side lies over 15 strides away, past the last DFL bin, so the DFL target's clamp at
    reg_max - 1 - 0.01 is exercised. YOLOv8/11 only (DFL logits)."""
    x1, y1, x2, y2 = images[image]["boxes"][gt]
    bins = np.arange(16)
    for row in (6, 7, 8):  # anchors at y = 52, 60, 68 px
        anchor, y = row * (IMAGE_SIZE // 8), (row + 0.5) * 8
        for side, distance in enumerate(((4 - x1) / 8, (y - y1) / 8, (x2 - 4) / 8, (y2 - y) / 8)):
            raw["boxes"][image, side * 16:(side + 1) * 16, anchor] = _grid(
                -2.0 * (bins - min(distance, 15.0)) ** 2)
        raw["scores"][image, images[image]["classes"][gt], anchor] = _grid(3.0)


def reference_batch(images: list[dict]) -> dict:
    """The reference's training batch (per-instance masks, normalized xywh boxes)."""
    import torch

    boxes = np.concatenate([im["boxes"] for im in images])
    xywh = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], 1)
    return {
        "batch_idx": torch.tensor(np.concatenate([np.full(len(im["boxes"]), i, np.float32)
                                                  for i, im in enumerate(images)])),
        "cls": torch.tensor(np.concatenate([im["classes"] for im in images]))[:, None].float(),
        "bboxes": torch.tensor(xywh / IMAGE_SIZE, dtype=torch.float32),
        "masks": torch.tensor(np.concatenate([im["masks"] for im in images])).float(),
        "sem_masks": torch.tensor(np.stack([semantic_index(im["masks"], im["classes"])
                                            for im in images])),
    }


def _head_preds(raw: dict, prefix: str, detach: bool) -> dict:
    """The reference loss's input dict for one head, from leaf tensors."""
    import torch

    size = raw["proto"].shape[-1] * 4  # the batch's input size (multi-scale: not IMAGE_SIZE)
    feats = [torch.zeros(1, 1, size // s, size // s) for s in STRIDES]
    proto = raw["proto"].detach() if detach else raw["proto"]
    if "semantic" in raw:
        proto = (proto, raw["semantic"].detach() if detach else raw["semantic"])
    return {"boxes": raw[prefix + "boxes"], "scores": raw[prefix + "scores"],
            "mask_coefficient": raw[prefix + "mask_coefficient"], "proto": proto, "feats": feats}


def centre_crop_loss_class(base):
    """``base`` (a reference segmentation loss class) with tfseg's mask-term conventions:
    pixels whose centre lies in the box, box area floored at one prototype pixel."""
    import torch
    import torch.nn.functional as F

    class CentreCrop(base):
        @staticmethod
        def single_mask_loss(gt_mask, pred, proto, xyxy, area):
            logits = torch.einsum("kc,chw->khw", pred, proto)
            bce = F.binary_cross_entropy_with_logits(logits, gt_mask, reduction="none")
            height, width = bce.shape[1:]
            cols = torch.arange(width, dtype=xyxy.dtype) + 0.5
            rows = torch.arange(height, dtype=xyxy.dtype) + 0.5
            x1, y1, x2, y2 = (xyxy[:, i, None] for i in range(4))
            inside_x = ((cols >= x1) & (cols < x2)).to(bce.dtype)  # [k, W]
            inside_y = ((rows >= y1) & (rows < y2)).to(bce.dtype)  # [k, H]
            summed = torch.einsum("khw,kh,kw->k", bce, inside_y, inside_x)
            return (summed / (area * height * width).clamp(min=1.0)).sum()

    return CentreCrop


def _criterion(model, loss_class, end_to_end: bool):
    from ultralytics.utils.loss import E2ELoss

    return E2ELoss(model, loss_class) if end_to_end else loss_class(model)


def run_loss(criterion, raw_np: dict, batch: dict, end_to_end: bool):
    """One forward and backward of a reference criterion on float32 copies of the raw outputs.

    Returns:
        (terms per head, assignment per head, gradient per raw output as float32 numpy).
    """
    import torch

    raw = {k: torch.tensor(v.astype(np.float32), requires_grad=True) for k, v in raw_np.items()}
    if end_to_end:
        heads = [("", criterion.one2many, O2M_WEIGHT), ("o2o_", criterion.one2one, 1 - O2M_WEIGHT)]
    else:
        heads = [("", criterion, 1.0)]
    total, terms, assignment = 0.0, [], []
    for prefix, loss_fn, weight in heads:
        preds = _head_preds(raw, prefix, detach=prefix == "o2o_")
        head_total, items = loss_fn.loss(preds, batch)
        total = total + weight * head_total.sum()
        terms.append(np.array([float(v) for v in items.values()], np.float64))
        with torch.no_grad():
            fg, gt_index = loss_fn.get_assigned_targets_and_loss(preds, batch)[0][:2]
        assignment.append((fg.numpy(), gt_index.numpy()))
    total.backward()
    grads = {k: (v.grad if v.grad is not None else torch.zeros_like(v)).numpy()
             for k, v in raw.items()}
    return terms, assignment, grads


def _weight_after(criterion, epoch: int) -> float:
    """The reference's one-to-many weight during ``epoch`` (it updates once per epoch)."""
    return float(criterion.decay(epoch)) if epoch else float(criterion.o2m_copy)


def make_family(family: str, reference_name: str, images: list[dict], raw: dict) -> dict:
    """The fixture arrays of one family."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import SegmentationModel
    from ultralytics.utils.loss import v8SegmentationLoss

    model = SegmentationModel(f"{reference_name}.yaml", nc=NUM_CLASSES, verbose=False)
    model.args = get_cfg(overrides={"overlap_mask": False})
    reference = model.init_criterion()
    end_to_end = hasattr(reference, "one2one")
    own_loss = type(reference.one2many) if end_to_end else type(reference)
    batch = reference_batch(images)

    ref_terms, ref_assign, _ = run_loss(reference, raw, batch, end_to_end)
    # tfseg's conventions: centre crop; YOLO26 with the box-overlap assigner of YOLOv8/11.
    conv_base = v8SegmentationLoss if end_to_end else own_loss
    conventions = _criterion(model, centre_crop_loss_class(conv_base), end_to_end)
    conv_terms, conv_assign, grads = run_loss(conventions, raw, batch, end_to_end)

    for head, (fg, _) in zip(("o2m", "o2o"), conv_assign):
        per_image = fg.sum(1)
        print(f"{family} {head}: positives per image {per_image.tolist()}")
        assert per_image[0] > 0 and per_image[2] > 0, "the assigner gave no positives"
    boxes = np.concatenate([im["boxes"] for im in images])
    out = {
        "image_size": np.int32(IMAGE_SIZE), "num_classes": np.int32(NUM_CLASSES),
        "batch_idx": np.asarray(batch["batch_idx"], np.int32),
        "cls": np.asarray(batch["cls"][:, 0], np.int32), "bboxes": boxes,
        "masks": np.asarray(batch["masks"], np.uint8), "sem_masks": np.asarray(batch["sem_masks"]),
        "term_names": np.array(list(reference.one2one.loss_names if end_to_end
                                    else reference.loss_names)),
        "o2m_weight": np.float32(O2M_WEIGHT if end_to_end else 1.0),
        **raw,
        **{f"grad_{k}": v.astype(np.float32) for k, v in grads.items()},
    }
    # A batch without instances: the reference's own path for no GT at all (no positives, no
    # masks, so tfseg's rules change nothing); only the class logits get a gradient.
    nothing = {"boxes": np.zeros((0, 4), np.float32), "classes": np.zeros(0, np.int32),
               "masks": np.zeros((0, PROTO, PROTO), np.uint8)}
    empty_terms, _, empty_grads = run_loss(reference, raw, reference_batch([nothing] * 3),
                                           end_to_end)
    for key, grad in empty_grads.items():
        if np.any(grad != 0):
            assert key.endswith("scores"), f"an empty batch moved {key}"
            out[f"empty_grad_{key}"] = grad.astype(np.float32)
    if end_to_end:  # the reference's one-to-many weight at each epoch of its default 100
        out["o2m_schedule"] = np.array([_weight_after(reference, epoch)
                                        for epoch in range(reference.one2one.hyp.epochs)])
    for i, prefix in enumerate(("", "o2o_")[:len(ref_terms)]):
        out[f"empty_{prefix}terms"] = empty_terms[i]
        out[f"ref_{prefix}terms"], out[f"conv_{prefix}terms"] = ref_terms[i], conv_terms[i]
        out[f"ref_{prefix}fg"] = ref_assign[i][0]
        out[f"ref_{prefix}gt_index"] = ref_assign[i][1].astype(np.int16)
        out[f"conv_{prefix}fg"] = conv_assign[i][0]
        out[f"conv_{prefix}gt_index"] = conv_assign[i][1].astype(np.int16)
    return out


def _save(path: Path, arrays: dict) -> None:
    np.savez_compressed(path, **arrays)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB; ref terms {arrays['ref_terms']}; "
          f"conv terms {arrays['conv_terms']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--multi-scale-only", action="store_true",
                        help="write only the multi-scale fixture")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    import torch

    torch.use_deterministic_algorithms(True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    images = make_targets(np.random.default_rng(SEED))
    print("instances per image:", [len(im["boxes"]) for im in images])
    # Multi-scale training: the same targets (masks at 128 / 4) under a batch drawn at 96 px.
    raw = make_raw_outputs(np.random.default_rng(SEED + MULTI_SCALE_SEED), False, MULTI_SCALE_SIZE)
    arrays = make_family("yolov8-seg", FAMILIES["yolov8-seg"], images, raw)
    _save(args.out_dir / f"yolov8-seg-at-{MULTI_SCALE_SIZE}.npz",
          dict(arrays, input_size=np.int32(MULTI_SCALE_SIZE)))
    if args.multi_scale_only:
        return
    for index, (family, reference_name) in enumerate(FAMILIES.items()):
        rng = np.random.default_rng(SEED + 1 + index)
        raw = make_raw_outputs(rng, end_to_end=family == "yolo26-seg")
        if family != "yolo26-seg":
            plant_edge_predictions(raw, images)
        _save(args.out_dir / f"{family}.npz", make_family(family, reference_name, images, raw))


if __name__ == "__main__":
    main()
