"""Resuming a run: its saved config with the changes a resume may make, and where it stands.

No TensorFlow here: ``tfseg train resume=...`` answers "finished" or refuses a recipe change
before anything heavy is imported.
"""

from __future__ import annotations

import json
from pathlib import Path

from tfseg.config.load import LEAF_KEYS, load_config
from tfseg.config.schema import RunConfig
from tfseg.errors import ConfigError
from tfseg.runs import CONFIG_FILE, WEIGHTS_DIR, save_config

# Keys a resumed run may change: they change neither the recipe nor the saved state's shape
# (the data paths: a dataset moved to another disk); predict.* and export.* too (training
# does not read them). Any other change is refused.
RESUME_CHANGEABLE = ("train.epochs", "train.patience", "train.eval_period", "train.jit_compile",
                     "data.prepare_workers", "data.root", "data.records", "data.train_images",
                     "data.train_annotations", "data.val_images", "data.val_annotations",
                     "eval.batch", "eval.plots")


def resumed_config(cfg: RunConfig, run_dir: Path) -> RunConfig:
    """The resumed run's own config (its recipe must not change midway) with the changes
    ``cfg`` makes to the keys of RESUME_CHANGEABLE (printed; config.yaml updated).

    Raises:
        ConfigError: no config.yaml; ``cfg`` changes any other key (all named).
    """
    saved_path = run_dir / CONFIG_FILE
    if not saved_path.is_file():
        raise ConfigError(f"train.resume: {run_dir} has no {CONFIG_FILE}; is it a run directory?")
    resumed = load_config([f"cfg={saved_path}"], section="train")
    changed = {key: (_get(resumed, key), _get(cfg, key)) for key in LEAF_KEYS
               if key != "train.resume" and _get(resumed, key) != _get(cfg, key)}
    refused = [f"{k}={new} (run: {old})" for k, (old, new) in changed.items()
               if k not in RESUME_CHANGEABLE and not k.startswith(("predict.", "export."))]
    if refused:
        raise ConfigError(f"train.resume: a resumed run keeps its recipe; cannot change "
                          f"{', '.join(refused)}. Allowed: {', '.join(RESUME_CHANGEABLE)}, "
                          f"predict.*, export.*. To change the others, start a new run from "
                          f"its weights: weights={run_dir / WEIGHTS_DIR / 'last.weights.h5'}")
    for key, (old, new) in changed.items():
        section, leaf = key.split(".")
        setattr(getattr(resumed, section), leaf, new)
        print(f"resume: {key} {old} -> {new}", flush=True)
    if changed:
        save_config(run_dir, resumed)
    resumed.train.resume = str(run_dir)
    return resumed


def _get(cfg: RunConfig, dotted: str):
    section, _, leaf = dotted.partition(".")
    return getattr(getattr(cfg, section), leaf) if leaf else getattr(cfg, section)


def epochs_done(run_dir: Path) -> int:
    """Epochs a run's backup holds (0: none trained yet).

    Raises:
        ConfigError: the run trained epochs but has no backup (a run finished by a tfseg that
            deleted it at the end): resuming would restart it from epoch 0 over its results.
    """
    metadata = run_dir / "backup" / "training_metadata.json"
    if metadata.is_file():
        return int(json.loads(metadata.read_text())["epoch"])
    if (run_dir / WEIGHTS_DIR / "last.weights.h5").is_file():
        raise ConfigError(f"train.resume: {run_dir} has trained epochs but no backup/ to resume "
                          f"from (its backup was removed when it finished); start a new run "
                          f"from its weights: weights={run_dir / WEIGHTS_DIR / 'last.weights.h5'}")
    return 0


def finished_message(run_dir: Path, epochs: int) -> str:
    """What to tell the user when the run already trained ``epochs`` epochs; "" otherwise.

    Raises:
        ConfigError: see epochs_done.
    """
    done = epochs_done(run_dir)
    if done < epochs:
        return ""
    return (f"{run_dir} has finished its {done} epochs: nothing to resume. To train more, "
            f"give a larger epochs, e.g. tfseg train resume={run_dir} "
            f"epochs={done + max(done // 2, 1)}")
