"""Where a breaker feed starts reading ``metrics``, and the state it takes from ``breaker`` first.

A replica needs only each breaker's window and its latest state, not the whole ``metrics``
topic. :func:`start_bound` derives how far back to read from the policies: by count, the
largest count window (or half-open trial count) times ``count_margin``, per partition; by time,
the longest time window plus the longest OPEN wait plus ``margin_s``. A partition starts at the
earlier of the two offsets (never before its beginning).

State older than that is on the ``breaker`` topic, which holds only transitions and operator
commands (its length grows with state changes, not with traffic): :class:`StartState` reads it
whole, keeps each scope's latest transition and the commands published after it, and
:func:`restore` brings a board to those states through its public API (a breaker OPEN since
``t`` is opened by failed outcomes dated ``t``, judged on a :class:`FeedClock` held at ``t``;
HALF_OPEN at ``t`` is OPEN since ``t`` minus the wait). Metrics outcomes of a scope dated at or
before its restored transition are skipped: the board already stands where they led.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import orjson

from consumers.breaker import (
    BreakerBoard,
    BreakerPolicy,
    BreakerState,
    Scope,
    Transition,
    WindowSnapshot,
)
from schemas.events import BREAKER_CONTROL_TYPE, BreakerControlData, BreakerData, CloudEvent

__all__ = [
    "FeedClock",
    "Latest",
    "StartBound",
    "StartState",
    "restore",
    "scope_of",
    "start_bound",
]

COUNT_MARGIN = 4
"""Records read per partition for each outcome of the largest count window: a partition also
carries other stages' and other vendors' outcomes. A scope whose last outcomes lie further back
than that, behind a busier stage or vendor of its partition, starts with a partly filled window
(its state still comes from ``breaker``)."""
MARGIN_S = 60.0
"""Seconds read before the longest time window and OPEN wait (clock skew between producers)."""


class FeedClock:
    """Wall-clock time (epoch seconds) that :func:`restore` can hold at a past moment, so a
    restored breaker judges its outcomes as of their time rather than as of now."""

    def __init__(self) -> None:
        self._held: float | None = None

    def __call__(self) -> float:
        return time.time() if self._held is None else self._held

    @contextmanager
    def held(self, at: float) -> Iterator[None]:
        """Read as ``at`` inside the block."""
        self._held = at
        try:
            yield
        finally:
            self._held = None


@dataclass(frozen=True)
class StartBound:
    """How far back from the end of each ``metrics`` partition a feed starts."""

    count: int | None
    """Records per partition back from its end; ``None`` without a count-window policy."""
    seconds: float | None
    """Seconds back from now (by record time); ``None`` without a time-window policy."""


def start_bound(
    policies: Mapping[str, BreakerPolicy], *, count_margin: int = COUNT_MARGIN,
    margin_s: float = MARGIN_S,
) -> StartBound:
    """The start bound that covers every policy's window (see the module docstring)."""
    counts = [max(p.window_size, p.half_open_permits) for p in policies.values()
              if p.window == "count"]
    spans = [p.window_size + p.wait_in_open_s for p in policies.values() if p.window == "time"]
    return StartBound(
        count=max(counts) * count_margin if counts else None,
        seconds=max(spans) + margin_s if spans else None,
    )


def scope_of(policy: BreakerPolicy, stage: str, vendor_id: str | None) -> Scope:
    """The scope a stage's outcome (or command) belongs to under ``policy``."""
    return Scope(stage, vendor_id if policy.per_vendor else None)


def _snapshot(window: Mapping[str, float]) -> WindowSnapshot:
    return WindowSnapshot(
        calls=int(window.get("calls", 0)),
        failures=int(window.get("failures", 0)),
        slow_calls=int(window.get("slow_calls", 0)),
        failure_rate=window.get("failure_rate", -1.0),
        slow_call_rate=window.get("slow_call_rate", -1.0),
    )


@dataclass(frozen=True)
class Latest:
    """A scope's latest transition on the ``breaker`` topic."""

    transition: Transition
    """The transition as its event tells it (``at``: the event's time, epoch seconds)."""

    @property
    def to_state(self) -> BreakerState:
        """The state it entered."""
        return self.transition.to_state

    @property
    def at(self) -> float:
        """When it happened (epoch seconds)."""
        return self.transition.at


@dataclass
class StartState:
    """What the ``breaker`` topic says, read in order: the latest transition of each scope and
    the operator commands published after it (not yet reflected in a transition)."""

    policies: Mapping[str, BreakerPolicy]
    """The feed's policies: scopes of other stages are ignored."""
    latest: dict[Scope, Latest] = field(default_factory=dict)
    """Each scope's latest transition."""
    pending: list[CloudEvent[BreakerControlData]] = field(default_factory=list)
    """Commands after their scope's latest transition, in order."""

    def read(self, value: bytes) -> None:
        """Take one ``breaker`` record into account (malformed or foreign ones are ignored)."""
        raw = orjson.loads(value)
        if not isinstance(raw, dict):
            return
        if raw.get("type") == BREAKER_CONTROL_TYPE:
            command = CloudEvent[BreakerControlData].model_validate_json(value)
            if command.data.stage in self.policies:
                self.pending.append(command)
            return
        event = CloudEvent[BreakerData].model_validate_json(value)
        policy = self.policies.get(event.data.stage)
        if policy is None or event.time is None:
            return
        data = event.data
        scope = scope_of(policy, data.stage, data.vendor_id)
        self.latest[scope] = Latest(Transition(
            scope, BreakerState(data.from_state), BreakerState(data.to_state),
            event.time.timestamp(), data.reason, _snapshot(data.window),
        ))
        self.pending = [c for c in self.pending if not _covers(scope, c.data)]


def _covers(scope: Scope, command: BreakerControlData) -> bool:
    return command.stage == scope.stage and command.vendor_id in (None, scope.vendor_id)


def restore(board: BreakerBoard, state: StartState, clock: FeedClock) -> None:
    """Bring ``board``'s breakers to their latest transitions' states. The transitions this
    causes are dropped (they are on the topic already); a wait that ends later is left to the
    board, which then makes and hands out the OPEN -> HALF_OPEN transition itself."""
    for scope, latest in state.latest.items():
        policy = board.policy(scope.stage)
        if policy is None:
            continue
        vendor = scope.vendor_id or ""
        if latest.to_state is BreakerState.FORCED_OPEN:
            board.force_open(scope.stage, scope.vendor_id)
        elif latest.to_state is BreakerState.DISABLED:
            board.disable(scope.stage, scope.vendor_id)
        elif latest.to_state in (BreakerState.OPEN, BreakerState.HALF_OPEN):
            half_open = latest.to_state is BreakerState.HALF_OPEN
            since = latest.at - policy.wait_in_open_s if half_open else latest.at
            with clock.held(since):
                for _ in range(policy.effective_minimum_calls):
                    board.observe(scope.stage, vendor, failed=True, duration_s=0.0, at=since)
            if half_open:  # a non-trial outcome at the half-open moment only moves the clock
                due = max(latest.at, since + policy.wait_in_open_s)
                with clock.held(due):
                    board.observe(scope.stage, vendor, failed=False, duration_s=0.0,
                                  trial=False, at=due)
