"""Small timing helpers shared by the benchmarks."""

from __future__ import annotations

import resource
import time

import numpy as np


def times_ms(fn, runs: int, warmup: int = 1) -> list[float]:
    """Wall time of each of ``runs`` calls of ``fn()`` in milliseconds, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(1000.0 * (time.perf_counter() - start))
    return times


def median_ms(fn, runs: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``runs`` calls after ``warmup``."""
    return float(np.median(times_ms(fn, runs, warmup)))


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
