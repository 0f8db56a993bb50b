"""A group join the broker never answers, on a real Tansu frozen with SIGSTOP.

aiokafka's ``start()`` waits for the first assignment without a bound, so a join the
coordinator never completes would leave a stage that never consumes and workers that cannot be
stopped. pixelgate gives a join ``kafka_join_timeout_ms``, then abandons it and joins again as a
new member, and a stop cuts a pending join short. These tests prove both on a real broker: they
freeze it (the process keeps its sockets, so requests are accepted and never answered) on a
stack of their own, once the consumer is in its JoinGroup. A consumer left half-closed warns
about its unclosed connections when collected, and warnings are errors in this suite, so the
tests also prove that nothing is left open.

The freeze comes after aiokafka's bootstrap on purpose: cutting a bootstrap short leaks its
connection (aiokafka 0.14 does not close it when cancelled). A stop may do that (the process is
leaving anyway); the join timeout need not, since a bootstrap gives up by itself after
``request_timeout_ms`` (40 s) per request.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers.dev.devstack import DevStack
from consumers.errors import TransportUnavailableError
from consumers.kafka import KafkaTransport
from consumers.transport import Message, poll_or_stop

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SESSION_TIMEOUT_MS = 4000
JOIN_TIMEOUT_MS = 3 * SESSION_TIMEOUT_MS
"""The least the settings allow: a new member may wait for the abandoned one to expire."""
IN_JOIN_S = 1.5
"""Seconds after a consumer starts when it is in its JoinGroup: connected and its coordinator
found, while Tansu holds a first JoinGroup for about half the session timeout (2 s or more)."""


@contextmanager
def frozen_broker(stack: DevStack) -> Iterator[None]:
    pid = next(s.pid for s in stack.status() if s.name == "broker")
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _join_timeouts(group: str) -> float:
    value = REGISTRY.get_sample_value("pixelgate_kafka_join_timeouts_total", {"group": group})
    return value or 0.0


@pytest.fixture(scope="module")
def frozen_stack(dev_stack_factory) -> DevStack:
    """A stack these tests may freeze: never the session's shared one."""
    return dev_stack_factory()


def inpaint_member(stack: DevStack, name: str, **overrides: Any) -> tuple[KafkaTransport, str, str]:
    """A transport, a fresh ``routed`` topic and its inpaint group, under a fresh prefix."""
    prefix = f"{name}{uuid.uuid4().hex[:8]}."
    settings = stack.settings(topic_prefix=prefix, **overrides)
    return KafkaTransport(settings, client_id=f"test-{name}"), f"{prefix}routed", f"{prefix}inpaint"


QUICK = {"kafka_session_timeout_ms": SESSION_TIMEOUT_MS, "kafka_heartbeat_interval_ms": 1000,
         "kafka_join_timeout_ms": JOIN_TIMEOUT_MS}


async def test_a_join_that_never_completes_is_abandoned_and_joined_again(frozen_stack):
    transport, topic, group = inpaint_member(frozen_stack, "join", **QUICK)
    consumer = transport.consumer(group, [topic])
    loop = asyncio.get_running_loop()
    try:
        await transport.ensure_topics([topic])
        await transport.publish([Message(topic=topic, key="img-1", value=b"{}")])
        before = _join_timeouts(group)
        started = loop.time()
        polling = asyncio.create_task(consumer.poll(10, 500))
        await asyncio.sleep(IN_JOIN_S)
        with frozen_broker(frozen_stack):
            with pytest.raises(TransportUnavailableError, match="joining again"):
                async with asyncio.timeout(JOIN_TIMEOUT_MS / 1000 + 40):  # fail, never hang
                    await polling
            waited = loop.time() - started
            gc.collect()  # an unclosed connection warns when collected (warnings are errors)
        assert _join_timeouts(group) == before + 1  # on /metrics for alerts
        # The timeout, then the abandoned consumer's stop: the coordinator waits on the frozen
        # broker, so after 10 s its fetcher and connections are closed directly (10 s at most).
        assert JOIN_TIMEOUT_MS / 1000 <= waited < JOIN_TIMEOUT_MS / 1000 + 2 * 10 + 3
        records = []
        async with asyncio.timeout(60):  # the broker answers again: the next poll joins anew
            while not records:
                records = await consumer.poll(10, 500)
        assert [(r.topic, r.key, r.value) for r in records] == [(topic, "img-1", b"{}")]
    finally:
        await consumer.close()
        await transport.close()


async def test_a_stop_cuts_a_pending_join_short_and_closes_the_consumer(frozen_stack):
    transport, topic, group = inpaint_member(frozen_stack, "stop")  # default join timeout
    assert transport.settings.join_timeout_s() > 300
    consumer = transport.consumer(group, [topic])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        await transport.ensure_topics([topic])
        polling = asyncio.create_task(poll_or_stop(consumer, 10, 500, stop))
        await asyncio.sleep(IN_JOIN_S)
        with frozen_broker(frozen_stack):
            await asyncio.sleep(1.0)
            assert not polling.done()  # still joining
            stop.set()
            started = loop.time()
            assert await asyncio.wait_for(polling, 30) is None
            assert loop.time() - started < 2 * 10 + 3
            gc.collect()  # an unclosed consumer or connection warns when collected
        # A later poll starts a fresh member.
        records = []
        async with asyncio.timeout(60):
            while not records:
                await transport.publish([Message(topic=topic, key="img-2", value=b"{}")])
                records = await consumer.poll(10, 2000)
        assert {r.key for r in records} == {"img-2"}
    finally:
        await consumer.close()
        await transport.close()
