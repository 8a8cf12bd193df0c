"""``tfseg data shapes|prepare|convert|view``."""

from __future__ import annotations

from pathlib import Path

from tfseg.commands.datasets import dataset_paths, ensure_dataset
from tfseg.config import load_config


def run(args) -> int:
    cfg = load_config(args.overrides, section="data")
    if args.action == "shapes":
        data = cfg.data
        if args.output:
            data.root = args.output
        if dataset_paths(data).train_annotations.is_file():
            print(f"already there: {dataset_paths(data).root} (delete it to write it again)")
        paths = ensure_dataset(data)
        print(f"shapes dataset: {paths.root}\n  train: {paths.train_annotations}\n"
              f"  val:   {paths.val_annotations}")
        return 0
    raise NotImplementedError(args.action)
