"""The tf.distribute strategy of a training run, the per-replica batch and input sharding.

Strategies (``train.strategy``):

* ``default``: one device (CPU or the first GPU).
* ``mirrored``: ``MirroredStrategy`` over the local GPUs (all-reduce per step).
* ``multi_worker``: ``MultiWorkerMirroredStrategy``; each worker process reads its role from
  the ``TF_CONFIG`` environment variable (``{"cluster": {"worker": [host:port, ...]},
  "task": {"type": "worker", "index": i}}``) and runs the same command; worker 0 is the chief
  and the only one that writes checkpoints and logs into the run directory.
* ``auto``: ``multi_worker`` when TF_CONFIG names more than one worker, ``mirrored`` when more
  than one GPU is visible, ``default`` otherwise.

TPUs: create ``tf.distribute.TPUStrategy(tf.distribute.cluster_resolver.TPUClusterResolver())``
after ``tf.config.experimental_connect_to_cluster`` and ``initialize_tpu_system`` and pass it
to ``tfseg.train.fit.train(..., strategy=...)``; the pipeline has fixed shapes and no
``py_function``, which TPUs require; use ``train.mixed_precision`` (bfloat16 there).

Batch and learning rate: ``train.batch`` is the *global* batch, split evenly across
replicas (``per_replica_batch``). The learning rate is *not* rescaled with the replica count:
each replica's loss sums over its images and Keras sums the replicas' gradients, so one update
on R replicas is the reference's DDP update on the same global batch (which multiplies its
replica-averaged gradient by the world size). Changing the global batch itself follows the
recipe's rule: up to the nominal 64 images gradients are accumulated to 64 (same update
size); above it the summed loss makes the update grow linearly with the batch (the
linear-scaling rule, built in) and the weight decay is scaled by ``batch / 64``.

Gradient accumulation and clipping under R > 1 replicas: Keras 3.15's own optimizer update
all-reduces the gradients inside a ``cond`` when accumulating (a ``merge_call`` in a cond,
which fails to trace without XLA) and after clipping (each replica clipped alone, so the
summed update could reach R times the clip norm). tfseg's optimizers (tfseg/train/optim.py)
sum the replicas' gradients first, outside any cond, then accumulate, scale, clip and update
on that sum, each replica on its own copy of the variables. So ``accumulate > 1``
(``train.batch`` < ~43 with ``train.nominal_batch=64``) trains on several GPUs or workers,
``train.clip_norm`` bounds the summed gradient as on one device, and R replicas make the
updates of one device on the same global batch (tests/train/test_distributed_optim.py:
MirroredStrategy on two logical CPUs and two MultiWorkerMirroredStrategy workers, SGD and
AdamW, within 1e-5). Not covered by a test: XLA-compiled steps on several GPUs.

Loss scale under R replicas: ``YoloSeg.compute_loss`` returns each replica's loss summed over
its own images (``per-replica batch * sum of the gained terms``), *not* divided by R (Keras'
``scale_loss_for_distribution`` convention is for mean losses). Keras all-reduces gradients by
SUM, so the applied gradient is that of the sum over the global batch, as on one device; and
Keras' loss tracker multiplies the returned loss by R and averages over replicas, so the logged
``loss`` is the global-batch value too (the per-term ``box_loss``... are replica means).

Input sharding: ``distributed_dataset`` hands ``build_dataset`` a ``tf.distribute.InputContext``
per input pipeline (one per worker), which shards the records and sizes the per-replica batch.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tfseg.errors import ConfigError

STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


def cluster_workers() -> int:
    """Workers named by TF_CONFIG (0 when it is unset or names no cluster)."""
    config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
    return len(config.get("cluster", {}).get("worker", []))


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """The strategy named by ``train.strategy`` (see the module docstring).

    Raises:
        ConfigError: unknown name, or multi_worker without a TF_CONFIG cluster.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"train.strategy: must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name == "auto":
        if cluster_workers() > 1:
            name = "multi_worker"
        elif len(tf.config.list_logical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "default"
    if name == "multi_worker":
        if cluster_workers() < 1:
            raise ConfigError("train.strategy=multi_worker needs TF_CONFIG with a cluster of "
                              "workers in the environment of every worker process")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def per_replica_batch(global_batch: int, strategy: tf.distribute.Strategy) -> int:
    """The batch each replica computes.

    Raises:
        ConfigError: the global batch does not split evenly.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch < replicas or global_batch % replicas:
        raise ConfigError(f"train.batch: the global batch {global_batch} must be a multiple of "
                          f"the {replicas} replicas in sync")
    return global_batch // replicas


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the process that writes checkpoints and logs (worker 0, or a single process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    return resolver.task_type in ("chief", None) or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in resolver.cluster_spec().as_dict())


def worker_index(strategy: tf.distribute.Strategy) -> int:
    """This process's worker index (0 on a single process)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(getattr(resolver, "task_id", 0) or 0) if resolver is not None else 0


def distributed_dataset(strategy: tf.distribute.Strategy, make_dataset):
    """``make_dataset(input_context) -> tf.data.Dataset`` distributed over the replicas.

    Each input pipeline calls ``make_dataset`` with its InputContext, so records are sharded
    per worker and batched per replica (``build_dataset(..., input_context=...)``).
    """
    if strategy.num_replicas_in_sync == 1 and cluster_workers() <= 1:
        return make_dataset(None)
    return strategy.distribute_datasets_from_function(make_dataset)


def prepare_fit(model, strategy: tf.distribute.Strategy) -> None:
    """Adapt ``model`` to Keras 3.15's ``fit`` under a multi-worker strategy (no-op otherwise).

    Two Keras limitations (tensorflow/tensorflow#72388):

    * a model created in a strategy scope is "symbolically built" on the first batch averaged
      (MEAN) across workers, which fails on the integer targets: clearing the model's strategy
      defers the build to the first trace, and ``fit`` takes the strategy from its scope;
    * the train function reduces the step's logs with ``strategy.reduce("MEAN", v, axis=0)``
      across workers, which cannot reduce a scalar metric result (``Invalid reduction
      dimension 0 for input with 0 dimensions``): the step returns scalars as ``[1]`` vectors,
      which that reduce turns back into scalars, the mean over replicas.

    Args:
        model: the compiled Keras model, before ``fit``.
        strategy: the strategy ``fit`` will run in.
    """
    if not strategy.extended._in_multi_worker_mode():
        return
    model._distribute_strategy = None
    train_step = model.train_step

    def train_step_with_vector_logs(data):
        logs = train_step(data)
        return {name: tf.reshape(value, [1]) if value.shape.rank == 0 else value
                for name, value in logs.items()}

    model.train_step = train_step_with_vector_logs
