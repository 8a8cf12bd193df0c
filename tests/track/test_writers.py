"""MOTChallenge text and tracks.json records, read back."""

import json

import numpy as np
from pycocotools import mask as mask_utils

from tfseg.postprocess.host import ImageDetections
from tfseg.track.bytetrack import TrackedObject
from tfseg.track.writers import SequenceWriter, frame_record, mot_lines, read_mot


def detections():
    """Two detections on a 40 x 60 image; the second has an L-shaped mask."""
    crop_b = np.ones((10, 8), bool)
    crop_b[:5, 4:] = False
    return ImageDetections(
        boxes=np.array([[2, 3, 12, 9], [20, 10, 28, 20]], np.float32),
        scores=np.array([0.9, 0.4], np.float32), classes=np.array([0, 2], np.int32),
        mask_crops=[np.ones((6, 10), bool), crop_b],
        mask_origins=np.array([[2, 3], [20, 10]], np.int32), height=40, width=60)


TRACKED = [TrackedObject(7, 1, np.array([20, 10, 28, 20.0]), 0.4, 2),
           TrackedObject(3, 0, np.array([2, 3, 12, 9.0]), 0.9, 0)]


def test_mot_rows_are_parsed_back(tmp_path):
    path = tmp_path / "seq.txt"
    path.write_text("\n".join(mot_lines(1, TRACKED) + mot_lines(2, TRACKED[1:])) + "\n")
    rows = read_mot(path)
    assert rows.shape == (3, 10)
    np.testing.assert_allclose(rows[0], [1, 7, 20, 10, 8, 10, 0.4, -1, -1, -1])
    np.testing.assert_allclose(rows[2], [2, 3, 2, 3, 10, 6, 0.9, -1, -1, -1])


def test_an_empty_mot_file_reads_as_no_rows(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    assert read_mot(tmp_path / "empty.txt").shape == (0, 10)


def test_frame_record_holds_each_tracks_own_mask():
    record = frame_record("clip", 4, detections(), TRACKED, ["circle", "rectangle", "triangle"])
    json.dumps(record)  # plain JSON types only
    assert (record["sequence"], record["frame"], record["height"], record["width"]) == ("clip", 4, 40, 60)
    first, second = record["tracks"]
    assert (first["id"], first["class_name"], first["score"]) == (7, "triangle", 0.4)
    assert second["box_xyxy"] == [2.0, 3.0, 12.0, 9.0]
    mask = mask_utils.decode(first["mask_rle"])  # the L-shaped one, in place
    assert mask.shape == (40, 60) and mask.sum() == 80 - 20
    assert mask[10:20, 20:28].sum() == 60 and mask[10:15, 24:28].sum() == 0


def test_sequence_writer_writes_mot_text_and_a_readable_video(tmp_path):
    import cv2

    writer = SequenceWriter(tmp_path, "clip", fps=10.0, save_overlays=True)
    image = np.full((40, 60, 3), 90, np.uint8)
    for frame in (1, 2, 3):
        writer.write(frame, f"clip_{frame}", image, detections(), TRACKED, ["a", "b", "c"])
    writer.close()
    assert read_mot(tmp_path / "clip.txt").shape == (6, 10)
    capture = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    assert capture.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    ok, first = capture.read()
    assert ok and first.shape == (40, 60, 3)
    assert np.abs(first.astype(int) - 90).max() > 60  # masks and boxes were drawn
