"""``tfseg train``: a new run directory (or the one being resumed), then tfseg.train.fit."""

from __future__ import annotations

from pathlib import Path

from tfseg.commands.datasets import ensure_dataset
from tfseg.config import load_config
from tfseg.runs import new_run_dir, save_config


def run(args) -> int:
    cfg = load_config(args.overrides, section="train")
    if cfg.train.resume:
        run_dir = Path(cfg.train.resume)
    else:
        ensure_dataset(cfg.data)
        run_dir = new_run_dir(cfg.project, "train", cfg.name)
        save_config(run_dir, cfg)
    from tfseg.train.fit import train

    result = train(cfg, run_dir)
    print(f"run directory: {run_dir}")
    return 0 if result is not None else 1
