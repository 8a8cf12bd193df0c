"""What a person reads while training runs: one compact line per epoch (``EpochLine``)."""

from __future__ import annotations

import sys
import time

import keras

from tfseg.train.callbacks import EVALUATED


class EpochLine(keras.callbacks.Callback):
    """One line per epoch: losses, lr and time, and the main metrics when evaluated, e.g.
    ``epoch 3/10  loss 36.1 (box 0.708 seg 7.19 cls 0.712 dfl 0.413)  lr 0.00143  5.2 s  val
    mask mAP50-95 0.412 mAP50 0.701  box mAP50-95 0.455 mAP50 0.733`` (YOLO26: l1, sem and
    o2o, the deployed one-to-one head's own loss, in place of dfl). During the epoch, a
    batch counter: overwritten in place on a terminal, else a line at most every
    ``every_s`` seconds (long epochs in a log file still show progress).

    Args:
        epochs: total epochs.
        steps: batches per epoch.
        stream: where to print (default stdout).
        every_s: seconds between batch lines when ``stream`` is not a terminal.
    """

    def __init__(self, epochs: int, steps: int, stream=None, every_s: float = 60.0):
        super().__init__()
        self.epochs, self.steps, self.stream = int(epochs), int(steps), stream or sys.stdout
        self.every_s = float(every_s)
        self._start = self._shown = time.perf_counter()
        self._epoch = 0
        self._live = bool(getattr(self.stream, "isatty", lambda: False)())

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._shown = time.perf_counter()
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if not self._live and now - self._shown < self.every_s:
            return
        self._shown = now
        loss = float((logs or {}).get("loss", float("nan")))
        text = (f"epoch {self._epoch + 1}/{self.epochs} batch {batch + 1}/{self.steps}  "
                f"loss {loss:.4g}  {now - self._start:.0f} s")
        self.stream.write(f"\r{text}" if self._live else f"  {text}\n")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        line = format_epoch_line(epoch, self.epochs, logs or {}, time.perf_counter() - self._start)
        self.stream.write(("\r" if self._live else "") + line + "\n")
        self.stream.flush()


def format_epoch_line(epoch: int, epochs: int, logs: dict, seconds: float) -> str:
    """The compact epoch line of EpochLine (see there)."""
    terms = " ".join(f"{t} {float(logs[f'{t}_loss']):.4g}" for t in ("box", "seg", "cls", "dfl", "l1", "sem", "o2o")
                     if f"{t}_loss" in logs)
    line = f"epoch {epoch + 1}/{epochs}  loss {float(logs.get('loss', float('nan'))):.4g}"
    line += f" ({terms})" if terms else ""
    line += f"  lr {float(logs['lr']):.3g}" if "lr" in logs else ""
    line += f"  {seconds:.1f} s"
    dropped = int(float(logs.get("dropped_instances", 0.0)))
    if dropped:  # more instances than data.max_instances slots: the smallest were left out
        line += f"  {dropped} instances over data.max_instances left out"
    if logs.get(EVALUATED) == 1.0:
        line += "  val " + "  ".join(
            f"{kind} mAP50-95 {logs[f'val_{kind}_mAP50-95']:.3f} mAP50 {logs[f'val_{kind}_mAP50']:.3f}"
            for kind in ("mask", "box"))
    return line
