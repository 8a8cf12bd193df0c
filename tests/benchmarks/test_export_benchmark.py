"""`tfseg benchmark export` on a tiny input: every export of a model built, loaded and timed.

One model: each model goes through the same code, and its four exports take minutes on
2 cores; the YOLO26 files themselves are tested in tests/export/test_yolo26_export.py.
"""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # four exports, each loaded and timed twice

KINDS = ["tflite raw", "tflite e2e", "savedmodel raw", "savedmodel e2e"]


def test_export_benchmark_rows_then_a_second_run_times_the_same_files(tmp_path):
    out, work = tmp_path / "bench.json", tmp_path / "files"
    command = [sys.executable, "-m", "tfseg", "benchmark", "export", "--sizes", "64",
               "--modes", "float32", "--runs", "2", "--models", "yolov8-seg-n",
               "--work", str(work), "--output", str(out)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [(r["model"], r["kind"]) for r in rows] == [
        ("yolov8-seg-n", kind) for kind in KINDS]
    for row in rows:
        assert row["size"] == 64 and row["mode"] == "float32" and "error" not in row
        assert 0 < row["min_ms"] <= row["median_ms"] <= row["p90_ms"] + 1e-9
    raw, e2e = (next(r for r in rows if r["kind"] == kind) for kind in ("tflite raw", "tflite e2e"))
    assert e2e["e2e_over_raw"] == e2e["min_ms"] / raw["min_ms"]
    assert "e2e_over_raw" not in raw and raw["detections"] is None
    # Score threshold 0: the end-to-end graph returns detections (their count depends on NMS
    # ties among a random network's boxes; parity is tested in tests/export).
    assert e2e["detections"] >= 1 and raw["mb"] > 0 and e2e["mb"] > 0
    # The files stay in --work: a second run times them again without exporting.
    names = sorted(p.name for p in work.iterdir())
    assert "yolov8-seg-n_64_float32.tflite" in names and "yolov8-seg-n_64_savedmodel" in names
    stamps = {p: p.stat().st_mtime_ns for p in work.glob("*.tflite")}
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in work.glob("*.tflite")} == stamps
    assert "e2e/raw" in again.stdout  # the table follows the JSON lines
