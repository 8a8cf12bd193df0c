"""The decoded-image cache: same samples as without it, reshuffled each pass, disk files that
are written once, completely, and read back; the need it announces; the refusal's numbers."""

import fcntl
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tfseg.config.factory import cache_mode
from tfseg.config.load import load_config
from tfseg.errors import ConfigError
from tfseg.pipeline import cache
from tfseg.pipeline.dataset import _resized, _shuffled_samples, build_dataset

SIZE, M, BATCH = 64, 6, 2
AUG = dict(degrees=10, translate=0.1, scale=0.5, shear=2)


class CountingRecords:
    """A records dataset whose generator counts the records it hands out."""

    def __init__(self, records_dataset, records):
        self.count = 0

        def generate():
            for record in records:
                self.count += 1
                yield record

        self.dataset = records_dataset(records)
        self.dataset = tf.data.Dataset.from_generator(generate,
                                                      output_signature=self.dataset.element_spec)


def _batches(dataset):
    return [(images.numpy(), t["boxes"].numpy(), t["classes"].numpy()) for images, t in dataset]


def _assert_same_batches(a, b):
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def _train(source, **kwargs):
    return build_dataset(source, "train", SIZE, BATCH, M, training=True, seed=3,
                         **{**AUG, **kwargs})


def test_a_cached_epoch_gives_the_batches_of_an_uncached_one(records_dataset, varied_records):
    # The same seed draws the same permutation of the records (before decoding, uncached)
    # as of the kept samples (after the cache): the batches are identical, not just alike.
    records = varied_records(7)
    plain = _batches(_train(records_dataset(records)))
    _assert_same_batches(plain, _batches(_train(records_dataset(records), cache="ram")))


def _passes(samples, count):
    """(image_id, instance count) of each sample of ``count`` passes of a repeated stream."""
    seen = [(int(s["image_id"]), int(tf.size(s["classes"]))) for s in samples.take(count * 10)]
    return [seen[i * 10:(i + 1) * 10] for i in range(count)]


def test_cached_samples_are_each_image_once_per_pass_in_a_new_order(records_dataset,
                                                                   varied_records):
    records = varied_records(10)
    expected = sorted(
        (int(s["image_id"]), int(tf.size(s["classes"])))
        for s in _resized(records_dataset(records), SIZE))  # crowds removed, as cached
    counted = CountingRecords(records_dataset, records)
    first, second, third = _passes(
        _shuffled_samples(counted.dataset, SIZE, 3, 256, repeat=True, cache_file=""), 3)
    assert sorted(first) == sorted(second) == sorted(third) == expected
    assert first != second != third
    assert counted.count == 10  # decoded in the first pass only


def test_sharded_pipelines_cache_their_own_records(records_dataset, make_record, tmp_path):
    # Disjoint images (one rectangle each, in a distinct place) so a box names its image.
    records = [make_record(i + 1, 64, 64, [(2 * i, 2 * i, 2 * i + 20, 2 * i + 20)])
               for i in range(8)]
    shards = []
    for pipeline in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                             num_replicas_in_sync=2)
        dataset = build_dataset(records_dataset(records), "train", SIZE, 2, M, training=True,
                                input_context=context, mosaic_p=0.0, fliplr=0.0, scale=0.0,
                                translate=0.0, cache="disk", cache_dir=str(tmp_path))
        # Without mosaic or geometry each sample is one image, its box where it was drawn.
        shards.append({tuple(b[0]) for _, t in dataset for b in t["boxes"].numpy()})
    assert not shards[0] & shards[1] and len(shards[0] | shards[1]) == 8
    assert {p.name for p in tmp_path.glob("*.index")} == {"pipeline0of2.index",
                                                          "pipeline1of2.index"}


def _kept(records, prefix):
    """One pass of the kept samples (image_id, instance count), read from or written to a
    disk cache at ``prefix``."""
    samples = _shuffled_samples(records, SIZE, 3, 256, repeat=False, cache_file=prefix)
    return [(int(s["image_id"]), int(tf.size(s["classes"]))) for s in samples]


def test_the_disk_cache_is_written_once_and_read_by_the_next_build(records_dataset,
                                                                  varied_records, tmp_path):
    records = varied_records(9)
    first = CountingRecords(records_dataset, records)
    written = _kept(first.dataset, cache.disk_cache_prefix(tmp_path))
    assert first.count == 9
    names = sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".writer-lock"))
    assert names == ["pipeline0of1.data-00000-of-00001", "pipeline0of1.index"]
    second = CountingRecords(records_dataset, records)
    assert _kept(second.dataset, cache.disk_cache_prefix(tmp_path)) == written
    assert second.count == 0  # every sample came from the files


def test_a_pass_cut_short_leaves_no_cache_to_read(records_dataset, varied_records, tmp_path):
    records = varied_records(40)
    prefix = cache.disk_cache_prefix(tmp_path)
    samples = _shuffled_samples(records_dataset(records), SIZE, 3, 1, repeat=False,
                                cache_file=prefix)
    iterator = iter(samples)
    next(iterator)
    del iterator  # tf.data deletes the partial files of an unfinished pass
    assert not list(tmp_path.glob("pipeline0of1*.index"))
    # What a killed writer leaves (tf.data's lockfile and a temporary data file) is cleared
    # by the next build, which then writes the whole cache.
    (tmp_path / "pipeline0of1_0.lockfile").write_text("Created at: 0")
    (tmp_path / "pipeline0of1_0.data-00000-of-00001.tempstate123").write_bytes(b"\0" * 10)
    cache._HELD_LOCKS.pop(prefix).close()  # as a new process would find them
    counted = CountingRecords(records_dataset, records)
    assert len(_kept(counted.dataset, cache.disk_cache_prefix(tmp_path))) == 40
    assert counted.count == 40 and (tmp_path / "pipeline0of1.index").is_file()
    assert not list(tmp_path.glob("pipeline0of1_*"))


def test_a_cache_another_process_is_writing_is_refused(tmp_path):
    with open(tmp_path / "pipeline0of1.writer-lock", "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another open file: as another process holds it
        with pytest.raises(ConfigError, match="another training run is writing"):
            cache.disk_cache_prefix(tmp_path)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """12 shapes images (96-160 px a side, some crowds) as prepared records."""
    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes

    root = tmp_path_factory.mktemp("cache")
    paths = write_shapes(str(root), num_train=12, num_val=1)
    prepare([paths["train_images"]], [paths["train_annotations"]], str(root / "records"),
            splits=["train"], num_workers=1, verbose=False)
    return root / "records"


def _nbytes(sample) -> int:
    return sum(int(tf.size(v)) * v.dtype.size for v in sample.values())


def test_the_need_is_within_a_fifth_of_the_kept_tensors_and_files(prepared, tmp_path):
    from tfseg.data.prepare import load_split

    size = 128
    records, info = load_split(str(prepared), "train", decode=False)
    need = cache.estimate_need(records, info["num_examples"], size)
    assert need.images == 12 and need.size == size
    kept = sum(_nbytes(s) for s in _resized(records, size))
    assert abs(need.bytes - kept) <= 0.2 * kept
    for _ in _resized(records, size).cache(str(tmp_path / "c")):
        pass
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir())
    assert abs(need.bytes - on_disk) <= 0.2 * on_disk


def test_training_line_and_the_disk_cache_beside_the_records(prepared):
    line = cache.check_cache("ram", prepared, "train", 128)
    assert line.startswith("cache=ram: ") and "for 12 images at 128 px" in line
    assert "memory available" in line
    folder = cache.disk_cache_dir(prepared, "train", 128)
    assert folder.parent.parent == prepared / "coco_segmentation" / "1.0.0"
    assert folder.name.startswith("train-128px-") and folder != cache.disk_cache_dir(
        prepared, "train", 160)
    assert cache.check_cache("disk", prepared, "train", 128).startswith("cache=disk: ")
    for _ in build_dataset(str(prepared), "train", 128, 2, M, training=True, mosaic_p=0.0,
                           cache="disk"):
        pass
    assert (folder / "pipeline0of1.index").is_file()
    assert "already written in" in cache.check_cache("disk", prepared, "train", 128)


def test_other_records_get_another_disk_cache(prepared, tmp_path):
    copy = tmp_path / "records"
    shutil.copytree(prepared / "coco_segmentation", copy / "coco_segmentation",
                    ignore=shutil.ignore_patterns("cache"))
    assert cache.disk_cache_dir(copy, "train", 128).name == cache.disk_cache_dir(
        prepared, "train", 128).name  # the same records, the same name
    metadata = copy / "coco_segmentation" / "1.0.0" / "metadata.json"
    metadata.write_text(metadata.read_text().replace("sha256", "sha-256"))
    assert cache.disk_cache_dir(copy, "train", 128).name != cache.disk_cache_dir(
        prepared, "train", 128).name


def test_the_refusal_names_the_need_what_is_there_and_the_other_choices():
    need = cache.CacheNeed(bytes=12.4e9, images=118287, size=640)
    assert cache.refusal("ram", need, available=30e9) is None  # 12.4 <= half of 30
    message = cache.refusal("ram", need, available=20e9, disk_free=200e9)
    assert message == ("cache=ram needs 12.4 GB for 118287 images at 640 px, more than half of "
                       "the 20.0 GB of memory available (the rest is for training itself); use "
                       "cache=disk (200.0 GB free there) or cache=false")
    assert cache.refusal("disk", need, available=14e9) is None
    message = cache.refusal("disk", need, available=13e9)
    assert "12.4 GB for 118287 images at 640 px" in message and "13.0 GB free" in message
    assert message.endswith("cache=false")
    assert cache.refusal("ram", need, available=None) is None  # unknown: no refusal


def test_the_cache_key_reads_as_yolo_users_write_it(tmp_path):
    assert cache_mode(load_config([]).data) is None
    assert cache_mode(load_config(["cache=true"]).data) == "ram"
    assert cache_mode(load_config(["data.cache=disk"]).data) == "disk"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("data:\n  cache: false\n")
    assert cache_mode(load_config([f"cfg={recipe}"]).data) is None
    with pytest.raises(ConfigError, match="data.cache must be false, ram or disk"):
        load_config(["cache=tape"])
