"""Side-by-side tools for tfseg and an Ultralytics install (the optional torch extra).

Subcommands:
    convert IN.pt OUT.npz|OUT.safetensors
        Run where Ultralytics is installed. Unpickles an Ultralytics training checkpoint
        (``yolov8n-seg.pt``: a pickled model object, so only for files you trust) and writes
        its plain state dict (EMA weights when present) as tensors only, which
        ``tfseg import-weights`` reads without unpickling anything.
    compare CHECKPOINT.pt --model yolov8-seg-n [--size 640] [--image scene.png]
        Needs tfseg and Ultralytics in one environment: imports the checkpoint with tfseg,
        runs both networks on one image and prints the largest difference per raw output.
    bench-ours / bench-reference --model yolov8-seg-n --sizes 320 640 [--threads 2]
        Forward time (batch 1) of our Keras model (TF environment) or of the Ultralytics
        PyTorch model built from its YAML (torch environment); prints JSON lines.
    bench --torch-python PATH [--models ...] [--sizes ...]
        Runs bench-ours with this interpreter and bench-reference with PATH, one after
        the other on the same machine, and prints a table.

Nothing is downloaded: reference models are built from their YAML names (YOLO_OFFLINE=1).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REFERENCE_NAMES = {f"{family}-{scale}": pattern.format(scale)
                   for family, pattern in (("yolov8-seg", "yolov8{}-seg"), ("yolo11-seg", "yolo11{}-seg"))
                   for scale in "nsmlx"}


def _times_ms(run, warmup: int, repeats: int) -> dict:
    """Median and minimum wall time of ``run`` in ms; the minimum is the figure that
    survives a machine shared with other work."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"ms": round(1000.0 * statistics.median(times), 1),
            "min_ms": round(1000.0 * min(times), 1)}


def convert(source: Path, target: Path) -> None:
    """Ultralytics training checkpoint -> plain state dict of tensors (.npz or .safetensors)."""
    import numpy as np
    import torch

    checkpoint = torch.load(str(source), map_location="cpu", weights_only=False)  # trusted file
    model = checkpoint
    if isinstance(checkpoint, dict):  # Ultralytics keeps {"model", "ema", "optimizer", ...}
        model = checkpoint.get("ema") or checkpoint["model"]
    state = {k: v.detach().float().numpy() if v.is_floating_point() else v.numpy()
             for k, v in model.float().state_dict().items()}
    if target.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(state, str(target))
    else:
        np.savez(target, **state)
    print(f"wrote {len(state)} tensors to {target}")


def compare(checkpoint: Path, model_name: str, size: int, image: Path | None) -> None:
    """Raw-output parity of tfseg vs Ultralytics on one image (both installed here)."""
    import cv2
    import numpy as np
    import torch
    from ultralytics.nn.tasks import SegmentationModel

    from tfseg.model.import_ultralytics import apply_state_dict, infer_num_classes, read_checkpoint
    from tfseg.model.yolo_seg import build_model

    state = read_checkpoint(checkpoint) if checkpoint.suffix != ".pt" else None
    if state is None:
        converted = checkpoint.with_suffix(".npz")
        convert(checkpoint, converted)
        state = read_checkpoint(converted)
    classes = infer_num_classes(state)
    ours = build_model(model_name, classes, size)
    apply_state_dict(ours, state)
    reference = SegmentationModel(f"{REFERENCE_NAMES[model_name]}.yaml", nc=classes, verbose=False)
    reference.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    reference.eval()
    if image is None:
        pixels = np.random.default_rng(0).uniform(size=(size, size, 3)).astype(np.float32)
    else:
        pixels = cv2.resize(cv2.imread(str(image))[..., ::-1], (size, size)).astype(np.float32) / 255
    out = {k: np.asarray(v)[0] for k, v in ours(pixels[None]).items()}
    head = reference.model[-1]
    captured = {}
    head.register_forward_hook(lambda m, args, o: captured.update(x=args[0]))
    with torch.no_grad():
        reference(torch.from_numpy(pixels).permute(2, 0, 1)[None].contiguous())
        x = captured["x"]

        def flat(branches):
            return torch.cat([b(f).flatten(2) for b, f in zip(branches, x)], 2)[0].T.numpy()

        theirs = {"box_logits": flat(head.cv2), "class_logits": flat(head.cv3),
                  "mask_coefficients": flat(head.cv4),
                  "prototypes": head.proto(x[0])[0].permute(1, 2, 0).numpy()}
    for key, value in theirs.items():
        print(f"{key:18s} max |ours - reference| = {np.abs(out[key] - value).max():.2e}")


def bench_ours(model_name: str, sizes: list[int], threads: int, repeats: int) -> None:
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from tfseg.model.yolo_seg import build_model

    for size in sizes:
        model = build_model(model_name, 80, size)
        forward = tf.function(lambda images, m=model: m(images, training=False))
        images = tf.constant(np.random.default_rng(0).uniform(size=(1, size, size, 3)), tf.float32)
        times = _times_ms(lambda: [t.numpy() for t in forward(images).values()], 3, repeats)
        print(json.dumps({"impl": "tfseg keras (tf.function)", "model": model_name,
                          "size": size, "threads": threads, **times}))


def bench_reference(model_name: str, sizes: list[int], threads: int, repeats: int) -> None:
    import torch
    from ultralytics.nn.tasks import SegmentationModel

    torch.set_num_threads(threads)
    for fused in (False, True):
        model = SegmentationModel(f"{REFERENCE_NAMES[model_name]}.yaml", nc=80, verbose=False).eval()
        if fused:
            model = model.fuse(verbose=False)
        for size in sizes:
            images = torch.rand(1, 3, size, size)
            with torch.inference_mode():
                times = _times_ms(lambda: model(images), 3, repeats)
            print(json.dumps({"impl": f"ultralytics torch{' fused' if fused else ''}",
                              "model": model_name, "size": size, "threads": threads, **times}))


def bench(torch_python: str, models: list[str], sizes: list[int], threads: int,
          repeats: int) -> None:
    rows = []
    for model_name in models:
        for python, mode in ((sys.executable, "bench-ours"), (torch_python, "bench-reference")):
            command = [python, __file__, mode, "--model", model_name, "--threads", str(threads),
                       "--repeats", str(repeats), "--sizes", *map(str, sizes)]
            env = {**os.environ, "YOLO_OFFLINE": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
            result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
            rows += [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    print(f"{'model':14s} {'size':>5s} {'implementation':28s} {'median ms':>10s} {'min ms':>8s}")
    for row in rows:
        print(f"{row['model']:14s} {row['size']:5d} {row['impl']:28s} {row['ms']:10.1f} "
              f"{row['min_ms']:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("convert")
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p = sub.add_parser("compare")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--model", required=True, choices=sorted(REFERENCE_NAMES))
    p.add_argument("--size", type=int, default=640)
    p.add_argument("--image", type=Path)
    for name in ("bench-ours", "bench-reference", "bench"):
        p = sub.add_parser(name)
        if name == "bench":
            p.add_argument("--torch-python", required=True)
            p.add_argument("--models", nargs="+", default=["yolov8-seg-n", "yolo11-seg-n"])
        else:
            p.add_argument("--model", required=True, choices=sorted(REFERENCE_NAMES))
        p.add_argument("--sizes", type=int, nargs="+", default=[320, 640])
        p.add_argument("--threads", type=int, default=2)
        p.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if args.command == "convert":
        convert(args.source, args.target)
    elif args.command == "compare":
        compare(args.checkpoint, args.model, args.size, args.image)
    elif args.command == "bench":
        bench(args.torch_python, args.models, args.sizes, args.threads, args.repeats)
    else:
        run = bench_ours if args.command == "bench-ours" else bench_reference
        run(args.model, args.sizes, args.threads, args.repeats)


if __name__ == "__main__":
    main()
