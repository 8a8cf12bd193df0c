"""Fuzz: malformed annotation records never raise an unhandled exception.

Every record ends as a kept instance (whose mask then decodes), a skip counted with a
reason, or a DatasetError (strict mode), never anything else.
"""

import json

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tfseg.data.coco import decode_segmentation, read_coco
from tfseg.errors import DatasetError

H, W = 9, 11

numbers = st.one_of(
    st.integers(-20, 40), st.floats(-20, 40), st.sampled_from([float("nan"), float("inf"), 0]),
    st.integers(min_value=10 ** 300, max_value=10 ** 400))
junk = st.one_of(st.none(), st.booleans(), st.text(max_size=4), numbers,
                 st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
polygon = st.lists(numbers, min_size=0, max_size=12)
rle_counts = st.one_of(
    st.lists(st.integers(-5, H * W), max_size=8),
    st.lists(st.integers(0, H * W), min_size=1, max_size=6).map(lambda c: c + [max(0, H * W - sum(c))]),
    st.text(alphabet=[chr(c) for c in range(40, 120)], max_size=12))
rle = st.fixed_dictionaries({"counts": st.one_of(rle_counts, junk),
                             "size": st.one_of(st.just([H, W]), st.lists(st.integers(-1, 12), max_size=3), junk)})
segmentation = st.one_of(st.lists(polygon, max_size=3), rle, junk)
bbox = st.one_of(st.lists(numbers, min_size=4, max_size=4), st.lists(numbers, max_size=6), junk)


@st.composite
def annotation(draw):
    fields = {
        "id": st.one_of(st.integers(1, 6), junk),
        "image_id": st.one_of(st.sampled_from([1, 2, 3]), junk),
        "category_id": st.one_of(st.sampled_from([2, 4, 5]), junk),
        "iscrowd": st.one_of(st.sampled_from([0, 1]), junk),
        "segmentation": segmentation,
        "bbox": bbox,
        "area": st.one_of(numbers, junk),
    }
    keys = draw(st.lists(st.sampled_from(sorted(fields)), unique=True, min_size=3))
    return {k: draw(fields[k]) for k in keys}


@st.composite
def mutated_valid(draw):
    """A valid record (polygon, RLE or crowd) with up to two fields replaced or removed."""
    ann = {"id": draw(st.integers(1, 6)), "image_id": draw(st.sampled_from([1, 2])),
           "category_id": draw(st.sampled_from([2, 5])), "iscrowd": draw(st.sampled_from([0, 1])),
           "segmentation": draw(st.sampled_from([
               [[1, 1, 6, 1, 6, 5, 1, 5]], [[0, 0, 3, 0, 3, 3], [5, 5, 9, 5, 9, 8]],
               {"size": [H, W], "counts": [10, 5, 4, 5, H * W - 24]},
               {"size": [H, W], "counts": "m045ML1420000i0"}])),
           "bbox": [1, 1, 5, 4], "area": 20.0}
    for key in draw(st.lists(st.sampled_from(sorted(ann)), max_size=2, unique=True)):
        if draw(st.booleans()):
            del ann[key]
        else:
            ann[key] = draw({"segmentation": segmentation, "bbox": bbox}.get(key, junk))
    return ann


def _write(tmp_path, annotations):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "height": H, "width": W},
                       {"id": 2, "file_name": "b.jpg", "height": H, "width": W},
                       {"id": 3, "file_name": "c.jpg", "height": 0, "width": W}],
            "annotations": annotations,
            "categories": [{"id": 2, "name": "a"}, {"id": 5, "name": "b"}]}
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(data))
    return str(path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(annotations=st.lists(st.one_of(mutated_valid(), mutated_valid(), annotation(), junk), max_size=5))
def test_malformed_records_are_kept_skipped_or_rejected(tmp_path, annotations):
    path = _write(tmp_path, annotations)
    ds = read_coco(path)
    kept = ds.num_instances
    event(f"kept instances: {min(kept, 2)}")
    # image 3 has a bad size: its record is one counted skip of its own
    assert kept + ds.skips.total == len(annotations) + 1
    assert all(reason for reason in ds.skips.counts)
    for image in ds.images:
        for inst in image.instances:
            mask = decode_segmentation(inst.segmentation, image.height, image.width)
            assert mask.shape == (H, W) and mask.dtype == np.uint8
            x1, y1, x2, y2 = inst.bbox
            assert 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H
            assert inst.class_index in (0, 1) and inst.area >= 0
    if ds.skips.total:
        try:
            read_coco(path, strict=True)
        except DatasetError as err:
            assert err.file == path
        else:
            raise AssertionError("strict mode accepted a file with skipped records")
