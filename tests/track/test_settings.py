"""Tracker YAMLs: the shipped one, a user's one, and one-line errors naming the key."""

import pytest

from tfseg.errors import ConfigError
from tfseg.track.settings import TrackerSettings, load_tracker_settings, tracker_file


def test_the_shipped_bytetrack_file_holds_the_defaults():
    assert load_tracker_settings("bytetrack.yaml") == TrackerSettings()
    assert tracker_file("bytetrack") == tracker_file("bytetrack.yaml")


def test_a_users_file_overrides_what_it_names(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("track_buffer: 60\nmatch_thresh: 0.7\nfuse_score: false\n")
    assert load_tracker_settings(path) == TrackerSettings(track_buffer=60, match_thresh=0.7,
                                                          fuse_score=False)


@pytest.mark.parametrize("text, message", [
    ("track_bufer: 60\n", "unknown tracker key 'track_bufer' (did you mean 'track_buffer'?)"),
    ("track_buffer: lots\n", "tracker key 'track_buffer' must be int, got 'lots'"),
    ("match_thresh: 1.5\n", "match_thresh must lie in [0, 1]"),
    ("tracker_type: botsort\n", "tracker_type 'botsort' is not available"),
    ("track_low_thresh: 0.5\ntrack_high_thresh: 0.3\n", "track_low_thresh 0.5 is above"),
])
def test_bad_files_name_the_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_tracker_settings(path)
    assert message in str(error.value) and str(path) in str(error.value)
    assert "\n" not in str(error.value)


def test_an_unknown_tracker_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="bytetrack.yaml"):
        load_tracker_settings("sort.yaml")
