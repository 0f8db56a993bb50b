"""A batch that outlives max.poll.interval.ms pauses its partitions instead of rebalancing."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from structlog.testing import capture_logs

from consumers.kafka import KafkaTransport
from consumers.runner import Loaded, Output, StageRunner, TopicNames
from consumers.settings import BatchKnobs, Settings
from schemas.events import CloudEvent, MetricsData, Topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class SlowStage:
    """uploaded -> metrics, taking longer than max.poll.interval.ms for its batch."""

    name = "slow"
    consumes = (Topic.UPLOADED,)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.calls = 0

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        data = MetricsData(stage="slow", vendor_id="v", outcome="pass", latency_ms=0,
                           batch_size=1)
        return CloudEvent[MetricsData](id=value.decode(), source="t",
                                       type="pixelgate.metrics.v1", subject=value.decode(),
                                       data=data)

    def load(self, event: CloudEvent[Any], store: Any) -> None:
        return None

    def process(self, items: Sequence[Loaded[None]]) -> list[Output]:
        self.calls += 1
        time.sleep(self.seconds)  # in the executor: the event loop keeps heartbeating
        return [Output(outcome="pass", events=((Topic.METRICS, it.event),)) for it in items]


class NoStore:
    def get(self, ref):
        raise AssertionError("not used")

    def put(self, ref, data, content_type):
        raise AssertionError("not used")

    def exists(self, ref):
        return False


async def test_long_batch_is_processed_once_and_committed(dev_stack):
    env = dev_stack.settings_env()
    prefix = f"l{uuid.uuid4().hex[:8]}."
    settings = Settings(
        kafka_bootstrap_servers=env["PIXELGATE_KAFKA_BOOTSTRAP_SERVERS"], topic_prefix=prefix,
        kafka_max_poll_interval_ms=10_000, kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
    )
    topics = TopicNames(prefix)
    transport = KafkaTransport(settings)
    await transport.ensure_topics([topics.name(Topic.UPLOADED), topics.name(Topic.METRICS)])
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all",
                                enable_idempotence=False)
    await producer.start()
    await producer.send_and_wait(topics.name(Topic.UPLOADED), b"img-1", key=b"img-1", partition=0)
    await producer.stop()

    stage = SlowStage(seconds=13.0)  # > max.poll.interval.ms (10 s)
    runner = StageRunner(stage, transport=transport, store=NoStore(), topics=topics,
                         group=f"{prefix}slow", knobs=BatchKnobs(max_batch=1, max_wait_ms=100))
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(runner.run(stop))
        observer = AIOKafkaConsumer(topics.name(Topic.METRICS),
                                    bootstrap_servers=settings.kafka_bootstrap_servers,
                                    group_id=f"{prefix}observer", auto_offset_reset="earliest",
                                    session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await observer.start()
        outputs = []
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while asyncio.get_running_loop().time() < deadline and len(outputs) < 1:
                for messages in (await observer.getmany(timeout_ms=500)).values():
                    outputs.extend(messages)
            await asyncio.sleep(4)  # a rebalance loop would re-deliver and re-process by now
            for messages in (await observer.getmany(timeout_ms=500)).values():
                outputs.extend(messages)
        finally:
            await observer.stop()
            stop.set()
            await asyncio.wait_for(task, 60)
            await transport.close()
    assert len(outputs) == 1
    assert stage.calls == 1
    assert any(e["event"] == "long_batch_pausing" for e in logs)
    check = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                             group_id=f"{prefix}slow", enable_auto_commit=False)
    await check.start()
    try:
        assert await check.committed(TopicPartition(topics.name(Topic.UPLOADED), 0)) == 1
    finally:
        await check.stop()
