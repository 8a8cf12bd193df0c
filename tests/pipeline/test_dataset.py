"""build_dataset: fixed shapes, padding invariants, determinism, sharding, edge cases, eval."""

import numpy as np
import pytest
import tensorflow as tf

from tfseg.pipeline.dataset import build_dataset

SIZE, M, BATCH = 64, 6, 2
AUG = dict(degrees=10, translate=0.1, scale=0.5, shear=2)


def _train(records_dataset, records, seed=0, **kwargs):
    return build_dataset(records_dataset(records), "train", SIZE, BATCH, M, training=True,
                         seed=seed, **{**AUG, **kwargs})


def assert_batch_contract(images, targets):
    assert images.shape == (BATCH, SIZE, SIZE, 3) and images.dtype == tf.float32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 1.0
    boxes, classes, masks = (targets[k].numpy() for k in ("boxes", "classes", "masks"))
    assert boxes.shape == (BATCH, M, 4) and classes.shape == (BATCH, M)
    assert masks.shape == (BATCH, M, SIZE // 4, SIZE // 4) and masks.dtype == np.uint8
    for b in range(BATCH):
        valid = classes[b] >= 0
        count = int(valid.sum())
        assert np.all(valid[:count]) and not np.any(valid[count:])  # padding at the end
        assert np.all(boxes[b, count:] == 0) and masks[b, count:].sum() == 0
        for box, mask in zip(boxes[b, :count], masks[b, :count]):
            assert box[2] > box[0] and box[3] > box[1]
            assert 0 <= box.min() and box.max() <= SIZE
            rows, cols = np.nonzero(mask)
            # A 1/4 pixel is on when half its 4x4 block is, so it lies within the box / 4
            # grown by half a coarse pixel.
            if rows.size:
                assert cols.min() >= box[0] / 4 - 1 and cols.max() + 1 <= box[2] / 4 + 1
                assert rows.min() >= box[1] / 4 - 1 and rows.max() + 1 <= box[3] / 4 + 1


def test_training_batches_keep_the_contract(records_dataset, varied_records):
    dataset = _train(records_dataset, varied_records(12))
    count = 0
    for images, targets in dataset:
        assert_batch_contract(images, targets)
        count += 1
    assert count == (12 - 3) // BATCH  # windows of 4 give N - 3 samples; drop_remainder
    assert dataset.element_spec[0].shape == (BATCH, SIZE, SIZE, 3)


def _first_epoch(dataset):
    return [(i.numpy(), t["boxes"].numpy(), t["classes"].numpy()) for i, t in dataset]


def test_deterministic_under_a_seed(records_dataset, varied_records):
    records = varied_records(9)
    a = _first_epoch(_train(records_dataset, records, seed=4))
    b = _first_epoch(_train(records_dataset, records, seed=4))
    c = _first_epoch(_train(records_dataset, records, seed=5))
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)
    assert not all(np.array_equal(x[0], y[0]) for x, y in zip(a, c))


@pytest.mark.parametrize("case", ["no_instances", "only_crowd", "all_dropped"])
def test_edge_cases_give_valid_padded_targets(records_dataset, make_record, case):
    if case == "no_instances":
        records = [make_record(i, 48, 64, []) for i in range(6)]
        kwargs = {}
    elif case == "only_crowd":
        records = [make_record(i, 48, 64, [(4, 4, 30, 30)], crowd=[True]) for i in range(6)]
        kwargs = {}
    else:  # 2x2-pixel instances scaled down by at most 1/2 fall under min_area
        records = [make_record(i, 64, 64, [(10, 10, 12, 12), (40, 40, 42, 42)]) for i in range(6)]
        kwargs = dict(scale=0.5, min_area=50.0)
    for images, targets in _train(records_dataset, records, **kwargs):
        assert_batch_contract(images, targets)
        assert np.all(targets["classes"].numpy() == -1)


def test_close_mosaic_switch_is_read_each_epoch(records_dataset, make_record):
    # Each image holds two big rectangles of its own class (id % 3): a single image gives one
    # class per sample, a mosaic mixes the classes of its tiles.
    records = [make_record(i, 40, 64, [(0, 0, 32, 40), (32, 0, 64, 40)], classes=[i % 3] * 2)
               for i in range(8)]
    enabled = tf.Variable(False, trainable=False)
    dataset = _train(records_dataset, records, mosaic_enabled=enabled, degrees=0, translate=0,
                     scale=0, shear=0, fliplr=0, hsv_h=0, hsv_s=0, hsv_v=0)

    def distinct_classes():
        return [len(set(c[c >= 0].tolist())) for _, t in dataset for c in t["classes"].numpy()]

    assert max(distinct_classes()) == 1
    enabled.assign(True)
    assert max(distinct_classes()) > 1
    enabled.assign(False)
    assert max(distinct_classes()) == 1


def _eval(records_dataset, records, **kwargs):
    return build_dataset(records_dataset(records), "val", SIZE, BATCH, M, training=False, **kwargs)


def test_eval_letterbox_ids_and_filler(records_dataset, make_record):
    records = [make_record(i + 1, 32, 64, [(8, 4, 40, 20)]) for i in range(3)]
    batches = list(_eval(records_dataset, records))
    assert len(batches) == 2  # 3 images, batch 2: one filler element
    ids = np.concatenate([t["image_id"].numpy() for _, t in batches])
    np.testing.assert_array_equal(ids, [1, 2, 3, -1])
    images, targets = batches[0]
    # 32x64 -> scale 1, pad_top 16: the box moves down 16 rows; masks at 1/4.
    np.testing.assert_allclose(targets["letterbox"][0], [32, 64, 1, 16, 0])
    np.testing.assert_allclose(targets["boxes"][0, 0], [8, 20, 40, 36])
    np.testing.assert_array_equal(targets["classes"][0], [0] + [-1] * (M - 1))
    expected = np.zeros([16, 16], np.uint8)
    expected[5:9, 2:10] = 1
    np.testing.assert_array_equal(targets["masks"][0, 0], expected)
    assert np.all(images.numpy()[0, :16] == pytest.approx(114 / 255))


def test_eval_batches_without_masks_hold_the_same_images_and_instances(records_dataset,
                                                                     make_record):
    # What evaluation builds (tfseg val, the per-epoch evaluation): the mask PNGs are left
    # undecoded, everything else is the same batch.
    records = [make_record(i + 1, 32 + 8 * i, 64, [(8, 4, 40, 20), (2, 2, 12, 30)])
               for i in range(3)]
    full = list(_eval(records_dataset, records))
    lean = list(_eval(records_dataset, records, masks=False))
    assert len(full) == len(lean) == 2
    for (images, targets), (lean_images, lean_targets) in zip(full, lean):
        assert "masks" in targets and "masks" not in lean_targets
        np.testing.assert_array_equal(images.numpy(), lean_images.numpy())
        for key in ("boxes", "classes", "image_id", "letterbox", "dropped"):
            np.testing.assert_array_equal(targets[key].numpy(), lean_targets[key].numpy(), key)


def test_shards_are_disjoint_and_cover(records_dataset, make_record):
    records = [make_record(i + 1, 32, 32, [(2, 2, 10, 10)]) for i in range(8)]
    seen = []
    for pipeline_id in range(2):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline_id,
                                             num_replicas_in_sync=2)
        dataset = _eval(records_dataset, records, input_context=context)
        ids = [i for _, t in dataset for i in t["image_id"].numpy() if i >= 0]
        assert dataset.element_spec[0].shape[0] == BATCH // 2  # per-replica share of the global batch
        seen.append(set(ids))
    assert not seen[0] & seen[1]
    assert seen[0] | seen[1] == set(range(1, 9))


def test_prepared_shapes_records(tmp_path):
    """The real path: shapes writer -> TFDS records -> build_dataset (train and eval)."""
    import json

    from tfseg.data.prepare import prepare
    from tfseg.data.shapes import write_shapes

    paths = write_shapes(str(tmp_path / "shapes"), num_train=6, num_val=3, seed=1, min_size=64,
                         max_size=96)
    records = str(tmp_path / "records")
    prepare([paths["train_images"], paths["val_images"]],
            [paths["train_annotations"], paths["val_annotations"]], records,
            splits=["train", "val"], num_workers=1, verbose=False)
    for images, targets in build_dataset(records, "train", SIZE, BATCH, M, training=True, **AUG):
        assert_batch_contract(images, targets)
    val_ids = {a["id"] for a in json.load(open(paths["val_annotations"]))["images"]}
    seen = [i for _, t in build_dataset(records, "val", SIZE, BATCH, M, training=False)
            for i in t["image_id"].numpy() if i >= 0]
    assert sorted(seen) == sorted(val_ids)
