"""Predict sources: real image and video files written here, a video served over HTTP;
bad inputs."""

import functools
import http.server
import threading

import cv2
import numpy as np
import pytest

from tfseg.errors import InputError
from tfseg.predict.sources import iter_frames, read_image


def write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    colour = np.zeros((30, 40, 3), np.uint8); colour[..., 2] = 200  # BGR: red
    cv2.imwrite(str(folder / "a_colour.jpg"), colour)
    cv2.imwrite(str(folder / "b_colour.png"), colour)
    cv2.imwrite(str(folder / "c_grey.png"), np.full((20, 25), 77, np.uint8))
    rgba = np.zeros((16, 12, 4), np.uint8); rgba[..., 1] = 150; rgba[..., 3] = 128
    cv2.imwrite(str(folder / "d_rgba.png"), rgba)
    (folder / "e_broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_folder_reads_every_kind_and_skips_the_broken_file(tmp_path):
    skipped = []
    frames = list(iter_frames(write_images(tmp_path / "imgs"), on_skip=lambda p, r: skipped.append(p)))
    assert [f.name for f in frames] == ["a_colour", "b_colour", "c_grey", "d_rgba"]
    assert [f.image.shape for f in frames] == [(30, 40, 3), (30, 40, 3), (20, 25, 3), (16, 12, 3)]
    assert frames[1].image[0, 0].tolist() == [200, 0, 0]  # RGB order
    assert frames[2].image[0, 0].tolist() == [77, 77, 77]
    assert frames[3].image[0, 0].tolist() == [0, 150, 0]  # alpha dropped
    assert len(skipped) == 1 and skipped[0].endswith("e_broken.jpg")


def test_glob_list_and_single_file(tmp_path):
    folder = write_images(tmp_path / "imgs")
    assert [f.name for f in iter_frames(str(folder / "*.png"))] == ["b_colour", "c_grey", "d_rgba"]
    assert [f.name for f in iter_frames([folder / "c_grey.png", folder / "a_colour.jpg"])] == ["c_grey", "a_colour"]
    assert read_image(folder / "e_broken.jpg") is None
    with pytest.raises(InputError, match="cannot be read"):
        list(iter_frames(folder / "e_broken.jpg"))


def write_clip(path, levels):
    """An MJPG clip of 48 x 32 grey frames, one per level."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (48, 32))
    for level in levels:
        writer.write(np.full((32, 48, 3), level, np.uint8))
    writer.release()
    return path


def test_video_frames(tmp_path):
    frames = list(iter_frames(write_clip(tmp_path / "clip.avi", [0, 60, 120])))
    assert [f.name for f in frames] == ["clip_000000", "clip_000001", "clip_000002"]
    assert all(f.image.shape == (32, 48, 3) and f.is_video for f in frames)
    assert abs(int(frames[2].image.mean()) - 120) <= 3


def test_a_stream_url_is_read_frame_by_frame(tmp_path):
    """A clip served by a local HTTP server, read through its URL as a network stream."""
    write_clip(tmp_path / "live.avi", [0, 50, 100, 150])
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/live.avi"
        frames = list(iter_frames(url))
        assert [f.name for f in frames] == [f"live_{i:06d}" for i in range(4)]
        assert all(f.is_video and f.source == url and f.image.shape == (32, 48, 3)
                   for f in frames)
        assert abs(int(frames[3].image.mean()) - 150) <= 3
        with pytest.raises(InputError, match="stream .* cannot be opened"):
            list(iter_frames(f"http://127.0.0.1:{server.server_address[1]}/missing.mp4"))
    finally:
        server.shutdown()


def test_bad_inputs_raise_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        list(iter_frames(tmp_path / "nowhere.jpg"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        list(iter_frames(tmp_path / "empty"))
    with pytest.raises(InputError, match="no images match"):
        list(iter_frames(str(tmp_path / "*.png")))
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="cannot be opened"):
        list(iter_frames(tmp_path / "bad.mp4"))
    with pytest.raises(InputError, match="do not exist"):
        list(iter_frames([tmp_path / "missing.png"]))
