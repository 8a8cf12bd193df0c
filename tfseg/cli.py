"""The ``tfseg`` command: argument parsing and dispatch to one module per verb.

Every verb takes ``key=value`` overrides of any config key (see tfseg/config/schema.py).
Verb modules are imported lazily, so ``tfseg --help`` does not load TensorFlow. Errors
caused by the user (TfsegError) print one line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from tfseg import __version__
from tfseg.errors import TfsegError

# verb -> (module with a ``run(args) -> int`` function, config section for bare keys, help)
VERBS = {
    "data": ("tfseg.commands.data", "data", "prepare, convert and view datasets"),
    "train": ("tfseg.commands.train", "train", "train a model"),
    "val": ("tfseg.commands.val", "eval", "COCO box and mask evaluation of a model"),
    "predict": ("tfseg.commands.predict", "predict", "predict on images, folders, video or a camera"),
    "track": ("tfseg.commands.track", "predict", "segment and track objects through a video (ByteTrack)"),
    "export": ("tfseg.commands.export", "export", "export to SavedModel (TF Serving) and TFLite"),
    "benchmark": ("tfseg.commands.benchmark", None, "measure data, train, model and post-processing speed"),
    "info": ("tfseg.commands.info", "model", "parameter counts and GFLOPs of models"),
    "import-weights": ("tfseg.commands.import_weights", "model", "import an Ultralytics checkpoint"),
    "demo": ("tfseg.demo", None, "the whole path on the built-in dataset, end to end"),
}

OVERRIDES_HELP = ("config overrides as key=value, e.g. model=yolo11-seg-n imgsz=320 epochs=10 "
                  "(any key of configs/train/default.yaml; cfg=my.yaml loads a file)")


def _add_verb_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    """Verb-specific flags; everything else is a key=value override."""
    if name == "data":
        parser.add_argument("action", choices=["shapes", "prepare", "convert", "view", "video"],
                            help="shapes: write the built-in dataset; prepare: COCO/YOLO files "
                                 "to TFDS records; convert: between COCO and YOLO-seg; view: PNG "
                                 "grid of augmented batches; video: a clip of moving shapes "
                                 "with ground-truth identities (MOTChallenge gt.txt)")
        parser.add_argument("--to", choices=["coco", "yolo"], help="convert: target format")
        parser.add_argument("--output", help="output folder (convert, shapes, video) or file (view)")
        parser.add_argument("--frames", type=int, default=300, help="video: frames (default 300)")
        parser.add_argument("--width", type=int, default=640, help="video: width (default 640)")
        parser.add_argument("--height", type=int, default=480, help="video: height (default 480)")
        parser.add_argument("--objects", type=int, default=10, help="video: shapes (default 10)")
        parser.add_argument("--seed", type=int, default=0, help="video: the same seed, the same clip")
    elif name == "benchmark":
        parser.add_argument("target", choices=["data", "train", "model", "postprocess", "export"],
                            help="what to measure")
        parser.add_argument("--sizes", type=int, nargs="+", default=[320, 640],
                            help="input sizes (default: 320 640)")
        parser.add_argument("--batch", type=int, default=8, help="batch size (data, train)")
        parser.add_argument("--runs", type=int, default=20, help="timed repetitions or batches")
        parser.add_argument("--epochs", type=int, default=3,
                            help="train: whole epochs per size (the first, tracing, is "
                                 "reported apart)")
        parser.add_argument("--padding", action="store_true",
                            help="train: also time the step on synthetic batches padded to "
                                 "M = 100 and M = 16 instances")
        parser.add_argument("--modes", nargs="+",
                            choices=["float32", "float16", "dynamic_int8", "int8"],
                            help="export: TFLite modes (default: all four)")
        parser.add_argument("--models", nargs="+", default=["yolov8-seg-n"],
                            help="export: architectures timed side by side, interleaved "
                                 "(e.g. yolo26-seg-n yolov8-seg-n yolo11-seg-n)")
        parser.add_argument("--work", help="export: keep the exported files here and reuse "
                                           "them on the next run")
        parser.add_argument("--threads", type=int, default=2,
                            help="TensorFlow threads (default 2; 0: TensorFlow's choice)")
        parser.add_argument("--output", help="also write the results to this JSON file")
    elif name == "import-weights":
        parser.add_argument("checkpoint", help="Ultralytics checkpoint (yolov8n-seg.pt, a "
                                               "state dict .pt, .safetensors or .npz)")
        parser.add_argument("--output", help="where to write the Keras weights (.weights.h5)")
    elif name == "export":
        parser.add_argument("--check-gpu", metavar="TFLITE",
                            help="report the GPU-delegate partitions of a .tflite file and exit")
    elif name == "demo":
        parser.add_argument("--quick", action="store_true",
                            help="a smaller run that fits in about 3 minutes (CI)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDES_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfseg",
        description="Instance segmentation (YOLOv8-, YOLO11- and YOLO26-seg) in TensorFlow/Keras: "
                    "train, evaluate, predict, export to TFLite and TF Serving.",
        epilog="Run 'tfseg <command> --help' for the options of a command. TFSEG_VERBOSE=1 "
               "shows TensorFlow's own C++ log lines, hidden by default.")
    parser.add_argument("--version", action="version", version=f"tfseg {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="command")
    verbs.required = True
    for name, (_, _, help_text) in VERBS.items():
        sub = verbs.add_parser(name, help=help_text, description=help_text)
        _add_verb_arguments(name, sub)
    return parser


def _quiet_tensorflow_logs() -> None:
    """Keep TensorFlow's C++ log lines (CPU instruction notes, oneDNN, CUDA plugin
    registration) out of the user's console, before TensorFlow is imported.

    They are written for TensorFlow's developers, and on GPU machines some of them come at
    the error level, so only level 3 (fatal only) hides them all; a real failure still
    reaches the user as a Python exception. ``TFSEG_VERBOSE=1`` shows them again, and a
    ``TF_CPP_MIN_LOG_LEVEL`` the user set is left as it is.
    """
    if os.environ.get("TFSEG_VERBOSE", "0") not in ("", "0"):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come before or after a verb's flags; argparse leaves the ones
    # after a flag unparsed, so collect them here.
    args, extra = parser.parse_known_args(argv)
    unknown = [item for item in extra if item.startswith("-") or "=" not in item]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    args.overrides = list(args.overrides) + extra
    module_name, section, _ = VERBS[args.verb]
    args.section = section
    _quiet_tensorflow_logs()
    try:
        module = importlib.import_module(module_name)
        return int(module.run(args) or 0)
    except TfsegError as err:
        print(f"tfseg {args.verb}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tfseg {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
