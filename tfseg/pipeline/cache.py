"""The decoded-image cache (``data.cache``): what it needs, whether that fits, where it lives.

With ``cache=ram`` or ``cache=disk`` the training pipeline (``build_dataset``) decodes each
record, removes its crowd regions and resizes it to long side S once, in the first pass over
the records, and keeps that sample; later passes shuffle the kept samples instead of decoding
again. One kept sample holds the image at long side S (h x w x 3 bytes), its masks bit-packed
8 to a byte (h x w x max(ceil(K / 8), 1) bytes) and, per instance, its class, box and area.

The need is computed from the records' heights, widths and instance counts (crowds left
out), read without decoding any image: all of them for a split of up to ``SAMPLED`` records,
else the first ``SAMPLED`` scaled to the split's size (TFDS writes records in an order shuffled
by key, so the first ones are a fair sample). It fits:

- ``ram``: when it is at most half of the memory available now (MemAvailable in
  /proc/meminfo): the other half is for the training step itself (GBs at 640 px), the shuffle
  and prefetch buffers.
- ``disk``: when it leaves at least ``DISK_RESERVE`` of the free space on the records' disk
  (checkpoints, logs).

Otherwise training stops before it starts with one line naming the need, what is available
and the other choices (``check_cache``).

The disk cache is tf.data's file cache, in a folder of the records' own version folder (so
records prepared again take their caches with them)::

    <records>/coco_segmentation/<version>/cache/<split>-<S>px-<digest>/pipeline<i>of<n>.*

``digest`` hashes the records' dataset_info.json and metadata.json (which holds the sources'
fingerprint, tfseg/data/fingerprint.py) and ``FORMAT``, so other records, another size or
another layout of the kept samples never read this one; ``i of n`` is the input pipeline
(multi-worker training shards the records, each worker caches its own share). tf.data writes
the first pass to temporary files (``pipeline0of1_0.data-...tempstate...`` and a
``pipeline0of1_0.lockfile``) and writes ``pipeline0of1.index`` only once the pass is complete;
a reader needs that index, so a cache cut short is never read: it is written again. An
iterator dropped before the end of its pass deletes its partial files (with a warning that
says so); a killed process leaves them, and tf.data's lockfile would then stop the next run
("concurrent caching iterator"), so ``disk_cache_prefix`` removes such remains when no other
living process holds the prefix's lock.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from tfseg.errors import ConfigError
from tfseg.ops.letterbox import letterbox_params
from tfseg.pipeline.decode import record_size

MODES = ("ram", "disk")
SAMPLED = 2000          # records read to compute the need (all of a smaller split)
RAM_SHARE = 0.5         # of MemAvailable, at most, for the cache
DISK_RESERVE = 1e9      # bytes of free space the disk cache leaves
FORMAT = 1              # bump when what a kept sample holds changes
# Per kept sample, beyond its tensors' bytes: 7 tensors' headers in memory, or their entries
# in the disk cache's index (measured: about 60 bytes a tensor on disk).
_SAMPLE_OVERHEAD = 7 * 64
_HELD_LOCKS: dict[str, object] = {}   # prefix -> open lock file, held for the process's life


@dataclass(frozen=True)
class CacheNeed:
    """Bytes a cache of ``images`` samples at long side ``size`` needs."""
    bytes: float
    images: int
    size: int

    def describe(self) -> str:
        return f"{_amount(self.bytes)} for {self.images} images at {self.size} px"


def _amount(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.1f} GB" if num_bytes >= 1e9 else f"{num_bytes / 1e6:.0f} MB"


def sample_bytes(height: tf.Tensor, width: tf.Tensor, instances: tf.Tensor,
                 size: int) -> tf.Tensor:
    """Bytes of the kept samples of images of these sizes (``[N]`` each, int) -> ``[N]`` float64.

    The sizes are the ones ``mosaic.resize_to_fit`` makes (``letterbox_params``); image and
    packed masks are uint8, and each instance keeps an int32 class, 4 float32 box
    coordinates and a float32 area.
    """
    _, new_h, new_w, _, _ = letterbox_params(height, width, size)
    pixels = tf.cast(new_h, tf.float64) * tf.cast(new_w, tf.float64)
    channels = tf.cast(3 + tf.maximum((instances + 7) // 8, 1), tf.float64)  # image + packed
    per_instance = tf.cast(instances, tf.float64) * (4 + 16 + 4)
    return pixels * channels + per_instance + (8 + 8 + _SAMPLE_OVERHEAD)  # image_id, size


def estimate_need(records: tf.data.Dataset, num_examples: int, size: int) -> CacheNeed:
    """The cache's need for ``num_examples`` records like those of ``records``.

    Args:
        records: prepared records (undecoded is enough: only ``decode.record_size`` is read).
        num_examples: the records in the split (or in this pipeline's share of it).
        size: S.
    """
    total, count = 0.0, 0
    sizes = records.take(SAMPLED).map(record_size, num_parallel_calls=tf.data.AUTOTUNE)
    for batch in sizes.batch(512):
        total += float(tf.reduce_sum(sample_bytes(batch["height"], batch["width"],
                                                  batch["instances"], size)))
        count += int(tf.shape(batch["height"])[0])
    return CacheNeed(total / max(count, 1) * num_examples, int(num_examples), size)


def refusal(mode: str, need: CacheNeed, available: float | None, disk_free: float | None = None
            ) -> str | None:
    """Why a cache of ``need`` does not fit, in one line; None when it fits.

    Args:
        mode: "ram" or "disk".
        need: the cache's need.
        available: ram: MemAvailable in bytes; disk: free bytes where the cache goes. None
            (unknown: no /proc/meminfo, a remote store) always fits.
        disk_free: ram only: free bytes for a disk cache, named in the line when it would fit.
    """
    if available is None:
        return None
    if mode == "ram":
        if need.bytes <= RAM_SHARE * available:
            return None
        other = ("cache=disk" + (f" ({_amount(disk_free)} free there)" if disk_free else "")
                 + " or cache=false")
        return (f"cache=ram needs {need.describe()}, more than half of the "
                f"{_amount(available)} of memory available (the rest is for training itself); "
                f"use {other}")
    if need.bytes <= available - DISK_RESERVE:
        return None
    return (f"cache=disk needs {need.describe()}, and the records' disk has {_amount(available)} "
            f"free (the cache leaves {_amount(DISK_RESERVE)} of it); free some space or use "
            f"cache=false")


def available_memory() -> float | None:
    """MemAvailable of /proc/meminfo in bytes; None where there is none (not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024  # kB
    except OSError:
        return None
    return None


def free_space(path: str | os.PathLike) -> float | None:
    """Free bytes on the disk of ``path`` (or of its nearest existing parent); None for a
    remote store (``gs://...``)."""
    if "://" in str(path):
        return None
    path = Path(path).absolute()
    while not path.exists():
        path = path.parent
    return float(shutil.disk_usage(path).free)


def disk_cache_dir(records_dir: str | os.PathLike, split: str, size: int) -> Path:
    """The disk cache's folder for one split of prepared records at long side ``size``."""
    from tfseg.data.prepare import dataset_dir  # the records' reader, owned by tfseg.data

    version_dir = Path(dataset_dir(str(records_dir)))
    digest = hashlib.sha256(f"{split} {size} {FORMAT}".encode())
    for name in ("dataset_info.json", "metadata.json"):
        if (version_dir / name).is_file():
            digest.update((version_dir / name).read_bytes())
    return version_dir / "cache" / f"{split}-{size}px-{digest.hexdigest()[:12]}"


def _is_complete(prefix: str) -> bool:
    return tf.io.gfile.exists(f"{prefix}.index")


def disk_cache_prefix(folder: str | os.PathLike, pipeline: int = 0, pipelines: int = 1) -> str:
    """The file prefix of one input pipeline's disk cache, ready to be read or written.

    When the cache is not complete, this process takes the prefix's lock (held until it
    exits) and removes what an interrupted writer left (see the module docstring).

    Raises:
        ConfigError: another living process is writing this cache now.
    """
    prefix = str(Path(folder) / f"pipeline{pipeline}of{pipelines}")
    tf.io.gfile.makedirs(str(folder))  # again if it was deleted since this process took it
    if _is_complete(prefix) or prefix in _HELD_LOCKS or "://" in prefix:
        return prefix
    lock = open(f"{prefix}.writer-lock", "w")  # noqa: SIM115 (held for the process's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ConfigError(f"cache=disk: another training run is writing the cache in {folder} "
                          f"now; wait until its first epoch ends, or use cache=ram or "
                          f"cache=false") from None
    _HELD_LOCKS[prefix] = lock
    for remains in tf.io.gfile.glob(f"{prefix}_*"):  # tempstate data and tf.data's lockfile
        tf.io.gfile.remove(remains)
    return prefix


def _written_bytes(folder: Path) -> float:
    return float(sum(p.stat().st_size for p in folder.glob("pipeline*of*.*")
                     if not p.name.endswith(".writer-lock")))


def check_cache(mode: str, records_dir: str | os.PathLike, split: str, size: int,
                pipelines: int = 1) -> str:
    """The line training prints about its cache; raises when the cache does not fit.

    Args:
        mode: "ram" or "disk".
        records_dir: prepared records (``data.records``).
        split: the training split.
        size: S.
        pipelines: input pipelines (workers) sharing the split; each caches its share.

    Raises:
        ConfigError: the cache does not fit (the message is ``refusal``'s line).
    """
    from tfseg.data.prepare import load_split  # the records' reader, owned by tfseg.data

    if mode not in MODES:
        raise ConfigError(f"data.cache must be false, ram or disk, got '{mode}'")
    folder = disk_cache_dir(records_dir, split, size) if mode == "disk" else None
    if folder is not None and all(_is_complete(str(folder / f"pipeline{i}of{pipelines}"))
                                  for i in range(pipelines)):
        return (f"cache=disk: {_amount(_written_bytes(folder))} already written in {folder}, "
                f"read from the first epoch on")
    records, info = load_split(str(records_dir), split, decode=False)
    need = estimate_need(records, -(-info["num_examples"] // pipelines), size)
    if mode == "ram":
        available, where = available_memory(), "memory available"
        why = refusal(mode, need, available, free_space(records_dir))
    else:
        available, where = free_space(folder), f"free on disk, in {folder}"
        why = refusal(mode, need, available)
    if why:
        raise ConfigError(why)
    per_worker = " per worker" if pipelines > 1 else ""
    known = f"{_amount(available)} {where}" if available is not None else f"{where}: unknown"
    return f"cache={mode}: {need.describe()}{per_worker} ({known})"
