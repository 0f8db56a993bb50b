"""The breaker feed's bounded start-up over the in-memory transport: a replica reads the
``breaker`` topic and only the window's end of ``metrics``, and reaches the same state as a
replica that replays everything."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest

from consumers.breaker import BreakerPolicy, BreakerState
from consumers.breaker_feed import BreakerFeed, control_message
from consumers.breaker_start import start_bound
from consumers.runner import TopicNames
from consumers.transport import MemoryTransport, Message
from schemas.events import CloudEvent, MetricsData, Topic, event_type

TOPICS = TopicNames("t.")
METRICS = TOPICS.name(Topic.METRICS)
BREAKER = TOPICS.name(Topic.BREAKER)
OLD = 2_000
COUNT = BreakerPolicy(window="count", window_size=10, minimum_calls=5,
                      failure_rate_threshold=50.0, wait_in_open_s=3600.0, half_open_permits=2)


class Clock:
    """The memory broker's append clock, set by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def outcome(outcome: str, at: float, *, stage: str = "inpaint", vendor: str = "v1",
            trial: bool = False) -> Message:
    event = CloudEvent[MetricsData](
        id=str(uuid.uuid4()), source="pixelgate/test", type=event_type(Topic.METRICS),
        subject=f"{vendor}/img", time=datetime.fromtimestamp(at, UTC),
        data=MetricsData(stage=stage, vendor_id=vendor, outcome=outcome, latency_ms=5.0,
                         batch_size=1, trial=trial),
    )
    return Message(METRICS, stage, event.model_dump_json().encode())


def feed(transport: MemoryTransport, policies: dict[str, BreakerPolicy], *, bounded: bool,
         publish: bool = False) -> BreakerFeed:
    return BreakerFeed(policies, transport=transport, topics=TOPICS,
                       group=f"g-{uuid.uuid4().hex[:6]}", publish=publish, tick_s=0.05,
                       bounded=bounded)


async def ready(replica: BreakerFeed, stop: asyncio.Event) -> asyncio.Task[None]:
    """Run ``replica`` until ``stop``; return once it has caught up."""
    task = asyncio.create_task(replica.run(stop))
    await asyncio.wait_for(replica.caught_up.wait(), 30)
    return task


async def caught_up(replica: BreakerFeed) -> BreakerFeed:
    stop = asyncio.Event()
    task = await ready(replica, stop)
    stop.set()
    await task
    return replica


def states(replica: BreakerFeed) -> list[tuple[object, BreakerState, int, float]]:
    return [(scope, state, snap.calls, snap.failure_rate)
            for scope, state, snap in replica.board.snapshots()]


async def history(transport: MemoryTransport, messages: list[Message],
                  policy: BreakerPolicy = COUNT) -> BreakerFeed:
    """Publish ``messages`` while a live replica publishes the transitions they cause."""
    await transport.publish(messages)
    return await caught_up(feed(transport, {"inpaint": policy}, bounded=False, publish=True))


def test_start_bound_covers_the_largest_window_with_a_margin() -> None:
    policies = {
        "inpaint": COUNT,
        "upscale": BreakerPolicy(window="count", window_size=50, half_open_permits=5),
        "text": BreakerPolicy(window="time", window_size=120, wait_in_open_s=30.0),
    }
    bound = start_bound(policies, count_margin=4, margin_s=60.0)
    assert bound.count == 200
    assert bound.seconds == 210.0
    assert start_bound({"inpaint": COUNT}).seconds is None


async def test_count_window_reads_only_the_window_and_matches_a_full_replay() -> None:
    transport = MemoryTransport()
    base = time.time() - 10_000
    old = [outcome("pass", base + i * 0.5) for i in range(OLD)]
    recent = ["fail", "pass", "fail", "pass", "pass", "fail", "pass", "fail", "pass", "pass"]
    await history(transport, old + [outcome(o, base + OLD + i) for i, o in enumerate(recent)])

    bounded = await caught_up(feed(transport, {"inpaint": COUNT}, bounded=True))
    full = await caught_up(feed(transport, {"inpaint": COUNT}, bounded=False))

    assert bounded.read[METRICS] == start_bound({"inpaint": COUNT}).count
    assert full.read[METRICS] == OLD + len(recent)
    assert states(bounded) == states(full)
    assert states(bounded)[0][1:] == (BreakerState.CLOSED, 10, 40.0)


async def test_an_open_breaker_older_than_the_window_is_restored() -> None:
    transport = MemoryTransport()
    policy = replace(COUNT, wait_in_open_s=1e6)
    base = time.time() - 10_000
    opening = [outcome("fail", base + i) for i in range(6)]
    later = [outcome("pass", base + 10 + i * 0.5) for i in range(OLD)]
    await history(transport, opening + later, policy)

    bounded = await caught_up(feed(transport, {"inpaint": policy}, bounded=True))
    full = await caught_up(feed(transport, {"inpaint": policy}, bounded=False))

    assert bounded.read[METRICS] < 100
    assert [s[1] for s in states(bounded)] == [s[1] for s in states(full)] == [BreakerState.OPEN]
    # Restored, not recomputed: the latest transition as the live replica published it.
    assert bounded.transitions == full.transitions[:1]


async def test_a_half_open_breaker_counts_only_the_trials_after_it() -> None:
    transport = MemoryTransport()
    policy = BreakerPolicy(window="count", window_size=10, minimum_calls=5, wait_in_open_s=5.0,
                           half_open_permits=3)
    base = time.time() - 10_000
    opening = [outcome("fail", base + i) for i in range(5)]
    before = [outcome("pass", base + 6 + i * 0.001) for i in range(OLD)]  # ignored while OPEN
    live = await history(transport, opening + before, policy)  # OPEN, then HALF_OPEN at base + 9
    trial = outcome("pass", base + 20, trial=True)
    await transport.publish([trial])

    bounded = await caught_up(feed(transport, {"inpaint": policy}, bounded=True))
    full = await caught_up(feed(transport, {"inpaint": policy}, bounded=False))

    assert [t.to_state for t in live.transitions] == [BreakerState.OPEN, BreakerState.HALF_OPEN]
    assert bounded.read[METRICS] == 40
    assert states(bounded) == states(full)
    assert states(bounded)[0][1:3] == (BreakerState.HALF_OPEN, 1)


async def test_time_window_reads_from_the_window_by_record_time() -> None:
    clock = Clock(time.time() - 86_400)
    transport = MemoryTransport(clock=clock)
    policy = BreakerPolicy(window="time", window_size=60, minimum_calls=5,
                           failure_rate_threshold=50.0, wait_in_open_s=30.0)
    old = []
    for i in range(OLD):
        clock.now += 10.0
        old.append(outcome("fail" if i % 3 else "pass", clock.now))
    await transport.publish(old)  # stamped at one old moment: none of it is in the window
    now = time.time()
    clock.now = now - 20.0
    recent = [outcome(o, now - 20.0 + i) for i, o in enumerate(["pass", "fail", "pass", "pass",
                                                                  "fail", "pass"])]
    await transport.publish(recent)

    bounded = await caught_up(feed(transport, {"inpaint": policy}, bounded=True))
    full = await caught_up(feed(transport, {"inpaint": policy}, bounded=False))

    assert bounded.read[METRICS] == len(recent)
    assert full.read[METRICS] == OLD + len(recent)
    assert states(bounded) == states(full)
    assert states(bounded)[0][1:] == (BreakerState.CLOSED, 6, pytest.approx(100 / 3))


async def test_a_command_after_the_latest_transition_is_obeyed_once() -> None:
    transport = MemoryTransport()
    base = time.time() - 10_000
    await history(transport, [outcome("pass", base + i * 0.5) for i in range(OLD)])
    await transport.publish([control_message(TOPICS, "inpaint", "force_open", reason="drill")])

    bounded = await caught_up(feed(transport, {"inpaint": COUNT}, bounded=True))

    assert [s[1] for s in states(bounded)] == [BreakerState.FORCED_OPEN]
    assert [t.to_state for t in bounded.transitions] == [BreakerState.FORCED_OPEN]
    assert bounded.transitions[0].reason.endswith(": drill")


async def test_replicas_started_apart_publish_the_same_transition_ids() -> None:
    transport = MemoryTransport()
    base = time.time() - 10_000
    await history(transport, [outcome("pass", base + i * 0.5) for i in range(OLD)])
    stop = asyncio.Event()
    replicas = [feed(transport, {"inpaint": COUNT}, bounded=b, publish=True) for b in (False, True)]
    tasks = [await ready(r, stop) for r in replicas]
    try:
        await transport.publish([outcome("fail", base + OLD + i) for i in range(6)])
        async with asyncio.timeout(30):
            while not all(r.transitions for r in replicas):
                await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    ids = Counter(orjson.loads(r.value)["id"] for r in transport.records(BREAKER))
    assert ids  # CLOSED -> OPEN, and OPEN -> HALF_OPEN since the events are old
    assert set(ids.values()) == {2}  # one copy from each replica, under the same id
