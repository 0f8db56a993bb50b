"""A circuit breaker's policy and its vocabulary: states, scopes, and the validated knobs.

:class:`BreakerPolicy` is Resilience4j's ``CircuitBreakerConfig`` in seconds; settings files
give one per stage (``dict[str, BreakerPolicy]``, validated by pydantic or
:meth:`BreakerPolicy.from_mapping`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, ClassVar, Literal, NamedTuple

from pydantic import ConfigDict

__all__ = ["BreakerPolicy", "BreakerState", "Scope"]


class BreakerState(StrEnum):
    """The states of a circuit breaker (Resilience4j's names)."""

    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"
    FORCED_OPEN = "FORCED_OPEN"
    DISABLED = "DISABLED"


class Scope(NamedTuple):
    """What one breaker guards: a stage, or one vendor's items in a stage."""

    stage: str
    """The stage name (``inpaint``, ``upscale``, ...)."""
    vendor_id: str | None = None
    """The vendor, when the stage's policy is per vendor; ``None`` for the whole stage."""


def _check_int(name: str, value: object, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def _check_float(name: str, value: object, *, low: float, high: float = math.inf) -> float:
    """``value`` as a float in ``(low, high]``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not low < value <= high:
        bound = "" if math.isinf(high) else f" and <= {high:g}"
        raise ValueError(f"{name} must be > {low:g}{bound}, got {value!r}")
    return float(value)


@dataclass(frozen=True, kw_only=True)
class BreakerPolicy:
    """How one stage's breaker decides (Resilience4j's ``CircuitBreakerConfig``, in seconds).

    Build it with keywords, with :meth:`from_mapping` (settings files), or let pydantic validate
    it as a field type (``dict[str, BreakerPolicy]``).
    """

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    window: Literal["count", "time"] = "count"
    """``count``: the last ``window_size`` outcomes; ``time``: the last ``window_size`` seconds."""
    window_size: int = 50
    """Outcomes (count window) or seconds (time window) in the sliding window; >= 1."""
    minimum_calls: int = 20
    """Calls the window must hold before any rate is computed (and the breaker can open); >= 1.
    For a count window the effective minimum is ``min(minimum_calls, window_size)``."""
    failure_rate_threshold: float = 50.0
    """Percent of failed calls (errors plus failed gates) that opens the breaker; 0 < x <= 100."""
    slow_call_rate_threshold: float = 100.0
    """Percent of slow calls that opens the breaker; 0 < x <= 100. At 100 only a window of
    nothing but slow calls opens it, so it is effectively off."""
    slow_call_duration_s: float = 60.0
    """A call longer than this (seconds, strictly) is slow; > 0."""
    wait_in_open_s: float = 30.0
    """Seconds in OPEN before HALF_OPEN; > 0."""
    half_open_permits: int = 5
    """Trial calls admitted in HALF_OPEN; all of them are judged before it closes or reopens."""
    per_vendor: bool = False
    """One breaker per (stage, vendor) instead of one per stage, so one vendor's bad batch does
    not stop everyone."""
    when_open: Literal["review", "pause"] = "review"
    """What the stage does while its breaker refuses: send items to ``review`` untouched, or
    pause its partitions."""

    def __post_init__(self) -> None:
        if self.window not in ("count", "time"):
            raise ValueError(f"window must be 'count' or 'time', got {self.window!r}")
        _check_int("window_size", self.window_size, 1)
        _check_int("minimum_calls", self.minimum_calls, 1)
        _check_int("half_open_permits", self.half_open_permits, 1)
        for name in ("failure_rate_threshold", "slow_call_rate_threshold"):
            object.__setattr__(self, name, _check_float(name, getattr(self, name), low=0.0,
                                                        high=100.0))
        for name in ("slow_call_duration_s", "wait_in_open_s"):
            object.__setattr__(self, name, _check_float(name, getattr(self, name), low=0.0))
        if not isinstance(self.per_vendor, bool):
            raise ValueError(f"per_vendor must be true or false, got {self.per_vendor!r}")
        if self.when_open not in ("review", "pause"):
            raise ValueError(f"when_open must be 'review' or 'pause', got {self.when_open!r}")

    @property
    def effective_minimum_calls(self) -> int:
        """The minimum calls actually applied (capped at the size of a count window)."""
        if self.window == "count":
            return min(self.minimum_calls, self.window_size)
        return self.minimum_calls

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> BreakerPolicy:
        """A policy from a settings mapping; unknown keys and bad values raise ``ValueError``."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"unknown breaker policy keys {unknown}; known keys are {sorted(known)}"
            )
        return cls(**data)
