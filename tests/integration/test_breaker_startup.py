"""The breaker feed's bounded start-up on the real broker (Tansu): a ``metrics`` topic holding
200,000 old events, and a replica whose breakers are ready (caught up) within a few seconds in
the same state as a replica that replays the whole topic.

Two stages share the topic: ``inpaint`` opened a week ago and stays OPEN (its transition is on
the ``breaker`` topic, published by the replica that replayed everything), ``upscale`` ends
CLOSED with 4 failures among its last 10 outcomes. The events are produced in large batches
straight to the topic, with record and event times spread over the past week (about 3 s for
200,000 on 2 cores). A third stage, ``text``, has a time window: its ``RECENT`` outcomes of the
last 30 s sit in another partition, where the time bound, not the count bound, decides where
the replica starts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from consumers.breaker import BreakerPolicy, BreakerState
from consumers.breaker_feed import BreakerFeed
from consumers.breaker_start import start_bound
from consumers.kafka import KafkaTransport
from consumers.logging import get_logger
from consumers.runner import TopicNames
from consumers.settings import Settings
from schemas.events import Topic, event_type

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EVENTS = 200_000
WEEK_S = 7 * 86_400.0
POLICIES = {
    "inpaint": BreakerPolicy(window="count", window_size=10, minimum_calls=5,
                             wait_in_open_s=1e7),
    "upscale": BreakerPolicy(window="count", window_size=10, minimum_calls=5,
                             wait_in_open_s=1e7),
    "text": BreakerPolicy(window="time", window_size=600, minimum_calls=5, wait_in_open_s=30.0),
}
RECENT = 100
"""``text`` outcomes in the last 30 s, 3 in 10 of them failed: more than the count bound."""
_log = get_logger("test")
READY_S = 10.0
"""The bounded replica's budget from start to caught up (joining the group included)."""


def metrics_value(stage: str, outcome: str, at: float) -> bytes:
    """A ``metrics`` event as the stages publish it (structured CloudEvent JSON)."""
    return orjson.dumps({
        "specversion": "1.0", "id": str(uuid.uuid4()), "source": "pixelgate/test",
        "type": event_type(Topic.METRICS), "subject": "v1/img",
        "time": datetime.fromtimestamp(at, UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {"stage": stage, "vendor_id": "v1", "outcome": outcome, "latency_ms": 5.0,
                 "batch_size": 1},
    })


def outcomes() -> list[tuple[str, str]]:
    """(stage, outcome) in topic order: ``inpaint`` fails early (opens), then passes;
    ``upscale`` passes, with 4 failures among its last 10 outcomes."""
    half = EVENTS // 2
    inpaint = ["fail"] * 6 + ["pass"] * (half - 6)
    upscale = ["pass"] * (half - 10) + ["fail", "pass", "fail", "pass", "pass",
                                        "fail", "pass", "fail", "pass", "pass"]
    return [pair for i in range(half)
            for pair in (("inpaint", inpaint[i]), ("upscale", upscale[i]))]


def recent() -> list[tuple[str, str, float]]:
    """(stage, outcome, time) of the ``text`` outcomes of the last 30 s."""
    now = time.time()
    return [("text", "fail" if i % 10 >= 7 else "pass", now - 30.0 + i * 0.25)
            for i in range(RECENT)]


async def produce_history(settings: Settings, topic: str) -> float:
    """Write :func:`outcomes` to partition 0 of ``topic`` and :func:`recent` to partition 1 (as
    keys hash stages to partitions); the seconds it took."""
    began = time.perf_counter()
    start = time.time() - WEEK_S
    step = WEEK_S / EVENTS / 2
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                linger_ms=50, max_batch_size=1 << 20,
                                enable_idempotence=False)
    await producer.start()
    try:
        old = [(stage, outcome, start + i * step) for i, (stage, outcome) in enumerate(outcomes())]
        sent = [await producer.send_batch(batch, topic, partition=partition)
                for partition, timeline in ((0, old), (1, recent()))
                for batch in batches(producer, timeline)]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - began


def batches(producer: AIOKafkaProducer, timeline: list[tuple[str, str, float]]) -> list[Any]:
    """``timeline`` as full record batches, each record stamped with its event time."""
    out = [producer.create_batch()]
    for stage, outcome, at in timeline:
        record = {"key": stage.encode(), "value": metrics_value(stage, outcome, at),
                  "timestamp": int(at * 1000)}
        if out[-1].append(**record) is None:
            out.append(producer.create_batch())
            out[-1].append(**record)
    return out


async def ready_in(replica: BreakerFeed) -> float:
    """Run ``replica`` until it has caught up; the seconds that took."""
    stop = asyncio.Event()
    began = time.perf_counter()
    task = asyncio.create_task(replica.run(stop))
    try:
        await asyncio.wait_for(replica.caught_up.wait(), 120)
        return time.perf_counter() - began
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def states(replica: BreakerFeed) -> dict[str, BreakerState]:
    return {scope.stage: state for scope, state, _ in replica.board.snapshots()}


async def test_a_replica_is_ready_in_seconds_over_200k_old_events(dev_stack):
    settings = dev_stack.settings(topic_prefix=f"s{uuid.uuid4().hex[:8]}.",
                                  kafka_session_timeout_ms=6000,
                                  kafka_heartbeat_interval_ms=1000)
    topics = TopicNames(settings.topic_prefix)
    metrics = topics.name(Topic.METRICS)
    transport = KafkaTransport(settings, client_id="test-startup")
    try:
        await transport.ensure_topics([metrics, topics.name(Topic.BREAKER)])
        produced_s = await produce_history(settings, metrics)

        def replica(*, bounded: bool) -> BreakerFeed:
            return BreakerFeed(POLICIES, transport=transport, topics=topics,
                               group=f"{settings.topic_prefix}breaker-{uuid.uuid4().hex[:6]}",
                               publish=not bounded, bounded=bounded)

        full = replica(bounded=False)  # the live replica of the past week: publishes
        full_s = await ready_in(full)
        bounded = replica(bounded=True)
        bounded_s = await ready_in(bounded)
    finally:
        await transport.close()

    _log.info("breaker_startup_measured", events=EVENTS, produce_s=round(produced_s, 1),
              full_replay_s=round(full_s, 1), bounded_start_s=round(bounded_s, 1),
              bounded_metrics_read=bounded.read[metrics])
    assert full.read[metrics] == EVENTS + RECENT
    assert states(full) == {"inpaint": BreakerState.OPEN, "upscale": BreakerState.CLOSED,
                            "text": BreakerState.CLOSED}
    assert states(bounded) == states(full)
    windows = {s.stage: snap for s, _, snap in bounded.board.snapshots()}
    assert (windows["upscale"].calls, windows["upscale"].failure_rate) == (10, 40.0)
    assert (windows["text"].calls, windows["text"].failure_rate) == (RECENT, 30.0)
    assert bounded.read[metrics] == (start_bound(POLICIES).count or 0) + RECENT
    assert bounded_s < READY_S
