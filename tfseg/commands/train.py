"""``tfseg train``: dataset and records ready, a new run directory (or the one resumed), fit."""

from __future__ import annotations

from pathlib import Path

from tfseg.commands.models import load_run_config, prepared_dataset
from tfseg.runs import CLASSES_FILE, CONFIG_FILE, new_run_dir, save_config, write_json


def run(args) -> int:
    overrides = list(args.overrides)
    resume = next((v for k, _, v in (o.partition("=") for o in overrides)
                   if k in ("resume", "train.resume")), "")
    if resume:
        # A resumed run continues with the config it was started with; the overrides given
        # with resume= are checked against it in tfseg.train.fit (allowed ones applied).
        cfg = load_run_config([f"cfg={Path(resume) / CONFIG_FILE}", *overrides], "train")
        run_dir = Path(resume)
        # Before TensorFlow loads: refuse recipe changes, or say the run is finished.
        from tfseg.train.resume import finished_message, resumed_config

        cfg = resumed_config(cfg, run_dir)
        message = finished_message(run_dir, cfg.train.epochs)
        if message:
            print(message)
            return 0
    else:
        cfg = load_run_config(overrides, "train")
        cfg, _, classes = prepared_dataset(cfg)
        run_dir = new_run_dir(cfg.project, "train", cfg.name)
        save_config(run_dir, cfg)
        write_json(run_dir / CLASSES_FILE, classes)
    from tfseg.config.recipes import recipe_line
    from tfseg.train.fit import train

    print(recipe_line(cfg))
    result = train(cfg, run_dir)
    if result.get("stopped") != "finished":
        print(f"run directory: {run_dir}")
    return 1 if result.get("stopped") == "nan" else 0
