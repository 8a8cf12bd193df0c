"""A user's training journey, typed as commands: train, get killed, resume; extend a finished
run; fine-tune its weights on data with fewer classes. The installed ``tfseg`` runs as a
subprocess in a fresh folder on tiny generated data (64 px, two batches an epoch).

The tests of this module run in order and share one run (the first one's): killed, resumed,
finished, extended, then used as the start weights of a fine-tune. The kill is a SIGKILL
during the second epoch (once the first is backed up): the resumed run must end with every
batch of every epoch applied once, none lost with the killed process and none repeated.
"""

import csv
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from cli_runner import TFSEG, run_tfseg

pytestmark = pytest.mark.slow  # every test trains (64 px, a few steps)

# Small and fast: no XLA, no mosaic (each of its images needs 3 more), one batch per update.
FAST = ["imgsz=64", "batch=4", "steps_per_epoch=2", "jit_compile=false", "mosaic=0",
        "close_mosaic=0", "nominal_batch=0", "eval.batch=4", "eval.plots=false"]


def tfseg(*args, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_tfseg(cwd, *args, expect=None, timeout=timeout)


def rows(run: Path) -> list[dict]:
    with open(run / "results.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def epoch_lines(output: str) -> list[str]:
    return [line.split()[1] for line in output.splitlines() if line.startswith("epoch ")]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A fresh folder with two shapes datasets: 3 classes (ds3) and 2 classes (ds2)."""
    cwd = tmp_path_factory.mktemp("journey")
    for folder, classes in (("ds3", 3), ("ds2", 2)):
        done = tfseg("data", "shapes", "--output", folder, "shapes_train=8", "shapes_val=4",
                     "shapes_min_size=64", "shapes_max_size=64", f"shapes_num_classes={classes}",
                     cwd=cwd)
        assert done.returncode == 0, done.stderr
    return cwd


@pytest.fixture(scope="module")
def killed(workdir) -> dict:
    """`tfseg train` of 3 epochs killed with SIGKILL once its first epoch is backed up."""
    run = workdir / "runs" / "train" / "a"
    metadata = run / "backup" / "training_metadata.json"
    process = subprocess.Popen([*TFSEG, "train", "data.root=ds3", "epochs=3", "name=a", *FAST],
                               cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    deadline = time.monotonic() + 300
    while not metadata.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert process.poll() is None, process.communicate()[0][-3000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done = json.loads(metadata.read_text())["epoch"]
    assert 1 <= done < 3, f"killed after {done} epochs"
    return {"run": run, "done": done, "rows": rows(run)}


def test_sigkill_then_resume_continues_and_keeps_the_history(workdir, killed):
    run, done = killed["run"], killed["done"]
    result = tfseg("train", f"resume={run}", cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # It continues after the backed-up epoch, it does not start again at epoch 1.
    assert epoch_lines(result.stdout) == [f"{e}/3" for e in range(done + 1, 4)]
    history = rows(run)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2]
    assert history[:done] == killed["rows"][:done]  # the rows written before the kill
    assert float(history[-1]["val_mask_mAP50-95"]) >= 0.0  # the last epoch was evaluated
    assert all(float(r["box_loss"]) > 0 for r in history)
    # Every batch applied once: the killed epoch ran again from its start, and the
    # optimizer's restored step count adds up to 3 epochs of 2 batches, one update each.
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["epochs_trained"] == 3 - done and summary["stopped"] == "completed"
    assert (summary["batches"], summary["updates"]) == (3 * 2, 3 * 2)
    assert "last evaluation (epoch 3, EMA weights)" in result.stdout
    assert "mAP50-95" in result.stdout and (run / "results.png").is_file()


def test_resume_a_finished_run_says_so_or_trains_the_extra_epochs(workdir, killed):
    run = killed["run"]
    before = rows(run)
    finished = tfseg("train", f"resume={run}", cwd=workdir)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert f"{run} has finished its 3 epochs" in finished.stdout
    assert rows(run) == before

    refused = tfseg("train", f"resume={run}", "optimizer=sgd", "lr0=0.5", cwd=workdir)
    assert refused.returncode == 2
    assert "cannot change train.optimizer=sgd" in refused.stderr and "train.lr0=0.5" in refused.stderr

    extended = tfseg("train", f"resume={run}", "epochs=4", cwd=workdir)
    assert extended.returncode == 0, extended.stdout[-3000:] + extended.stderr[-3000:]
    assert "resume: train.epochs 3 -> 4" in extended.stdout
    assert epoch_lines(extended.stdout) == ["4/4"]
    history = rows(run)
    assert [int(r["epoch"]) for r in history] == [0, 1, 2, 3]
    assert history[:3] == before
    assert "epochs: 4" in (run / "config.yaml").read_text()


def test_finetune_on_fewer_classes_and_eval_period_above_patience(workdir, killed):
    refused = tfseg("train", "data.root=ds2", "lr0=0.002", *FAST, cwd=workdir)
    assert refused.returncode == 2 and "set optimizer=adamw or optimizer=sgd" in refused.stderr
    weights = killed["run"] / "weights" / "best.weights.h5"
    # As the README's fine-tune line: weights=, freeze=10, optimizer=adamw lr0=0.002.
    result = tfseg("train", "data.root=ds2", f"weights={weights}", "freeze=10", "optimizer=adamw",
                   "lr0=0.002", "epochs=2", "patience=1", "eval_period=2", "ema=false",
                   "name=ft", *FAST, cwd=workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"fine-tuning from {weights}" in result.stdout and "re-initialised" in result.stdout
    assert "optimizer: adamw lr0=0.002 " in result.stdout
    run = workdir / "runs" / "train" / "ft"
    assert json.loads((run / "classes.json").read_text())["class_names"] == ["circle", "rectangle"]
    # patience 1 < eval_period 2: the run still reaches its evaluation at epoch 2.
    history = rows(run)
    assert [int(r["epoch"]) for r in history] == [0, 1]
    assert history[0]["val_mask_mAP50-95"] == "" and float(history[1]["val_mask_mAP50-95"]) >= 0
    # ema=false: no average kept (the first run, with the default, has one).
    assert not (run / "backup" / "ema.npz").exists()
    assert (killed["run"] / "backup" / "ema.npz").is_file()
    assert "last evaluation (epoch 2, weights)" in result.stdout


def test_benchmark_train_measures_the_default_precision_on_the_users_data(workdir):
    """`tfseg benchmark train data.root=...`: whole epochs of the user's dataset, then the
    step alone, under the precision `tfseg train` would pick here, written as JSON; the
    training's keys (here the decoded-image cache) reach the measured run."""
    from tfseg.train.precision import precision_policy

    done = tfseg("benchmark", "train", "--sizes", "64", "--batch", "4", "--epochs", "2",
                 "--runs", "2", "--output", "bench.json", "data.root=ds3", "steps_per_epoch=2",
                 "eval.plots=false", "data.cache=ram", cwd=workdir, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    [result] = json.loads((workdir / "bench.json").read_text())
    assert Path(result["data_root"]) == (workdir / "ds3").resolve()
    assert result["precision"] == precision_policy(True)  # what train picks on this machine
    assert (result["size"], result["batch"], result["epochs_timed"]) == (64, 4, 1)
    # The training pass alone is part of the whole epoch, which adds the evaluation.
    assert 0 < result["images_per_second"] <= result["train_pass_images_per_second"]
    assert result["eval_seconds"] >= 0 and result["first_epoch_seconds"] > 0
    assert result["setup_seconds"] > 0 and result["cache"] == "ram"
    assert "cache=ram: " in done.stdout  # what the cache needs, printed before training
    assert "step_synthetic_m100_images_per_second" not in result  # --padding only
    assert result["step_images_per_second"] > 0 and result["cpu_seconds_per_step"] > 0
    assert result["peak_rss_mb"] > 300  # TensorFlow alone holds more than this
    assert result["dropped_instances_per_epoch"] == 0
