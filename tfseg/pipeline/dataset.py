"""build_dataset: records -> fixed-shape batches for training or evaluation.

The only public entry of tfseg.pipeline. Training: shard, shuffle, decode, crowd removal,
resize (or, with a cache, decode, crowd removal and resize once, then shuffle the kept samples:
cache.py), mosaic + random affine (mosaic.py), copy-paste, mixup and cutmix (mixing.py), flips,
HSV, filtering, a shuffle of 2 batches of augmented samples, targets, batch, a size drawn per
batch (multiscale.py), prefetch.
Evaluation: decode, crowd removal, letterbox only, plus what evaluation needs.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from tfseg.contracts import PROTO_STRIDE
from tfseg.ops.letterbox import letterbox_boxes, letterbox_image, letterbox_masks
from tfseg.pipeline import augment, mixing, mosaic, multiscale, targets
from tfseg.pipeline import cache as sample_cache
from tfseg.pipeline.decode import decode_record

AUTOTUNE = tf.data.AUTOTUNE


def _records(source, split: str) -> tf.data.Dataset:
    """A record dataset from a dataset or a prepared data directory."""
    if isinstance(source, tf.data.Dataset):
        return source
    from tfseg.data.prepare import load_split  # the records' reader, owned by tfseg.data

    records, _ = load_split(source, split, decode=False)  # decoded after the shuffle
    return records


def _load(record: dict, masks: bool = True) -> dict:
    sample = targets.remove_crowd(decode_record(record, masks))
    sample.pop("is_crowd")
    return sample


def _resized(records: tf.data.Dataset, size: int) -> tf.data.Dataset:
    samples = records.map(_load, num_parallel_calls=AUTOTUNE)
    return samples.map(lambda s: mosaic.resize_to_fit(s, size), num_parallel_calls=AUTOTUNE)


def _shuffled_samples(records, size, seed, shuffle_buffer, repeat, cache_file) -> tf.data.Dataset:
    """Records -> decoded samples without crowds at long side S, shuffled anew each pass.

    Without a cache (``cache_file`` None) the encoded records are shuffled, then decoded: a
    buffer of encoded records is small. With one ("" in memory, else a file prefix) the records
    are decoded in their file order into the cache on the first pass, and the kept samples are
    shuffled: the same permutation under the same seed either way, and a cache written under
    one seed serves any other.
    """
    cached = cache_file is not None
    samples = _resized(records, size).cache(cache_file) if cached else records
    samples = samples.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        samples = samples.repeat()
    return samples if cached else _resized(samples, size)


def _train_samples(samples, size, seed, mosaic_p, mosaic_enabled, degrees, translate, scale, shear,
                   fliplr, hsv_h, hsv_s, hsv_v, min_area, flipud=0.0, perspective=0.0,
                   mix=None) -> tf.data.Dataset:
    """Shuffled samples at long side S -> augmented S x S samples, filtered."""
    tiles, mix = mosaic.TILES if mosaic_p > 0 else 1, mix or {}
    groups = mosaic.group_samples(samples, size, tiles * (2 if mixing.partners_needed(**mix) else 1))
    build = functools.partial(mosaic.augment_group, seed=seed, size=size, probability=mosaic_p,
                              enabled=mosaic_enabled, degrees=degrees, translate=translate,
                              scale=scale, shear=shear, perspective=perspective)
    samples = mixing.apply_mixing(groups, seed, tiles, build, size, mosaic_enabled, **mix)

    def colour_and_flip(sample, draw):
        flip_seed, hsv_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.stack([draw, tf.constant(seed + 1, tf.int64)]), 2))
        sample = augment.random_flip(sample, flip_seed, fliplr)
        if flipud > 0:  # its seed folded from the left-right one's, which stays as it was
            sample = augment.random_flip(
                sample, tf.random.experimental.stateless_fold_in(flip_seed, 1), flipud, True)
        sample = augment.random_hsv(sample, hsv_seed, hsv_h, hsv_s, hsv_v)
        return targets.drop_small(sample, min_area)

    draws = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True)
    return tf.data.Dataset.zip(samples, draws).map(colour_and_flip, num_parallel_calls=AUTOTUNE)


def _eval_element(record: dict, size: int, max_instances: int,
                  masks: bool) -> tuple[tf.Tensor, dict]:
    """One record -> (image, targets + image_id + letterbox info), letterboxed."""
    sample = _load(record, masks)
    image, info = letterbox_image(sample["image"], size)
    boxed = dict(sample, image=tf.cast(tf.round(image), tf.uint8),
                 boxes=letterbox_boxes(sample["boxes"], info))
    if masks:
        boxed["masks"] = letterbox_masks(sample["masks"], size)
    image, padded = targets.to_targets(boxed, size, max_instances)
    return image, dict(padded, image_id=sample["image_id"], letterbox=info)


def _eval_filler(size: int, max_instances: int, count: int, masks: bool) -> tf.data.Dataset:
    """``count`` empty elements (image_id -1) that complete the last evaluation batch."""
    proto = size // PROTO_STRIDE
    image = tf.zeros([size, size, 3], tf.float32)
    empty = {"boxes": tf.zeros([max_instances, 4]), "classes": -tf.ones([max_instances], tf.int32),
             "dropped": tf.constant(0, tf.int32), "image_id": tf.constant(-1, tf.int64),
             "letterbox": tf.constant([1.0, 1.0, 1.0, 0.0, 0.0])}
    if masks:
        empty["masks"] = tf.zeros([max_instances, proto, proto], tf.uint8)
    return tf.data.Dataset.from_tensors((image, empty)).repeat(count)


def _cache_file(cache, source, split, size, cache_dir, pipeline, pipelines) -> str | None:
    """None (no cache), "" (tf.data's memory cache) or the disk cache's file prefix."""
    if cache is None:
        return None
    if cache == "ram":
        return ""
    if cache != "disk":
        raise ValueError(f"cache must be None, 'ram' or 'disk', got {cache!r}")
    if cache_dir is None:
        if isinstance(source, tf.data.Dataset):
            raise ValueError("cache='disk' on a dataset of records needs cache_dir")
        cache_dir = sample_cache.disk_cache_dir(source, split, size)
    return sample_cache.disk_cache_prefix(cache_dir, pipeline, pipelines)


# No autograph: every mapped function is plain graph code (tf.cond, tf.while_loop), and
# converting them cost ~70% of building the training pipeline (3 s against 10.8 s at 320 px on
# 2 cores), paid at every start of training and evaluation.
@tf.autograph.experimental.do_not_convert
def build_dataset(source, split: str, image_size: int, batch_size: int, max_instances: int = 100,
                  training: bool = True, seed: int = 0, input_context=None,
                  mosaic_p: float = 1.0, mosaic_enabled: tf.Variable | None = None,
                  degrees: float = 0.0, translate: float = 0.1, scale: float = 0.5,
                  shear: float = 0.0, fliplr: float = 0.5, hsv_h: float = 0.015,
                  hsv_s: float = 0.7, hsv_v: float = 0.4, min_area: float = 4.0,
                  shuffle_buffer: int = 256, masks: bool = True, flipud: float = 0.0,
                  perspective: float = 0.0, mixup: float = 0.0, cutmix: float = 0.0,
                  copy_paste: float = 0.0, copy_paste_mode: str = "flip", repeat: bool = False,
                  cache: str | None = None, cache_dir: str | None = None,
                  multi_scale: float = 0.0) -> tf.data.Dataset:
    """Records -> batches of (images, targets) per contracts.TRAIN_IMAGES / TRAIN_TARGETS.

    Args:
        source: a prepared data directory (read by tfseg.data.prepare.load_split) or a
            tf.data.Dataset of records (contracts.RECORD).
        split: "train", "val", ... (ignored when ``source`` is a dataset).
        image_size: S, divisible by 32.
        batch_size: the global batch; with ``input_context`` each pipeline batches its share.
        max_instances: M.
        training: augment and shuffle (True), or letterbox only (False).
        seed: every random choice (order, augmentation) follows it.
        input_context: tf.distribute.InputContext: shard records across input pipelines.
        mosaic_p ... min_area, flipud ... copy_paste_mode: augmentation (AugmentConfig);
            mosaic_enabled: close-mosaic switch (mixing steps close with the mosaic).
        shuffle_buffer: records (or cached samples) held for shuffling.
        masks: evaluation only: False leaves the masks out of the targets, and their PNGs
            undecoded (COCO evaluation scores against the annotation file: its batches need
            the images, image ids and letterbox, and boxes and classes for the confusion
            matrix). Training always has masks.
        repeat: training: pass over the records again and again, each pass shuffled anew
            (the mosaic's sliding windows run across passes, so even a small set fills batches).
        cache: training: None, or "ram" / "disk" to keep the decoded, resized samples of the
            first pass (in memory, or in tf.data's file cache) and read them on later passes
            (cache.py says what that needs and where the files go). Needs finite records.
        cache_dir: cache "disk": the folder of the cache files; None: the records' own
            (``cache.disk_cache_dir``; ``source`` must then be a data directory).
        multi_scale: training: f > 0 resizes each batch to a multiple of 32 drawn within
            S (1 +/- f), boxes scaled with the images, masks left at S / 4 (multiscale.py).

    Returns:
        Training: dataset of (images ``[B, S, S, 3]`` float32 in [0, 1], targets dict boxes
        ``[B, M, 4]``, classes ``[B, M]``, masks ``[B, M, S/4, S/4]``), drop_remainder; with
        ``multi_scale`` the images are ``[B, s, s, 3]``, s drawn per batch, boxes in its pixels.
        Evaluation: the same targets (masks only with ``masks``) plus image_id ``[B]`` int64
        (-1 for filler elements that complete the last batch; skip them) and letterbox
        ``[B, 5]`` float32 (orig_h, orig_w, scale, pad_top, pad_left): every image appears
        once.
    """
    if image_size % 32:
        raise ValueError(f"image_size must be divisible by 32, got {image_size}")
    degrees, translate, scale, shear, fliplr, hsv_h, hsv_s, hsv_v, min_area, mosaic_p = (
        float(v) for v in (degrees, translate, scale, shear, fliplr, hsv_h, hsv_s, hsv_v,
                           min_area, mosaic_p))
    records = _records(source, split)
    pipeline, pipelines = 0, 1
    if input_context is not None:
        pipeline, pipelines = input_context.input_pipeline_id, input_context.num_input_pipelines
        records = records.shard(pipelines, pipeline)
        batch_size = input_context.get_per_replica_batch_size(batch_size)
    if training:
        cache_file = _cache_file(cache, source, split, image_size, cache_dir, pipeline, pipelines)
        if cache_file is not None and records.cardinality() == tf.data.INFINITE_CARDINALITY:
            raise ValueError("a cache needs finite records: pass them once, with repeat=True")
        samples = _shuffled_samples(records, image_size, seed, shuffle_buffer, repeat, cache_file)
        samples = _train_samples(samples, image_size, seed, mosaic_p, mosaic_enabled, degrees,
                                 translate, scale, shear, fliplr, hsv_h, hsv_s, hsv_v, min_area,
                                 float(flipud), float(perspective),
                                 dict(mixup=float(mixup), cutmix=float(cutmix),
                                      copy_paste=float(copy_paste),
                                      copy_paste_mode=copy_paste_mode))
        # Consecutive mosaics share 3 of their 4 tiles (the sliding window): mixing 2 batches'
        # worth spreads each image's mosaics over several batches (~50 distinct images in a
        # batch of 16 instead of ~19) for 2B augmented samples of memory.
        samples = samples.shuffle(2 * batch_size, seed=seed + 2, reshuffle_each_iteration=True)
        batches = samples.map(lambda s: targets.to_targets(s, image_size, max_instances),
                              num_parallel_calls=AUTOTUNE)
        batches = multiscale.multi_scale_batches(
            batches.batch(batch_size, drop_remainder=True), image_size, float(multi_scale),
            seed + 3)
        return batches.prefetch(AUTOTUNE)
    else:
        batches = records.map(lambda r: _eval_element(r, image_size, max_instances, masks),
                              num_parallel_calls=AUTOTUNE)
        batches = batches.concatenate(_eval_filler(image_size, max_instances, batch_size - 1,
                                                   masks))
    return batches.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
