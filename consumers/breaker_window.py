"""A breaker's sliding window of outcomes: a count window or a time window, and its figures.

``count``: the last ``window_size`` outcomes. ``time``: the last ``window_size`` seconds, in
one-second buckets keyed by the outcome's time (``at``), so replicas that read the same events
compute the same window. Rates are percentages, ``-1.0`` while the window holds fewer than the
minimum calls (or none).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Final

__all__ = ["EMPTY_SNAPSHOT", "CountWindow", "TimeWindow", "Window", "WindowSnapshot"]


@dataclass(frozen=True)
class WindowSnapshot:
    """The figures of a breaker's window at one moment."""

    calls: int
    """Outcomes in the window."""
    failures: int
    """Failed outcomes (errors plus failed gates) in the window."""
    slow_calls: int
    """Outcomes slower than the policy's ``slow_call_duration_s`` (failed or not)."""
    failure_rate: float
    """Percent of failed calls; ``-1.0`` below the minimum number of calls."""
    slow_call_rate: float
    """Percent of slow calls; ``-1.0`` below the minimum number of calls."""

    def as_dict(self) -> dict[str, float]:
        """The figures as ``BreakerData.window``."""
        return {
            "calls": float(self.calls),
            "failures": float(self.failures),
            "slow_calls": float(self.slow_calls),
            "failure_rate": self.failure_rate,
            "slow_call_rate": self.slow_call_rate,
        }


EMPTY_SNAPSHOT: Final = WindowSnapshot(
    calls=0, failures=0, slow_calls=0, failure_rate=-1.0, slow_call_rate=-1.0
)
"""The figures of a window that holds nothing."""


def _rate(count: int, calls: int, minimum: int) -> float:
    if calls == 0 or calls < minimum:
        return -1.0
    return count * 100.0 / calls


class Window:
    """Running totals of outcomes; subclasses decide which outcomes are still in the window."""

    def __init__(self, minimum_calls: int) -> None:
        self.minimum_calls = minimum_calls
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def add(self, failed: bool, slow: bool, at: float) -> bool:
        """Count one outcome at time ``at``; ``False`` if it is too old for the window."""
        raise NotImplementedError

    def expire(self, now: float) -> None:
        """Drop what has left the window by ``now``."""

    def snapshot(self, now: float) -> WindowSnapshot:
        """The window's figures at ``now`` (after dropping what has left it)."""
        self.expire(now)
        return WindowSnapshot(
            calls=self.calls,
            failures=self.failures,
            slow_calls=self.slow,
            failure_rate=_rate(self.failures, self.calls, self.minimum_calls),
            slow_call_rate=_rate(self.slow, self.calls, self.minimum_calls),
        )


class CountWindow(Window):
    """The last ``size`` outcomes, whatever their time."""

    def __init__(self, size: int, minimum_calls: int) -> None:
        super().__init__(minimum_calls)
        self._size = size
        self._outcomes: deque[tuple[bool, bool]] = deque()

    def add(self, failed: bool, slow: bool, at: float) -> bool:  # noqa: ARG002 - counts ignore time
        if len(self._outcomes) == self._size:
            old_failed, old_slow = self._outcomes.popleft()
            self.calls -= 1
            self.failures -= old_failed
            self.slow -= old_slow
        self._outcomes.append((failed, slow))
        self.calls += 1
        self.failures += failed
        self.slow += slow
        return True


class TimeWindow(Window):
    """The last ``size`` whole seconds up to the newest second seen (by ``at`` or ``now``)."""

    def __init__(self, size: int, minimum_calls: int) -> None:
        super().__init__(minimum_calls)
        self._size = size
        self._head: int | None = None
        self._buckets: dict[int, list[int]] = {}

    def expire(self, now: float) -> None:
        second = math.floor(now)
        if self._head is not None and second <= self._head:
            return
        self._head = second
        oldest = second - self._size + 1
        for key in [k for k in self._buckets if k < oldest]:
            calls, failures, slow = self._buckets.pop(key)
            self.calls -= calls
            self.failures -= failures
            self.slow -= slow

    def add(self, failed: bool, slow: bool, at: float) -> bool:
        self.expire(at)
        second = math.floor(at)
        if self._head is not None and second <= self._head - self._size:
            return False
        bucket = self._buckets.setdefault(second, [0, 0, 0])
        bucket[0] += 1
        bucket[1] += failed
        bucket[2] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow
        return True
