"""A real training process killed with SIGKILL mid-epoch resumes to the same end state."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

JOB = Path(__file__).with_name("training_job.py")


def _write(path: Path, config: dict) -> Path:
    path.write_text(json.dumps(config))
    return path


def _summary(output: str) -> dict:
    line = next(l for l in output.splitlines() if l.startswith("SUMMARY "))
    return json.loads(line[len("SUMMARY "):])


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_with_all_steps_and_a_gapless_history(shapes_root, tmp_path,
                                                                                  make_config,
                                                                                  run_config):
    run_dir = tmp_path / "run"
    config = make_config(shapes_root, **{"train.epochs": 4, "train.steps_per_epoch": 3,
                                         "train.eval_period": 2})
    config_file = _write(tmp_path / "config.json", config)
    marker = tmp_path / "paused"
    first = subprocess.Popen([sys.executable, str(JOB), str(config_file), str(run_dir),
                              "--pause-at", f"2,1,{marker}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 400
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert marker.exists(), first.communicate()[0][-3000:] if first.poll() is not None else "no pause"
    os.kill(first.pid, signal.SIGKILL)  # mid-epoch 3 of 4: batch 2 of 3 done
    first.wait()

    backup = run_dir / "backup"
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 2
    rows_before = list(csv.DictReader(open(run_dir / "results.csv")))
    assert [int(r["epoch"]) for r in rows_before] == [0, 1]

    # The resumed run reads its own config.yaml, as `tfseg train train.resume=<dir>` does.
    from tfseg.config.load import dump_config
    (run_dir / "config.yaml").write_text(dump_config(run_config(config)))
    resumed = dict(config, **{"train.resume": str(run_dir)})
    result = subprocess.run([sys.executable, str(JOB), str(_write(tmp_path / "r.json", resumed)),
                             str(run_dir), "--save-raw", str(tmp_path / "raw.npz")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = _summary(result.stdout)
    assert summary["batches"] == 4 * 3 and summary["updates"] == 4 * 3
    assert summary["epochs_trained"] == 2  # epochs 3 and 4 (index 2, 3) were run again
    rows = list(csv.DictReader(open(run_dir / "results.csv")))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3]
    assert all(r["box_loss"] not in ("", "NA") and float(r["box_loss"]) > 0 for r in rows)
    # The last evaluation (epoch 4) is in the history; the checkpoint exists and loads.
    assert float(rows[-1]["val_mask_mAP50"]) >= 0.0
    assert (run_dir / "weights" / "last.weights.h5").is_file()
    assert len(np.load(tmp_path / "raw.npz").files) > 100
