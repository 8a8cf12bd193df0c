"""NesterovSGD and GroupedAdamW under MirroredStrategy on two logical CPUs: gradient
accumulation traces and runs, clipping bounds the replicas' summed gradient, and two replicas
make the updates of one device on the same global batch.

Logical devices must be configured before TensorFlow initialises, which other tests of this
pytest process have done: the training runs in a child process (this file run as a script),
which saves what it saw into an .npz the tests read. Two worker processes on localhost
(MultiWorkerMirroredStrategy, one replica each) run the same accumulating fit.

The model is two Dense layers whose ``compute_loss`` sums squared errors over the replica's
own batch (tfseg's convention, not divided by the replica count), so the replicas' summed
gradient is the global batch's, exactly as on one device.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # child processes that load TensorFlow and train

OPTIMIZERS = ("sgd", "adamw")
BATCHES = 6  # global batches of GLOBAL_BATCH per run; ACCUMULATE batches per update
GLOBAL_BATCH = 4
ACCUMULATE = 2
CLIP = 0.5  # below the scaled gradient's norm on this data, so clipping acts


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("distributed_optim") / "runs.npz"
    done = subprocess.run([sys.executable, __file__, str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    with np.load(out) as saved:
        return dict(saved)


def test_accumulating_fit_on_two_replicas_matches_one_device(runs):
    for name in OPTIMIZERS:
        two, one = runs[f"{name}/mirrored/weights"], runs[f"{name}/one/weights"]
        assert two.shape == (BATCHES, one.shape[1])
        np.testing.assert_allclose(two, one, atol=1e-5, err_msg=name)
        # The comparison means something: every update moved the weights well beyond 1e-5.
        moves = np.abs(np.diff(np.vstack([runs["initial"], one[1::ACCUMULATE]]), axis=0))
        assert (moves.max(axis=1) > 1e-3).all(), name


def test_accumulated_update_is_one_update_on_the_combined_batch(runs):
    # gradient_scale = ACCUMULATE: the mean of two batches' summed gradients times 2 is the
    # gradient of their union, so one device on batch 8 without accumulation makes the same
    # updates (clipped alike, same Adam step count), and nothing moves in between.
    for name in OPTIMIZERS:
        two, combined = runs[f"{name}/mirrored/weights"], runs[f"{name}/combined/weights"]
        np.testing.assert_allclose(two[1::ACCUMULATE], combined, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(two[0], runs["initial"])
        np.testing.assert_array_equal(two[2], two[1])
        np.testing.assert_array_equal(two[4], two[3])


def test_iterations_count_updates_and_batches_on_both_strategies(runs):
    for name in OPTIMIZERS:
        for strategy in ("mirrored", "one"):
            counters = runs[f"{name}/{strategy}/counters"]  # [batch, (iterations, _iterations)]
            np.testing.assert_array_equal(counters[:, 0], [0, 1, 1, 2, 2, 3])
            np.testing.assert_array_equal(counters[:, 1], [1, 2, 3, 4, 5, 6])


def test_replicas_keep_identical_copies(runs):
    # Each replica updates its own copy of the variables from the same summed gradients.
    for name in OPTIMIZERS:
        copies = runs[f"{name}/mirrored/replica_copies"]  # [2, weights + optimizer variables]
        np.testing.assert_array_equal(copies[0], copies[1], err_msg=name)


def test_resume_in_the_middle_of_an_accumulation_on_two_replicas(runs):
    # 3 batches (the 3rd accumulated, not applied), weights + optimizer saved with
    # save_weights, restored into a fresh model and optimizer, 3 more batches.
    for name in OPTIMIZERS:
        np.testing.assert_allclose(runs[f"{name}/resumed/weights"],
                                   runs[f"{name}/mirrored/weights"][-1], atol=1e-6)
        np.testing.assert_array_equal(runs[f"{name}/resumed/counters"], [3, 6])


def test_global_clip_bounds_the_sum_of_the_replicas_gradients(runs):
    # SGD, rate 1, no momentum: the update is minus the clipped summed gradient.
    # Replicas [3, 0] and [0, 4], clip 4.5: each under the clip, the sum [3, 4] (norm 5) over
    # it: [3, 4] * 4.5 / 5. Replicas [5, 0] and [-4, 0], clip 2: each over the clip (clipped
    # alone they would cancel), the sum [1, 0] under it.
    np.testing.assert_allclose(runs["clip/under_each_over_sum"], [-2.7, -3.6], atol=1e-6)
    np.testing.assert_allclose(runs["clip/over_each_under_sum"], [-1.0, 0.0], atol=1e-6)


@pytest.fixture(scope="module")
def workers(tmp_path_factory) -> list[dict]:
    """What each of two workers (MultiWorkerMirroredStrategy via TF_CONFIG) saw."""
    folder = tmp_path_factory.mktemp("workers")
    sockets = [socket.create_server(("localhost", 0)) for _ in range(2)]
    cluster = [f"localhost:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    processes = []
    for index in range(2):
        tf_config = {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(
            [sys.executable, __file__, str(folder / f"worker{index}.npz"), "--worker"],
            env=dict(os.environ, TF_CONFIG=json.dumps(tf_config)), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    outputs = [p.communicate(timeout=300)[0] for p in processes]
    for p, output in zip(processes, outputs):
        assert p.returncode == 0, output[-4000:]
    results = []
    for index in range(2):
        with np.load(folder / f"worker{index}.npz") as saved:
            results.append(dict(saved))
    return results


def test_accumulating_fit_on_two_workers_matches_one_device(workers, runs):
    for name in OPTIMIZERS:
        for worker in workers:
            np.testing.assert_allclose(worker[f"{name}/weights"], runs[f"{name}/one/weights"],
                                       atol=1e-5, err_msg=name)
            np.testing.assert_array_equal(worker[f"{name}/counters"],
                                          runs[f"{name}/one/counters"])


# ---- the child processes --------------------------------------------------------------------

def _job(out: str) -> None:
    """Two logical CPUs: MirroredStrategy and one-device fits, resume, clip cases."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    x, y, initial = _data()
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    one = tf.distribute.get_strategy()
    results = {"initial": np.concatenate([w.ravel() for w in initial])}
    for name in OPTIMIZERS:
        for label, strategy, batch, accumulate in (("mirrored", mirrored, GLOBAL_BATCH, ACCUMULATE),
                                                   ("one", one, GLOBAL_BATCH, ACCUMULATE),
                                                   ("combined", one, GLOBAL_BATCH * 2, None)):
            model, record = _compiled(name, strategy, initial, accumulate)
            model.fit(x, y, batch_size=batch, shuffle=False, verbose=0, callbacks=[record])
            results[f"{name}/{label}/weights"] = np.array(record.snapshots)
            results[f"{name}/{label}/counters"] = np.array(record.counters)
            if label == "mirrored":
                results[f"{name}/mirrored/replica_copies"] = _replica_copies(model, strategy)
        results[f"{name}/resumed/weights"], results[f"{name}/resumed/counters"] = _resumed(
            name, mirrored, initial, x, y, Path(out).with_name(f"{name}.weights.h5"))
    results.update(_clip_cases(mirrored))
    np.savez(out, **results)


def _data():
    """(x [24, 3], y [24, 2], the model's initial weights), the same in every process."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCHES * GLOBAL_BATCH, 3)).astype("float32")
    y = rng.normal(size=(BATCHES * GLOBAL_BATCH, 2)).astype("float32")
    initial = [rng.normal(size=s).astype("float32") for s in ((3, 4), (4,), (4, 2), (2,))]
    return x, y, initial


def _worker_job(out: str) -> None:
    """One of two workers: each global batch of 4, the first (worker 0) or last two rows."""
    import tensorflow as tf

    from tfseg.train.strategy import prepare_fit

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    x, y, initial = _data()

    def worker_batches(context):
        rows = slice(context.input_pipeline_id, None, context.num_input_pipelines)
        batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
        return batches.map(lambda a, b: (a[rows], b[rows]))

    results = {}
    for name in OPTIMIZERS:
        model, record = _compiled(name, strategy, initial, ACCUMULATE)
        prepare_fit(model, strategy)  # tfseg's Keras 3.15 multi-worker workarounds
        with strategy.scope():
            model.fit(strategy.distribute_datasets_from_function(worker_batches),
                      steps_per_epoch=BATCHES, verbose=0, callbacks=[record])
        results[f"{name}/weights"] = np.array(record.snapshots)
        results[f"{name}/counters"] = np.array(record.counters)
    np.savez(out, **results)


def _compiled(name, strategy, initial, accumulate):
    import keras
    import tensorflow as tf

    from tfseg.train.optim import GroupedAdamW, NesterovSGD

    class SumOfSquares(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return tf.reduce_sum(tf.square(y_pred - y))  # this replica's batch sum

    class Record(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.snapshots, self.counters = [], []

        def on_train_batch_end(self, batch, logs=None):
            self.snapshots.append(np.concatenate([w.ravel() for w in self.model.get_weights()]))
            optimizer = self.model.optimizer
            self.counters.append((int(optimizer.iterations.numpy()),
                                  int(optimizer._iterations.numpy())))

    common = dict(learning_rate=0.05, kernel_decay=0.01, global_clipnorm=CLIP,
                  gradient_scale=float(accumulate or 1), gradient_accumulation_steps=accumulate)
    with strategy.scope():
        inputs = keras.Input((3,))
        hidden = keras.layers.Dense(4, activation="tanh")(inputs)
        model = SumOfSquares(inputs, keras.layers.Dense(2)(hidden))
        model.set_weights(initial)
        optimizer = (NesterovSGD(momentum=0.9, **common) if name == "sgd" else
                     GroupedAdamW(beta_1=0.9, **common))
        model.compile(optimizer=optimizer)
    return model, Record()


def _replica_copies(model, strategy) -> np.ndarray:
    """[replicas, all values]: each replica's copy of the weights and optimizer variables."""
    variables = model.trainable_variables + model.optimizer.variables
    per_replica = [strategy.experimental_local_results(v.value) for v in variables]
    return np.array([np.concatenate([np.ravel(copies[r]) for copies in per_replica])
                     for r in range(strategy.num_replicas_in_sync)])


def _resumed(name, strategy, initial, x, y, path):
    half = BATCHES // 2 * GLOBAL_BATCH
    first, _ = _compiled(name, strategy, initial, ACCUMULATE)
    first.fit(x[:half], y[:half], batch_size=GLOBAL_BATCH, shuffle=False, verbose=0)
    first.save_weights(str(path))  # weights and optimizer variables (as BackupAndRestore)
    second, record = _compiled(name, strategy, initial, ACCUMULATE)
    with strategy.scope():
        second.optimizer.build(second.trainable_variables)
    second.load_weights(str(path))
    second.fit(x[half:], y[half:], batch_size=GLOBAL_BATCH, shuffle=False, verbose=0,
               callbacks=[record])
    return record.snapshots[-1], np.array(record.counters[-1])


def _clip_cases(strategy) -> dict:
    """The variable after one SGD step (rate 1) on per-replica gradients under a clip."""
    import keras
    import tensorflow as tf

    from tfseg.train.optim import NesterovSGD

    results = {}
    for label, grads, clip in (("under_each_over_sum", [[3.0, 0.0], [0.0, 4.0]], 4.5),
                               ("over_each_under_sum", [[5.0, 0.0], [-4.0, 0.0]], 2.0)):
        with strategy.scope():
            variable = keras.Variable([0.0, 0.0], name="kernel")
            sgd = NesterovSGD(learning_rate=1.0, momentum=0.0, kernel_decay=0.0,
                              global_clipnorm=clip)
            sgd.build([variable])
        table = tf.constant(grads)

        @tf.function
        def step():
            def replica_step():
                replica = tf.distribute.get_replica_context().replica_id_in_sync_group
                sgd.apply([table[replica]], [variable])
            strategy.run(replica_step)

        step()
        results[f"clip/{label}"] = variable.numpy()
    return results


if __name__ == "__main__":
    (_worker_job if "--worker" in sys.argv else _job)(sys.argv[1])
