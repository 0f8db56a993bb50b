"""The circuit breaker's state machine, after the scenarios of Resilience4j's own suite.

A fake clock drives every wait and every time window: no test sleeps.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from consumers.breaker import (
    BreakerBoard,
    BreakerPolicy,
    BreakerState,
    CallOutcome,
    CircuitBreaker,
    Permit,
    Scope,
    Transition,
    WindowSnapshot,
    call_outcome,
)
from schemas.events import BreakerData, MetricsData

CLOSED = BreakerState.CLOSED
OPEN = BreakerState.OPEN
HALF_OPEN = BreakerState.HALF_OPEN
FORCED_OPEN = BreakerState.FORCED_OPEN
DISABLED = BreakerState.DISABLED

Factory = Callable[..., CircuitBreaker]


class FakeClock:
    """A settable clock, thread-safe enough for reads from many threads."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker_factory(clock: FakeClock) -> Callable[..., CircuitBreaker]:
    """A breaker on the fake clock; keywords override a small default policy."""

    def make(**knobs: Any) -> CircuitBreaker:
        defaults: dict[str, Any] = {
            "window_size": 10, "minimum_calls": 4, "half_open_permits": 3, "wait_in_open_s": 30.0,
        }
        return CircuitBreaker(
            BreakerPolicy(**(defaults | knobs)), scope=Scope("inpaint"), clock=clock
        )

    return make


@pytest.fixture
def breaker(breaker_factory: Callable[..., CircuitBreaker]) -> CircuitBreaker:
    return breaker_factory()


def record_many(breaker: CircuitBreaker, pattern: str, duration_s: float = 0.1) -> list[Transition]:
    """Record ``pattern`` (``F`` failed, ``P`` passed) in order; every transition returned."""
    out: list[Transition] = []
    for mark in pattern:
        out += breaker.record(mark == "F", duration_s)
    return out


def open_breaker(breaker: CircuitBreaker) -> Transition:
    (opened,) = record_many(breaker, "F" * breaker.policy.effective_minimum_calls)
    assert opened.to_state is OPEN
    return opened


# --------------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------------


def test_policy_defaults_follow_the_brief() -> None:
    policy = BreakerPolicy()
    assert (policy.window, policy.window_size, policy.minimum_calls) == ("count", 50, 20)
    assert (policy.failure_rate_threshold, policy.slow_call_rate_threshold) == (50.0, 100.0)
    assert (policy.slow_call_duration_s, policy.wait_in_open_s) == (60.0, 30.0)
    assert (policy.half_open_permits, policy.per_vendor, policy.when_open) == (5, False, "review")


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"window": "sliding"}, "window must be 'count' or 'time'"),
        ({"window_size": 0}, "window_size must be >= 1"),
        ({"minimum_calls": 2.5}, "minimum_calls must be an integer"),
        ({"half_open_permits": True}, "half_open_permits must be an integer"),
        ({"failure_rate_threshold": 0}, "failure_rate_threshold must be > 0 and <= 100"),
        ({"slow_call_rate_threshold": 100.5}, "slow_call_rate_threshold must be > 0 and <= 100"),
        ({"slow_call_duration_s": -1}, "slow_call_duration_s must be > 0"),
        ({"wait_in_open_s": float("nan")}, "wait_in_open_s must be a number"),
        ({"when_open": "drop"}, "when_open must be 'review' or 'pause'"),
        ({"per_vendor": "yes"}, "per_vendor must be true or false"),
    ],
)
def test_policy_rejects_bad_values_with_clear_messages(knobs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BreakerPolicy(**knobs)


def test_policy_from_mapping_and_as_a_pydantic_field() -> None:
    policy = BreakerPolicy.from_mapping({"window": "time", "window_size": 60, "per_vendor": True})
    assert (policy.window, policy.window_size, policy.per_vendor) == ("time", 60, True)
    with pytest.raises(ValueError, match=r"unknown breaker policy keys \['windw'\]"):
        BreakerPolicy.from_mapping({"windw": "count"})

    adapter = TypeAdapter(dict[str, BreakerPolicy])
    policies = adapter.validate_python({"upscale": {"failure_rate_threshold": 25}})
    assert policies["upscale"].failure_rate_threshold == 25.0
    with pytest.raises(ValidationError, match="window_size must be >= 1"):
        adapter.validate_python({"upscale": {"window_size": 0}})
    with pytest.raises(ValidationError, match="bogus"):
        adapter.validate_python({"upscale": {"bogus": 1}})


def test_count_window_caps_minimum_calls_at_its_size(breaker_factory: Factory) -> None:
    breaker = breaker_factory(window_size=5, minimum_calls=20)
    assert breaker.policy.effective_minimum_calls == 5
    assert record_many(breaker, "FFFF") == []
    (opened,) = record_many(breaker, "F")
    assert opened.snapshot.calls == 5


# --------------------------------------------------------------------------------------------
# CLOSED -> OPEN: minimum calls, thresholds, windows
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("minimum", [1, 4, 10])
def test_no_decision_before_the_minimum_calls(breaker_factory: Factory, minimum: int) -> None:
    breaker = breaker_factory(minimum_calls=minimum)
    assert record_many(breaker, "F" * (minimum - 1)) == []
    assert breaker.state is CLOSED
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures) == (minimum - 1, minimum - 1)
    assert snap.failure_rate == snap.slow_call_rate == -1.0
    (opened,) = breaker.record(True, 0.1)
    assert (opened.from_state, opened.to_state) == (CLOSED, OPEN)
    assert opened.snapshot.failure_rate == 100.0
    assert breaker.state is OPEN


@pytest.mark.parametrize(("failures", "expected"), [(499, CLOSED), (500, OPEN)])
def test_failure_rate_threshold_boundary(
    breaker_factory: Factory, failures: int, expected: BreakerState
) -> None:
    breaker = breaker_factory(window_size=1000, minimum_calls=1000)
    record_many(breaker, "P" * (1000 - failures) + "F" * failures)
    assert breaker.state is expected
    assert breaker.snapshot().failure_rate == failures / 10


def test_count_window_slides_over_the_last_n_outcomes(breaker_factory: Factory) -> None:
    breaker = breaker_factory(window_size=5, minimum_calls=5, failure_rate_threshold=100.0)
    record_many(breaker, "FFFPP")
    assert breaker.snapshot() == WindowSnapshot(5, 3, 0, 60.0, 0.0)
    record_many(breaker, "P")
    assert breaker.snapshot() == WindowSnapshot(5, 2, 0, 40.0, 0.0)
    record_many(breaker, "PPPP")
    assert breaker.snapshot().failures == 0
    assert breaker.state is CLOSED


def test_time_window_expires_old_buckets(breaker_factory: Factory, clock: FakeClock) -> None:
    breaker = breaker_factory(window="time", window_size=10, minimum_calls=2)
    clock.now = 100.5
    assert breaker.record(True, 0.1) == []
    clock.now = 110.0  # the window is now seconds 101..110: second 100 has left it
    assert breaker.snapshot().calls == 0
    assert breaker.record(True, 0.1) == []
    assert breaker.state is CLOSED
    assert breaker.snapshot().calls == 1


def test_time_window_keeps_outcomes_inside_it(breaker_factory: Factory, clock: FakeClock) -> None:
    breaker = breaker_factory(window="time", window_size=10, minimum_calls=2)
    clock.now = 100.5
    breaker.record(True, 0.1)
    clock.now = 109.9  # seconds 100..109: still inside
    (opened,) = breaker.record(True, 0.1)
    assert opened.to_state is OPEN
    assert opened.snapshot.calls == 2


def test_time_window_buckets_by_event_time(breaker_factory: Factory, clock: FakeClock) -> None:
    """Replicas read the same events at different moments; the event time decides the bucket."""
    breaker = breaker_factory(window="time", window_size=10, minimum_calls=3)
    clock.now = 206.0
    breaker.record(False, 0.1, at=200.0)
    breaker.record(False, 0.1, at=205.0)
    assert breaker.snapshot().calls == 2
    clock.now = 210.0  # seconds 201..210: the outcome of second 200 has left
    assert breaker.snapshot().calls == 1
    assert breaker.record(True, 0.1, at=215.0) == []  # a later event moves it to 206..215
    assert breaker.snapshot() == WindowSnapshot(1, 1, 0, -1.0, -1.0)
    assert breaker.record(True, 0.1, at=150.0) == []  # older than the window: not counted
    assert breaker.snapshot().calls == 1


def test_slow_call_rate_opens_it(breaker_factory: Factory) -> None:
    breaker = breaker_factory(slow_call_rate_threshold=50.0, slow_call_duration_s=1.0)
    assert record_many(breaker, "PP", duration_s=1.0) == []  # exactly the limit is not slow
    assert record_many(breaker, "P", duration_s=1.5) == []
    (opened,) = breaker.record(False, 2.0)
    assert opened.to_state is OPEN
    assert opened.snapshot == WindowSnapshot(4, 0, 2, 0.0, 50.0)
    assert opened.reason == "slow-call rate 50.0 % >= 50.0 % (calls over 1 s) over 4 calls"


def test_both_rates_over_their_thresholds_are_named(breaker_factory: Factory) -> None:
    breaker = breaker_factory(slow_call_rate_threshold=50.0, slow_call_duration_s=1.0)
    (opened,) = record_many(breaker, "FFFF", duration_s=2.0)
    assert opened.reason == (
        "failure rate 100.0 % >= 50.0 % and slow-call rate 100.0 % >= 50.0 % (calls over 1 s)"
        " over 4 calls"
    )


def test_a_slow_failure_counts_as_failed_and_slow(breaker_factory: Factory) -> None:
    breaker = breaker_factory(minimum_calls=10, slow_call_duration_s=1.0)
    breaker.record(True, 5.0)
    snap = breaker.snapshot()
    assert (snap.calls, snap.failures, snap.slow_calls) == (1, 1, 1)


def test_transition_carries_the_figures_that_caused_it(
    breaker_factory: Factory, clock: FakeClock
) -> None:
    breaker = breaker_factory(window_size=8, minimum_calls=8)
    (opened,) = record_many(breaker, "PPPFFFFF")
    assert opened.scope == Scope("inpaint", None)
    assert opened.at == clock.now
    assert opened.snapshot == WindowSnapshot(8, 5, 0, 62.5, 0.0)
    assert opened.reason == "failure rate 62.5 % >= 50.0 % over 8 calls"
    data = opened.to_event_data()
    assert isinstance(data, BreakerData)
    assert (data.stage, data.vendor_id, data.from_state, data.to_state) == (
        "inpaint", None, "CLOSED", "OPEN"
    )
    assert data.window == {
        "calls": 8.0, "failures": 5.0, "slow_calls": 0.0, "failure_rate": 62.5,
        "slow_call_rate": 0.0,
    }
    assert breaker.snapshot() == opened.snapshot  # OPEN keeps the window that opened it


def test_event_time_dates_the_opening_and_the_wait(
    breaker_factory: Factory, clock: FakeClock
) -> None:
    breaker = breaker_factory(minimum_calls=1)
    clock.now = 1000.0
    (opened,) = breaker.record(True, 0.1, at=990.0)
    assert opened.at == 990.0
    clock.now = 1019.9
    assert breaker.state is OPEN
    clock.now = 1020.0
    assert breaker.state is HALF_OPEN
    (half,) = breaker.drain()
    assert half.at == 1020.0


def test_bad_record_arguments_raise(breaker: CircuitBreaker) -> None:
    with pytest.raises(ValueError, match="duration_s must be a duration >= 0"):
        breaker.record(True, -0.5)
    with pytest.raises(ValueError, match="at must be a finite time"):
        breaker.record(True, 0.1, at=float("inf"))


# --------------------------------------------------------------------------------------------
# OPEN -> HALF_OPEN -> CLOSED / OPEN
# --------------------------------------------------------------------------------------------


def test_open_refuses_and_ignores_outcomes_until_the_wait_is_over(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    opened = open_breaker(breaker)
    assert breaker.try_acquire() is False
    assert record_many(breaker, "PPPPPPPP") == []
    assert breaker.snapshot() == opened.snapshot
    clock.advance(29.999)
    assert breaker.state is OPEN
    assert breaker.try_acquire() is False


def test_half_open_admits_exactly_n_trials(breaker: CircuitBreaker, clock: FakeClock) -> None:
    opened = open_breaker(breaker)
    clock.advance(30.0)
    assert [breaker.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert breaker.state is HALF_OPEN
    (half,) = breaker.drain()
    assert (half.from_state, half.to_state, half.at) == (OPEN, HALF_OPEN, opened.at + 30.0)
    assert half.snapshot == opened.snapshot
    assert half.reason == "waited 30 s in OPEN; admitting 3 trial calls"


def test_acquire_reports_the_state_that_decided(breaker: CircuitBreaker, clock: FakeClock) -> None:
    assert breaker.acquire() == Permit(True, CLOSED)
    open_breaker(breaker)
    assert breaker.acquire() == Permit(False, OPEN)
    clock.advance(30.0)
    # Three trials, then the calls beyond the permits are refused in HALF_OPEN (they wait for
    # the trials' verdict rather than being treated as if the breaker were open).
    assert [breaker.acquire() for _ in range(4)] == [Permit(True, HALF_OPEN)] * 3 + [
        Permit(False, HALF_OPEN)
    ]


def test_half_open_reopens_when_the_trials_fail(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(31.0)
    assert record_many(breaker, "PF")[0].to_state is HALF_OPEN  # the pending automatic one
    assert breaker.state is HALF_OPEN  # every trial is judged before deciding
    (reopened,) = record_many(breaker, "F")
    assert (reopened.from_state, reopened.to_state) == (HALF_OPEN, OPEN)
    assert (reopened.snapshot.calls, reopened.snapshot.failures) == (3, 2)
    assert reopened.snapshot.failure_rate == pytest.approx(66.67, abs=1e-2)
    assert reopened.reason.startswith("trial calls: failure rate 66.7 % >= 50.0 %")
    assert breaker.try_acquire() is False
    clock.advance(29.0)  # the wait starts again from the reopening
    assert breaker.state is OPEN
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN


def test_half_open_closes_when_the_trials_pass(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_breaker(breaker)
    clock.advance(30.0)
    assert [breaker.try_acquire() for _ in range(3)] == [True] * 3
    transitions = breaker.drain() + record_many(breaker, "PFP")
    assert [(t.from_state, t.to_state) for t in transitions] == [
        (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)
    ]
    assert transitions[1].snapshot.failure_rate == pytest.approx(33.33, abs=1e-2)
    assert transitions[1].reason.startswith("trial calls passed: failure rate 33.3 % < 50.0 %")
    assert breaker.state is CLOSED
    assert breaker.snapshot().calls == 0  # CLOSED starts with an empty window
    assert breaker.try_acquire() is True


def test_half_open_reopens_on_slow_trials(breaker_factory: Factory, clock: FakeClock) -> None:
    breaker = breaker_factory(slow_call_rate_threshold=60.0, slow_call_duration_s=1.0)
    open_breaker(breaker)
    clock.advance(30.0)
    transitions = record_many(breaker, "PPP", duration_s=3.0)
    assert [t.to_state for t in transitions] == [HALF_OPEN, OPEN]
    assert "slow-call rate 100.0 %" in transitions[1].reason


def test_a_transition_caused_by_a_read_is_handed_out_exactly_once(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    open_breaker(breaker)
    clock.advance(60.0)
    for _ in range(3):
        assert breaker.state is HALF_OPEN
    assert breaker.snapshot().calls == 0
    assert [t.to_state for t in breaker.drain()] == [HALF_OPEN]
    assert breaker.drain() == []
    assert breaker.record(False, 0.1) == []


# --------------------------------------------------------------------------------------------
# manual states and reset
# --------------------------------------------------------------------------------------------


def test_forced_open_admits_nothing_and_ignores_outcomes(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    record_many(breaker, "PF")
    (forced,) = breaker.force_open()
    assert (forced.from_state, forced.to_state, forced.at) == (CLOSED, FORCED_OPEN, clock.now)
    assert forced.snapshot.calls == 2
    assert forced.reason == "forced open by an operator"
    assert breaker.try_acquire() is False
    assert record_many(breaker, "FFFFFFFFFF") == []
    assert breaker.snapshot().calls == 0
    clock.advance(3600.0)
    assert breaker.state is FORCED_OPEN  # never leaves on its own
    assert breaker.force_open() == []  # already there: no transition


def test_disabled_admits_everything_and_never_transitions(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    (disabled,) = breaker.disable()
    assert (disabled.from_state, disabled.to_state) == (CLOSED, DISABLED)
    assert record_many(breaker, "F" * 50) == []
    assert all(breaker.try_acquire() for _ in range(50))
    clock.advance(3600.0)
    assert breaker.state is DISABLED
    assert breaker.snapshot().calls == 0  # Resilience4j's DISABLED records nothing
    assert breaker.disable() == []


def test_reset_returns_to_closed_with_an_empty_window(breaker: CircuitBreaker) -> None:
    record_many(breaker, "PFP")
    assert breaker.reset() == []  # already CLOSED: no transition, but the window is emptied
    assert breaker.snapshot().calls == 0
    opened = open_breaker(breaker)
    (reset,) = breaker.reset()
    assert (reset.from_state, reset.to_state) == (OPEN, CLOSED)
    assert reset.snapshot == opened.snapshot
    assert breaker.state is CLOSED
    assert breaker.snapshot().calls == 0
    assert record_many(breaker, "FFF") == []  # counts from zero again
    for manual in (breaker.force_open, breaker.disable):
        manual()
        assert [t.to_state for t in breaker.reset()] == [CLOSED]


# --------------------------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------------------------


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads every few microseconds, so unguarded updates would interleave."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(count: int, work: Callable[[], None]) -> None:
    barrier = threading.Barrier(count)

    def start() -> None:
        barrier.wait()
        work()

    threads = [threading.Thread(target=start) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_recording_counts_exactly_and_opens_once(breaker_factory: Factory) -> None:
    breaker = breaker_factory(window_size=4000, minimum_calls=2000, failure_rate_threshold=50.0)
    transitions: list[Transition] = []
    lock = threading.Lock()

    def passes() -> None:
        for _ in range(250):
            assert breaker.record(False, 0.1) == []

    run_threads(8, passes)
    assert breaker.snapshot().calls == 2000

    def failures() -> None:
        for _ in range(250):
            got = breaker.record(True, 0.1)
            with lock:
                transitions.extend(got)

    run_threads(8, failures)
    assert [(t.from_state, t.to_state) for t in transitions] == [(CLOSED, OPEN)]
    assert transitions[0].snapshot.calls == 4000
    assert transitions[0].snapshot.failures == 2000  # opened on exactly the 2000th failure


@pytest.mark.usefixtures("busy_switching")
def test_concurrent_trials_take_exactly_n_permits(
    breaker_factory: Factory, clock: FakeClock
) -> None:
    breaker = breaker_factory(half_open_permits=7)
    open_breaker(breaker)
    clock.advance(30.0)
    granted: list[bool] = []
    lock = threading.Lock()

    def acquire() -> None:
        for _ in range(20):
            got = breaker.try_acquire()
            with lock:
                granted.append(got)

    run_threads(6, acquire)
    assert granted.count(True) == 7
    assert [t.to_state for t in breaker.drain()] == [HALF_OPEN]


# --------------------------------------------------------------------------------------------
# the board: scopes, per vendor, metrics events
# --------------------------------------------------------------------------------------------


@pytest.fixture
def board(clock: FakeClock) -> BreakerBoard:
    return BreakerBoard(
        {
            "inpaint": BreakerPolicy(
                window_size=4, minimum_calls=4, half_open_permits=2, per_vendor=True
            ),
            "upscale": BreakerPolicy(window_size=4, minimum_calls=4, half_open_permits=2),
        },
        clock=clock,
    )


def metrics(stage: str, vendor: str, outcome: str, latency_ms: float = 100.0) -> MetricsData:
    return MetricsData(
        stage=stage, vendor_id=vendor, outcome=outcome, latency_ms=latency_ms, batch_size=1
    )


def test_per_vendor_failures_open_only_that_vendors_breaker(board: BreakerBoard) -> None:
    transitions: list[Transition] = []
    for _ in range(4):
        transitions += board.observe_metrics(metrics("inpaint", "v-bad", "fail"))
        transitions += board.observe_metrics(metrics("inpaint", "v-good", "pass"))
    assert [(t.scope, t.to_state) for t in transitions] == [(Scope("inpaint", "v-bad"), OPEN)]
    assert board.allow("inpaint", "v-bad") is False
    assert board.allow("inpaint", "v-good") is True
    assert board.allow("inpaint", "v-new") is True
    assert board.state("inpaint", "v-bad") is OPEN
    assert board.state("inpaint", "v-good") is CLOSED
    assert transitions[0].to_event_data().vendor_id == "v-bad"


def test_stage_scope_counts_every_vendor_together(board: BreakerBoard) -> None:
    transitions: list[Transition] = []
    for vendor in ("a", "b", "c", "d"):
        transitions += board.observe("upscale", vendor, failed=True, duration_s=0.1)
    assert [(t.scope, t.to_state) for t in transitions] == [(Scope("upscale", None), OPEN)]
    assert board.allow("upscale", "e") is False
    assert board.state("upscale") is OPEN


def test_board_without_a_policy_always_allows(board: BreakerBoard) -> None:
    assert board.policy("preflight") is None
    assert board.allow("preflight", "v") is True
    assert board.observe("preflight", "v", failed=True, duration_s=1.0) == []
    with pytest.raises(ValueError, match="stage 'preflight' has no breaker policy"):
        board.state("preflight")
    with pytest.raises(ValueError, match="one breaker per vendor: give a vendor id"):
        board.force_open("inpaint")


def test_board_manual_changes_drain_and_snapshots(board: BreakerBoard, clock: FakeClock) -> None:
    assert [t.to_state for t in board.force_open("upscale")] == [FORCED_OPEN]
    assert board.allow("upscale", "v") is False
    assert [t.to_state for t in board.disable("inpaint", "v1")] == [DISABLED]
    for _ in range(4):
        board.observe("inpaint", "v2", failed=True, duration_s=0.1)
    clock.advance(30.0)
    assert board.allow("inpaint", "v2") is True  # takes a trial permit, queues the transition
    (half,) = board.drain()
    assert (half.scope, half.to_state) == (Scope("inpaint", "v2"), HALF_OPEN)
    assert board.drain() == []
    rows = board.snapshots()
    assert [(row.scope, row.state) for row in rows] == [
        (Scope("inpaint", "v1"), DISABLED),
        (Scope("inpaint", "v2"), HALF_OPEN),
        (Scope("upscale", None), FORCED_OPEN),
    ]
    assert [t.to_state for t in board.reset("upscale")] == [CLOSED]


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        ("pass", CallOutcome(failed=False, duration_s=0.25)),
        ("fail", CallOutcome(failed=True, duration_s=0.25)),
        ("error", CallOutcome(failed=True, duration_s=0.25)),
        ("rejected", None),
        ("skipped", None),
    ],
)
def test_call_outcome_maps_metrics_events(outcome: str, expected: CallOutcome | None) -> None:
    assert call_outcome(metrics("inpaint", "v", outcome, latency_ms=250.0)) == expected


def test_call_outcome_treats_a_negative_latency_as_zero() -> None:
    assert call_outcome(metrics("inpaint", "v", "fail", latency_ms=-3.0)) == (True, 0.0)


def test_skipped_and_rejected_items_are_not_calls(board: BreakerBoard) -> None:
    for _ in range(10):
        assert board.observe_metrics(metrics("upscale", "v", "skipped")) == []
        assert board.observe_metrics(metrics("upscale", "v", "rejected")) == []
    assert board.snapshots()[-1].snapshot.calls == 0


# --------------------------------------------------------------------------------------------
# replay: outcomes are judged in the state the breaker was in at their event time
# --------------------------------------------------------------------------------------------


def test_a_late_replay_of_open_time_outcomes_does_not_count_them_as_trials(
    breaker_factory: Factory, clock: FakeClock
) -> None:
    """A replica that reads the metrics topic long after the fact (wall clock far past the
    wait) must make the same transitions as one that read it live."""
    live, late = breaker_factory(), breaker_factory()
    t0 = clock.now
    history = [(True, t0 + i) for i in range(4)] + [(True, t0 + 10.0), (True, t0 + 11.0)]
    live_transitions = [t for failed, at in history for t in live.record(failed, 0.1, at=at)]
    clock.advance(600.0)  # the late replica starts ten minutes later
    late_transitions = [t for failed, at in history for t in late.record(failed, 0.1, at=at)]
    assert [(t.from_state, t.to_state, t.at) for t in late_transitions] == [
        (t.from_state, t.to_state, t.at) for t in live_transitions
    ]
    assert [t.to_state for t in late_transitions] == [OPEN]
    assert late.state is HALF_OPEN  # now, by the wall clock; the trials are still to come


def test_half_open_counts_only_trial_outcomes(breaker_factory: Factory, clock: FakeClock) -> None:
    breaker = breaker_factory(half_open_permits=2)
    open_breaker(breaker)
    clock.advance(31.0)
    assert breaker.state is HALF_OPEN
    assert [t.to_state for t in breaker.drain()] == [HALF_OPEN]
    # Items admitted before it opened finish late: they are not trials.
    assert breaker.record(True, 0.1, trial=False) == []
    assert breaker.record(True, 0.1, trial=False) == []
    assert breaker.state is HALF_OPEN
    first = breaker.record(False, 0.1, trial=True)
    (closed,) = breaker.record(False, 0.1, trial=True)
    assert first == []
    assert (closed.from_state, closed.to_state) == (HALF_OPEN, CLOSED)
