"""Training under the mixed policies `train.mixed_precision` (the default) picks: bfloat16 on
CPUs with bfloat16 math, float16 with loss scaling on GPUs. Both are forced here so they run
on any CPU (emulated where the CPU lacks the instructions), through `train` with gradient
accumulation and the EMA on, as a user's run has them."""

import math

import h5py
import keras
import numpy as np
import pytest

import tfseg.train.fit as fit
from tfseg.train.fit import train


class Seen(keras.callbacks.Callback):
    """What the fitted model computed in, which optimizer it updated with, its loss scale."""

    def on_train_end(self, logs=None):
        self.compute_dtype = self.model.get_layer("stem").compute_dtype
        self.optimizer = type(self.model.optimizer).__name__
        scale = getattr(self.model.optimizer, "dynamic_scale", None)
        self.loss_scale = None if scale is None else float(np.asarray(scale))
        self.weights = [np.asarray(w) for w in self.model.weights]


def _weight_dtypes(path) -> set:
    with h5py.File(path, "r") as handle:
        found = set()
        handle.visititems(lambda name, item: found.add(item.dtype.name)
                          if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("policy, optimizer, epochs", [("mixed_bfloat16", "GroupedAdamW", 1),
                                                       ("mixed_float16", "LossScaleOptimizer", 3)])
def test_a_mixed_policy_trains_with_accumulation_and_ema_and_saves_float32_weights(
        policy, optimizer, epochs, shapes_root, tmp_path, make_config, run_config, monkeypatch,
        capsys):
    monkeypatch.setattr(fit, "precision_policy", lambda enabled: policy if enabled else "float32")
    # 4 batches of 8 an epoch, one update per 16 images: 2 updates an epoch.
    cfg = run_config(make_config(shapes_root, **{
        "train.mixed_precision": True, "train.epochs": epochs, "train.nominal_batch": 16,
        "train.ema": True}))
    seen = Seen()
    summary = train(cfg, tmp_path / "run", verbose=0, extra_callbacks=[seen])

    assert summary["stopped"] == "completed" and summary["precision"] == policy
    assert f"train.mixed_precision: {policy}" in capsys.readouterr().out
    assert seen.compute_dtype == policy.removeprefix("mixed_")
    assert seen.optimizer == optimizer  # float16 needs Keras' loss scaling, bfloat16 not
    batches, updates = summary["batches"], summary["updates"]
    if policy == "mixed_bfloat16":
        assert (batches, updates) == (4, 2)
    else:
        # Keras' dynamic loss scale starts at 2^15; our loss sums over the batch, so the
        # first batches' float16 gradients overflow and are skipped (not applied, not
        # accumulated) while the scale halves; then every batch is applied.
        assert seen.loss_scale < 2 ** 15
        assert 0 < batches < 4 * epochs and updates == batches // 2
    assert all(math.isfinite(v) for k, v in summary["metrics"].items() if k.endswith("_loss"))
    assert all(np.isfinite(w).all() for w in seen.weights)
    # Checkpoints hold float32 variables: predict, val and export build float32 models.
    for name in ("last.weights.h5", "best.weights.h5"):
        assert _weight_dtypes(tmp_path / "run" / "weights" / name) <= {"float32", "int64"}
