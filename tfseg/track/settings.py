"""Tracker settings: a YAML file (``configs/trackers/bytetrack.yaml`` or the user's own)."""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from tfseg.errors import ConfigError


@dataclass(frozen=True)
class TrackerSettings:
    """ByteTrack's knobs (the names the Ultralytics tracker YAMLs use, so those files load).

    Attributes:
        tracker_type: "bytetrack" (the only tracker here).
        track_high_thresh: detections at or above it take part in the first association.
        track_low_thresh: detections in [low, high) only extend tracks (second association);
            below it they are ignored. Also the detector's score threshold while tracking.
        new_track_thresh: an unmatched detection at or above it starts a track.
        track_buffer: frames a lost track is kept (at 30 frames/s) before it is removed.
        match_thresh: the largest ``1 - IoU`` cost the first association accepts.
        fuse_score: the first association's similarity is IoU times the detection score.
    """
    tracker_type: str = "bytetrack"
    track_high_thresh: float = 0.25
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.25
    track_buffer: int = 30
    match_thresh: float = 0.8
    fuse_score: bool = True


def tracker_file(name: str | Path) -> Path:
    """A tracker YAML: a file path, or the name of a shipped one (``bytetrack.yaml``,
    ``bytetrack``) under configs/trackers.

    Raises:
        ConfigError: neither exists.
    """
    path = Path(name)
    if path.is_file():
        return path
    shipped_dir = Path(str(resources.files("tfseg.configs"))) / "trackers"
    shipped = shipped_dir / (path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml")
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.name for p in shipped_dir.glob("*.yaml")))
    raise ConfigError(f"tracker '{name}' is neither a file nor a shipped tracker ({known})")


def load_tracker_settings(name: str | Path) -> TrackerSettings:
    """Read and check a tracker YAML (see ``tracker_file``); missing keys take the defaults.

    Raises:
        ConfigError: unknown key (with the closest known one), a value of the wrong type or
            range, or a tracker type other than bytetrack.
    """
    path = tracker_file(name)
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a tracker file is a mapping of key: value")
    fields = {f.name: f for f in dataclasses.fields(TrackerSettings)}
    values = {}
    for key, value in content.items():
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise ConfigError(f"{path}: unknown tracker key '{key}'{hint}")
        values[key] = _checked(path, key, value, type(getattr(TrackerSettings, key)))
    settings = TrackerSettings(**values)
    if settings.tracker_type != "bytetrack":
        raise ConfigError(f"{path}: tracker_type '{settings.tracker_type}' is not available; "
                          "tfseg tracks with bytetrack")
    for key in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh"):
        if not 0.0 <= getattr(settings, key) <= 1.0:
            raise ConfigError(f"{path}: {key} must lie in [0, 1], got {getattr(settings, key)}")
    if settings.track_low_thresh > settings.track_high_thresh:
        raise ConfigError(f"{path}: track_low_thresh {settings.track_low_thresh} is above "
                          f"track_high_thresh {settings.track_high_thresh}")
    if settings.track_buffer < 0:
        raise ConfigError(f"{path}: track_buffer must be 0 or more, got {settings.track_buffer}")
    return settings


def _checked(path: Path, key: str, value, kind: type):
    """``value`` as ``kind`` (ints are accepted for floats), or a ConfigError naming the key."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    raise ConfigError(f"{path}: tracker key '{key}' must be {kind.__name__}, got {value!r}")
