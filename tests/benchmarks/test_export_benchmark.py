"""`tfseg benchmark export` on a tiny input: every export built, loaded and timed."""

import json
import subprocess
import sys


def test_export_benchmark_rows(tmp_path):
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, "-m", "tfseg", "benchmark", "export", "--sizes", "64",
                             "--modes", "float32", "--runs", "2", "--output", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["kind"] for r in rows] == ["tflite raw", "tflite e2e", "savedmodel raw",
                                         "savedmodel e2e"]
    for row in rows:
        assert row["size"] == 64 and row["mode"] == "float32" and "error" not in row
        assert 0 < row["median_ms"] <= row["p90_ms"] + 1e-9
    # Score threshold 0: the end-to-end graphs return detections (their count depends on NMS
    # ties among a random network's boxes; parity is tested in tests/export).
    assert rows[1]["detections"] >= 1 and rows[3]["detections"] >= 1
    assert rows[0]["detections"] is None and 0 < rows[0]["mb"] < rows[1]["mb"] + 1
