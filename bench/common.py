"""Small helpers shared by the benchmark scripts."""

from __future__ import annotations

import signal
import statistics
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so cleanup in ``finally`` blocks runs (servers stop)."""

    def _raise_exit(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise_exit)
