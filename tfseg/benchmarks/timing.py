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


def time_interleaved(calls: dict, rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    """Milliseconds of each call of each function, timed round by round.

    Each round calls every function once, the order rotating from round to round, so a
    machine that slows down or speeds up during the run weighs on every function alike: the
    figures of one run compare with each other even on a shared machine.

    Args:
        calls: name -> function of no arguments.
        rounds: timed calls of each function.
        warmup: untimed calls of each function first.

    Returns:
        name -> the ``rounds`` times in ms, in round order.
    """
    names = list(calls)
    for name in names:
        for _ in range(warmup):
            calls[name]()
    times = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(1000.0 * (time.perf_counter() - start))
    return times


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
