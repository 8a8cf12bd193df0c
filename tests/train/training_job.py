"""A training run in its own process, for the resume and multi-worker tests.

Usage: python training_job.py <config.json> <run_dir> [--pause-at EPOCH,BATCH,MARKER]
    [--save-raw PATH]

config.json: {"section.key": value} set on a default RunConfig. --pause-at writes MARKER
when batch BATCH of epoch EPOCH ends, then sleeps (the test kills the process there).
--save-raw writes the raw (non-EMA) weights at the end as an .npz.
"""

import json
import sys
import time
from pathlib import Path

import keras
import numpy as np

from tfseg.config.schema import RunConfig
from tfseg.train.fit import train


class PauseAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch, marker):
        super().__init__()
        self.epoch, self.batch, self.marker, self.current = epoch, batch, Path(marker), -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            self.marker.write_text("paused")
            time.sleep(600)


class SaveRaw(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_end(self, logs=None):
        np.savez(self.path, *[np.asarray(w) for w in self.model.weights])


def main(argv):
    cfg = RunConfig()
    for dotted, value in json.loads(Path(argv[1]).read_text()).items():
        section, key = dotted.split(".")
        setattr(getattr(cfg, section), key, value)
    extra = []
    if "--pause-at" in argv:
        epoch, batch, marker = argv[argv.index("--pause-at") + 1].split(",")
        extra.append(PauseAt(int(epoch), int(batch), marker))
    if "--save-raw" in argv:
        extra.append(SaveRaw(argv[argv.index("--save-raw") + 1]))
    summary = train(cfg, argv[2], verbose=2, extra_callbacks=extra)
    print("SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(sys.argv)
