"""The circuit breaker: a pure, thread-safe state machine with Resilience4j's semantics.

::

               failure or slow-call rate >= threshold, once minimum_calls were counted
      CLOSED ─────────────────────────────────────────────────────────────────► OPEN
        ▲                                                                         │
        │ the trials pass                                          wait_in_open_s │
        │                                                                         ▼
        └──────────────────────── HALF_OPEN (admits half_open_permits trials) ◄──┘
                                        │ the trials fail
                                        └───────────────────────────────────────► OPEN

      FORCED_OPEN and DISABLED are entered and left by hand only; reset() returns to CLOSED.

This module has no I/O. It is driven by outcomes (``record``, or ``BreakerBoard.observe`` with
the ``metrics`` topic's events) and hands out every :class:`Transition` exactly once, for the
Kafka adapter to publish on the ``breaker`` topic.

Semantics, after Resilience4j's ``CircuitBreaker``:

- **Windows.** ``count``: the last ``window_size`` outcomes. ``time``: the last ``window_size``
  seconds, in one-second buckets keyed by the outcome's time (``at``), so replicas that read the
  same events compute the same window. For a count window the minimum number of calls is capped
  at the window size, as Resilience4j does.
- **Rates** are percentages, ``-1.0`` while the window holds fewer than the minimum calls (or
  none). A call is *slow* when its duration is strictly longer than ``slow_call_duration_s``; a
  slow failure counts as both failed and slow.
- **Opening.** After each outcome recorded in CLOSED: failure rate >= threshold, or slow-call
  rate >= threshold, opens the breaker. Outcomes recorded while OPEN or FORCED_OPEN are ignored
  (the window that opened it stays as it was, for the event and the dashboards); Resilience4j
  keeps counting them in OPEN, but nothing reads that count before HALF_OPEN starts afresh.
- **Recovery.** OPEN turns HALF_OPEN once ``wait_in_open_s`` has passed since it opened: on the
  first read, acquire, record or drain after that (Resilience4j's transition on the next
  permission request, without a scheduler thread). HALF_OPEN admits exactly
  ``half_open_permits`` trial calls and judges them with the same thresholds once that many
  outcomes were recorded: over either threshold, OPEN again; otherwise CLOSED with an empty
  window. (Resilience4j caps its half-open minimum at ``minimum_calls``, so it may decide after
  fewer trials when ``minimum_calls < half_open_permits``; here every trial is always waited for.)
- **Manual states.** FORCED_OPEN admits nothing and DISABLED admits everything; neither counts
  outcomes nor changes state on its own, as in Resilience4j. ``reset()`` returns to CLOSED with an
  empty window from any state. A manual call to the state the breaker is already in changes
  nothing and produces no transition.

Time: ``clock`` and every ``at`` given to ``record`` must share one time base. The default is
``time.monotonic`` for a breaker driven by its own calls; a breaker driven by ``metrics`` events
passes their event time as ``at`` and ``clock=time.time``.

The policy and its vocabulary (``BreakerPolicy``, ``BreakerState``, ``Scope``) live in
:mod:`consumers.breaker_policy`, the sliding windows in :mod:`consumers.breaker_window`; this
module re-exports the public names.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from consumers.breaker_policy import BreakerPolicy, BreakerState, Scope
from consumers.breaker_window import (
    EMPTY_SNAPSHOT,
    CountWindow,
    TimeWindow,
    Window,
    WindowSnapshot,
)
from schemas.events import BreakerData, MetricsData

__all__ = [
    "BreakerBoard",
    "BreakerPolicy",
    "BreakerState",
    "CallOutcome",
    "CircuitBreaker",
    "Permit",
    "Scope",
    "ScopeStatus",
    "Transition",
    "WindowSnapshot",
    "call_outcome",
]

Clock = Callable[[], float]


@dataclass(frozen=True)
class Transition:
    """One state change, with the window figures that caused it."""

    scope: Scope
    """The breaker that changed."""
    from_state: BreakerState
    """The state it left."""
    to_state: BreakerState
    """The state it entered."""
    at: float
    """When, on the breaker's clock: the ``at`` of the outcome that caused it, the end of the
    wait for OPEN -> HALF_OPEN, or the clock reading for a manual change."""
    reason: str
    """A human sentence, e.g. ``failure rate 62.0 % >= 50.0 % over 20 calls``."""
    snapshot: WindowSnapshot
    """The window at the moment of the change (for OPEN -> HALF_OPEN: the window that opened
    it)."""

    def to_event_data(self) -> BreakerData:
        """The ``data`` of the ``breaker`` event that announces this transition."""
        return BreakerData(
            stage=self.scope.stage,
            vendor_id=self.scope.vendor_id,
            from_state=self.from_state.value,
            to_state=self.to_state.value,
            window=self.snapshot.as_dict(),
            reason=self.reason,
        )


class CallOutcome(NamedTuple):
    """A ``metrics`` event as the breaker sees it."""

    failed: bool
    """``fail`` or ``error``."""
    duration_s: float
    """The item's latency in seconds."""


def call_outcome(metrics: MetricsData) -> CallOutcome | None:
    """The breaker input of a ``metrics`` event; ``None`` when the item was not a call.

    ``fail`` (a failed gate) and ``error`` are failures, ``pass`` is a success; ``rejected`` and
    ``skipped`` items never reached the stage's processor and are not counted. A negative or
    NaN latency counts as 0 s (the outcome still counts).
    """
    if metrics.outcome in ("rejected", "skipped"):
        return None
    duration = metrics.latency_ms / 1000.0
    if math.isnan(duration) or duration < 0.0:
        duration = 0.0
    return CallOutcome(failed=metrics.outcome in ("fail", "error"), duration_s=duration)


class Permit(NamedTuple):
    """The breaker's answer to one call, with the state it was given in."""

    allowed: bool
    """Whether the call may run now."""
    state: BreakerState
    """The state that decided it: a call allowed in HALF_OPEN is a trial; one refused in
    HALF_OPEN found every trial permit taken and waits for the trials' verdict."""


_DEFAULT_SCOPE = Scope("default")


def _pct(value: float) -> str:
    return f"{value:.1f} %"


class CircuitBreaker:
    """One breaker: a sliding window of outcomes and the state it implies.

    Every method is thread-safe. Every :class:`Transition` is handed out exactly once: by the
    call that returns it (``record``, the manual changes, ``drain``), or, when a read caused it
    (``state``, ``try_acquire``, ``snapshot``), by the next of those calls. Publish whatever
    they return, and call ``drain()`` regularly so an automatic OPEN -> HALF_OPEN is announced
    even while no outcome arrives.
    """

    def __init__(
        self,
        policy: BreakerPolicy,
        *,
        scope: Scope = _DEFAULT_SCOPE,
        clock: Clock = time.monotonic,
    ) -> None:
        self._policy = policy
        self._scope = scope
        self._clock = clock
        self._lock = threading.Lock()
        self._state = BreakerState.CLOSED
        self._window: Window | None = self._closed_window()
        self._held = EMPTY_SNAPSHOT
        self._opened_at = 0.0
        self._half_open_at = 0.0
        self._permits = 0
        self._outbox: list[Transition] = []

    @property
    def policy(self) -> BreakerPolicy:
        """The policy this breaker applies."""
        return self._policy

    @property
    def scope(self) -> Scope:
        """What this breaker guards."""
        return self._scope

    @property
    def state(self) -> BreakerState:
        """The current state (turns OPEN into HALF_OPEN once the wait is over)."""
        with self._lock:
            self._tick(self._clock())
            return self._state

    def try_acquire(self) -> bool:
        """Whether one more call may run now (in HALF_OPEN this takes one of the trial permits)."""
        return self.acquire().allowed

    def acquire(self) -> Permit:
        """:meth:`try_acquire` with the state that decided it, read under the same lock (so a
        trial is never mistaken for an ordinary call while the state changes)."""
        with self._lock:
            self._tick(self._clock())
            state = self._state
            if state in (BreakerState.CLOSED, BreakerState.DISABLED):
                return Permit(True, state)
            if state is BreakerState.HALF_OPEN and self._permits > 0:
                self._permits -= 1
                return Permit(True, state)
            return Permit(False, state)

    def record(
        self, failed: bool, duration_s: float, *, at: float | None = None,
        trial: bool | None = None,
    ) -> list[Transition]:
        """Count one call's outcome and return the transitions not yet handed out.

        ``at`` is the outcome's time on the breaker's clock (a ``metrics`` event's time); it
        places the outcome in a time window's bucket and dates a transition it causes. Default:
        ``clock()``. An outcome older than a time window is not counted.

        The outcome is judged in the state the breaker was in at ``at``: an OPEN breaker whose
        wait is over by then half-opens first, so a replica replaying the metrics topic later
        makes the same transitions at the same points as one that read it live. In HALF_OPEN
        only trial outcomes count: ``trial=False`` (an item admitted before the breaker opened,
        finishing late) and outcomes dated before the half-open moment are ignored;
        ``trial=None`` (unknown) counts.
        """
        if math.isnan(duration_s) or duration_s < 0:
            raise ValueError(f"duration_s must be a duration >= 0 seconds, got {duration_s!r}")
        if at is not None and not math.isfinite(at):
            raise ValueError(f"at must be a finite time on the breaker's clock, got {at!r}")
        with self._lock:
            now = self._clock()
            when = now if at is None else at
            self._tick(when)
            if self._state is BreakerState.HALF_OPEN and (
                trial is False or when < self._half_open_at
            ):
                return self._take()
            window = self._window
            if window is not None and self._state in (BreakerState.CLOSED, BreakerState.HALF_OPEN):
                slow = duration_s > self._policy.slow_call_duration_s
                if window.add(failed, slow, when):
                    self._judge(window.snapshot(max(now, when)), when)
            return self._take()

    def snapshot(self) -> WindowSnapshot:
        """The current window's figures (OPEN: the window that opened it; manual states: empty)."""
        with self._lock:
            now = self._clock()
            self._tick(now)
            return self._current(now)

    def drain(self) -> list[Transition]:
        """The transitions not yet handed out (after applying an automatic OPEN -> HALF_OPEN)."""
        with self._lock:
            self._tick(self._clock())
            return self._take()

    def force_open(self) -> list[Transition]:
        """Refuse every call until ``reset()`` (or another manual change); counts nothing."""
        return self._manual(BreakerState.FORCED_OPEN, "forced open by an operator")

    def disable(self) -> list[Transition]:
        """Admit every call and never change state on its own; counts nothing."""
        return self._manual(BreakerState.DISABLED, "disabled by an operator")

    def reset(self) -> list[Transition]:
        """Back to CLOSED with an empty window, from any state."""
        return self._manual(BreakerState.CLOSED, "reset by an operator")

    # --- internals: every method below runs with the lock held ---

    def _closed_window(self) -> Window:
        policy = self._policy
        if policy.window == "count":
            return CountWindow(policy.window_size, policy.effective_minimum_calls)
        return TimeWindow(policy.window_size, policy.minimum_calls)

    def _current(self, now: float) -> WindowSnapshot:
        return self._held if self._window is None else self._window.snapshot(now)

    def _take(self) -> list[Transition]:
        out, self._outbox = self._outbox, []
        return out

    def _move(self, to: BreakerState, at: float, reason: str, snapshot: WindowSnapshot) -> None:
        self._outbox.append(Transition(self._scope, self._state, to, at, reason, snapshot))
        self._state = to

    def _tick(self, now: float) -> None:
        if self._state is not BreakerState.OPEN:
            return
        due = self._opened_at + self._policy.wait_in_open_s
        if now < due:
            return
        permits = self._policy.half_open_permits
        self._move(
            BreakerState.HALF_OPEN,
            due,
            f"waited {self._policy.wait_in_open_s:g} s in OPEN; admitting {permits} trial calls",
            self._held,
        )
        self._window = CountWindow(permits, permits)
        self._permits = permits
        self._half_open_at = due

    def _over(self, snap: WindowSnapshot) -> list[str]:
        """What exceeds its threshold, as sentence parts (empty below the minimum calls)."""
        policy = self._policy
        parts = []
        if snap.failure_rate >= 0 and snap.failure_rate >= policy.failure_rate_threshold:
            parts.append(
                f"failure rate {_pct(snap.failure_rate)} >= {_pct(policy.failure_rate_threshold)}"
            )
        if snap.slow_call_rate >= 0 and snap.slow_call_rate >= policy.slow_call_rate_threshold:
            parts.append(
                f"slow-call rate {_pct(snap.slow_call_rate)} >= "
                f"{_pct(policy.slow_call_rate_threshold)} (calls over "
                f"{policy.slow_call_duration_s:g} s)"
            )
        return parts

    def _judge(self, snap: WindowSnapshot, at: float) -> None:
        over = self._over(snap)
        if self._state is BreakerState.CLOSED:
            if over:
                self._open(at, f"{' and '.join(over)} over {snap.calls} calls", snap)
            return
        if snap.calls < self._policy.half_open_permits:
            return
        if over:
            self._open(at, f"trial calls: {' and '.join(over)} over {snap.calls} calls", snap)
            return
        policy = self._policy
        self._move(
            BreakerState.CLOSED,
            at,
            f"trial calls passed: failure rate {_pct(snap.failure_rate)} < "
            f"{_pct(policy.failure_rate_threshold)}, slow-call rate {_pct(snap.slow_call_rate)} < "
            f"{_pct(policy.slow_call_rate_threshold)} over {snap.calls} calls",
            snap,
        )
        self._window = self._closed_window()

    def _open(self, at: float, reason: str, snap: WindowSnapshot) -> None:
        self._move(BreakerState.OPEN, at, reason, snap)
        self._window = None
        self._held = snap
        self._opened_at = at
        self._permits = 0

    def _manual(self, to: BreakerState, reason: str) -> list[Transition]:
        with self._lock:
            now = self._clock()
            self._tick(now)
            if to is BreakerState.CLOSED:
                if self._state is not BreakerState.CLOSED:
                    self._move(to, now, reason, self._current(now))
                self._window = self._closed_window()
            elif self._state is not to:
                self._move(to, now, reason, self._current(now))
                self._window = None
                self._held = EMPTY_SNAPSHOT
            self._permits = 0
            return self._take()


class ScopeStatus(NamedTuple):
    """One breaker's row in the CLI table and the Prometheus gauges."""

    scope: Scope
    """What the breaker guards."""
    state: BreakerState
    """Its state now."""
    snapshot: WindowSnapshot
    """Its window now."""


class BreakerBoard:
    """Every breaker of a worker: one per stage, or per (stage, vendor) where the policy says.

    Stage-level breakers exist from the start; per-vendor ones are made on first use. A stage
    without a policy has no breaker: ``allow`` admits and ``observe`` ignores its items.
    """

    def __init__(
        self, policies: Mapping[str, BreakerPolicy], *, clock: Clock = time.monotonic
    ) -> None:
        self._policies = dict(policies)
        self._clock = clock
        self._lock = threading.Lock()
        self._breakers: dict[Scope, CircuitBreaker] = {}
        for stage, policy in self._policies.items():
            if not policy.per_vendor:
                self._breakers[Scope(stage)] = CircuitBreaker(
                    policy, scope=Scope(stage), clock=clock
                )

    def policy(self, stage: str) -> BreakerPolicy | None:
        """The policy of ``stage``; ``None`` if it has no breaker."""
        return self._policies.get(stage)

    def allow(self, stage: str, vendor_id: str) -> bool:
        """Whether the stage may process this vendor's next item now (takes a trial permit in
        HALF_OPEN)."""
        return self.acquire(stage, vendor_id).allowed

    def acquire(self, stage: str, vendor_id: str) -> Permit:
        """:meth:`CircuitBreaker.acquire` on the item's scope (a stage without a breaker admits
        everything, as CLOSED)."""
        breaker = self._find(stage, vendor_id)
        return Permit(True, BreakerState.CLOSED) if breaker is None else breaker.acquire()

    def observe(
        self, stage: str, vendor_id: str, *, failed: bool, duration_s: float,
        at: float | None = None, trial: bool | None = None,
    ) -> list[Transition]:
        """Count one outcome on its scope; the transitions that breaker had not handed out."""
        breaker = self._find(stage, vendor_id)
        return [] if breaker is None else breaker.record(failed, duration_s, at=at, trial=trial)

    def observe_metrics(self, metrics: MetricsData, *, at: float | None = None) -> list[Transition]:
        """:meth:`observe` a ``metrics`` event (``at``: its time on this board's clock)."""
        outcome = call_outcome(metrics)
        if outcome is None:
            return []
        return self.observe(
            metrics.stage, metrics.vendor_id, failed=outcome.failed,
            duration_s=outcome.duration_s, at=at, trial=metrics.trial,
        )

    def state(self, stage: str, vendor_id: str | None = None) -> BreakerState:
        """The state of a scope (a vendor not seen yet is CLOSED)."""
        return self._required(stage, vendor_id).state

    def force_open(self, stage: str, vendor_id: str | None = None) -> list[Transition]:
        """:meth:`CircuitBreaker.force_open` on a scope."""
        return self._required(stage, vendor_id).force_open()

    def disable(self, stage: str, vendor_id: str | None = None) -> list[Transition]:
        """:meth:`CircuitBreaker.disable` on a scope."""
        return self._required(stage, vendor_id).disable()

    def reset(self, stage: str, vendor_id: str | None = None) -> list[Transition]:
        """:meth:`CircuitBreaker.reset` on a scope."""
        return self._required(stage, vendor_id).reset()

    def drain(self) -> list[Transition]:
        """Every transition not yet handed out, from every breaker, oldest first."""
        with self._lock:
            breakers = list(self._breakers.values())
        out = [t for breaker in breakers for t in breaker.drain()]
        return sorted(out, key=lambda t: t.at)

    def snapshots(self) -> list[ScopeStatus]:
        """Every breaker's scope, state and window, sorted by scope."""
        with self._lock:
            breakers = sorted(self._breakers.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        return [ScopeStatus(scope, b.state, b.snapshot()) for scope, b in breakers]

    def _find(self, stage: str, vendor_id: str | None) -> CircuitBreaker | None:
        policy = self._policies.get(stage)
        if policy is None:
            return None
        if not policy.per_vendor:
            return self._breakers[Scope(stage)]
        if vendor_id is None:
            raise ValueError(
                f"stage {stage!r} has one breaker per vendor: give a vendor id"
            )
        scope = Scope(stage, vendor_id)
        with self._lock:
            breaker = self._breakers.get(scope)
            if breaker is None:
                breaker = CircuitBreaker(policy, scope=scope, clock=self._clock)
                self._breakers[scope] = breaker
            return breaker

    def _required(self, stage: str, vendor_id: str | None) -> CircuitBreaker:
        breaker = self._find(stage, vendor_id)
        if breaker is None:
            raise ValueError(
                f"stage {stage!r} has no breaker policy; stages with one: {sorted(self._policies)}"
            )
        return breaker
