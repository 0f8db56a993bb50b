"""The circuit breaker's thin transport adapter: metrics in, transitions out, commands obeyed.

::

    metrics ──► BreakerFeed ──► BreakerBoard (pure state machines, consumers/breaker.py)
    breaker ──►  (commands)           │
                     ▲                ▼
                     └──── transitions published on ``breaker``

Every replica of a stage runs one feed in its own consumer group (``<prefix>breaker-<uuid>``),
reading ``metrics`` and ``breaker`` from the earliest offset. Metrics records are keyed by stage,
so all of one stage's outcomes sit in one partition and every replica reads them in the same
order: each replica computes the same window and the same state from the same events. The
time-based window buckets by event time, not by arrival time, for the same reason.

Each replica publishes the transitions it computes. Their event ids are deterministic (scope,
sequence number of the transition in that scope, from and to states), so the copies from
several replicas carry the same id and a subscriber keeps one.

Operator commands (``pixelgate breaker force-open|disable|reset``) are
``pixelgate.breaker.control.v1`` events on ``breaker``; every feed applies them to its board.
The same feed, run once without publishing, is how ``pixelgate breaker status`` rebuilds the
current state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter as Tally
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import orjson
from prometheus_client import Gauge
from pydantic import ValidationError

from consumers.breaker import BreakerBoard, BreakerPolicy, BreakerState, Transition
from consumers.logging import get_logger
from consumers.runner import TopicNames, poll_retrying
from consumers.transport import Consumer, Message, Record, Transport
from schemas.events import (
    BREAKER_CONTROL_TYPE,
    BreakerControlData,
    BreakerData,
    CloudEvent,
    MetricsData,
    Topic,
    event_type,
)

__all__ = [
    "BREAKER_FAILURE_RATE",
    "BREAKER_STATE",
    "STATE_CODES",
    "BreakerFeed",
    "control_message",
    "feed_group",
]

STATE_CODES = {
    BreakerState.CLOSED: 0,
    BreakerState.OPEN: 1,
    BreakerState.HALF_OPEN: 2,
    BreakerState.FORCED_OPEN: 3,
    BreakerState.DISABLED: 4,
}
"""The value of the ``pixelgate_breaker_state`` gauge for each state."""

BREAKER_STATE = Gauge(
    "pixelgate_breaker_state",
    "Circuit breaker state: 0 closed, 1 open, 2 half-open, 3 forced open, 4 disabled.",
    ["stage", "vendor"],
)
BREAKER_FAILURE_RATE = Gauge(
    "pixelgate_breaker_failure_rate",
    "Failure rate (percent) in the breaker's window; -1 below the minimum number of calls.",
    ["stage", "vendor"],
)

_NAMESPACE = uuid.UUID("9a3c1f0e-7d42-4b6a-8e15-2f9d0c4b7a63")
_CONTENT_TYPE = (("content-type", b"application/cloudevents+json"),)
_log = get_logger("breaker")


def feed_group(prefix: str) -> str:
    """A consumer group of its own for one feed (it must see every partition)."""
    return f"{prefix}breaker-{uuid.uuid4().hex[:12]}"


def control_message(
    topics: TopicNames,
    stage: str,
    action: str,
    *,
    vendor_id: str | None = None,
    reason: str = "",
    source: str = "pixelgate/cli",
) -> Message:
    """The ``breaker`` record of an operator command (``force_open``, ``disable``, ``reset``)."""
    data = BreakerControlData(stage=stage, vendor_id=vendor_id, action=action,
                              reason=reason)
    event = CloudEvent[BreakerControlData](
        id=str(uuid.uuid4()),
        source=source,
        type=BREAKER_CONTROL_TYPE,
        subject=f"{stage}/{vendor_id or '*'}",
        time=datetime.now(UTC),
        data=data,
    )
    return Message(topics.name(Topic.BREAKER), stage, event.model_dump_json().encode(),
                   _CONTENT_TYPE)


class BreakerFeed:
    """Drives a :class:`BreakerBoard` (``board``, one breaker per stage in ``policies``) from the
    ``metrics`` and ``breaker`` topics.

    Outcomes are recorded at their events' times (seconds since the epoch), so the feed builds
    its board on that time base (``clock=time.time``) itself: a board on another clock would
    never see its OPEN wait end.
    """

    def __init__(
        self,
        policies: Mapping[str, BreakerPolicy],
        *,
        transport: Transport,
        topics: TopicNames,
        group: str,
        publish: bool = True,
        tick_s: float = 0.5,
        source: str = "pixelgate/breaker",
    ) -> None:
        self.board = BreakerBoard(policies, clock=time.time)
        self.transport = transport
        self.topics = topics
        self.group = group
        self.publish = publish
        self.tick_s = tick_s
        self.source = source
        self.caught_up = asyncio.Event()
        """Set once the feed has read everything that was on its topics when it started."""
        self.transitions: list[Transition] = []
        """Every transition this feed computed, in order (for status, reports and tests)."""
        self.outcomes: Tally[tuple[str, str]] = Tally()
        """Metrics events seen, by (stage, outcome)."""
        self._sequence: Tally[tuple[str, str | None]] = Tally()

    async def run(self, stop: asyncio.Event, consumer: Consumer | None = None) -> None:
        """Apply records until ``stop`` is set; between polls, let wait-based transitions
        (OPEN → HALF_OPEN) happen and publish them."""
        consumer = consumer or self.transport.consumer(
            self.group, [self.topics.name(Topic.METRICS), self.topics.name(Topic.BREAKER)]
        )
        try:
            while not stop.is_set():
                records = await poll_retrying(consumer, 500, int(self.tick_s * 1000), stop,
                                              log=_log, event="breaker_poll_failed")
                if records is None:
                    break
                await self.handle(records)
                if records:
                    # Never resumed from (each feed has its own group and replays from the
                    # earliest offset); committing ends the consumer's batch bookkeeping.
                    await consumer.commit(records)
                else:
                    self.caught_up.set()
        finally:
            await consumer.close()

    async def handle(self, records: Sequence[Record]) -> list[Transition]:
        """Apply ``records`` in order, then tick; publish and return the transitions."""
        found: list[Transition] = []
        for record in records:
            found.extend(self.apply(record))
        self._export()  # reading each state lets due OPEN -> HALF_OPEN transitions happen
        found.extend(self.board.drain())
        if found:
            self.transitions.extend(found)
            for transition in found if self.publish else ():
                _log.warning(
                    "breaker_transition",
                    stage=transition.scope[0],
                    vendor_id=transition.scope[1],
                    from_state=str(transition.from_state),
                    to_state=str(transition.to_state),
                    reason=transition.reason,
                )
            if self.publish:
                await self.transport.publish([self._message(t) for t in found])
        return found

    def apply(self, record: Record) -> list[Transition]:
        """One record's effect on the board. Records that are not ours are skipped, never fatal."""
        topic = self.topics.topic(record.topic)
        try:
            if topic is Topic.METRICS:
                metrics = CloudEvent[MetricsData].model_validate_json(record.value)
                return self._observe(metrics)
            if topic is Topic.BREAKER:
                raw = orjson.loads(record.value)
                if not isinstance(raw, dict) or raw.get("type") != BREAKER_CONTROL_TYPE:
                    return []  # a transition (ours or another replica's): informational
                command = CloudEvent[BreakerControlData].model_validate_json(record.value)
                return self._command(command.data)
        except (ValidationError, ValueError, orjson.JSONDecodeError) as exc:
            _log.warning("breaker_record_skipped", topic=record.topic, offset=record.offset,
                         error=str(exc).splitlines()[0])
        return []

    def _observe(self, event: CloudEvent[MetricsData]) -> list[Transition]:
        self.outcomes[(event.data.stage, event.data.outcome)] += 1
        at = event.time.timestamp() if event.time is not None else None
        return self.board.observe_metrics(event.data, at=at)

    def _command(self, command: BreakerControlData) -> list[Transition]:
        if self.board.policy(command.stage) is None:
            _log.warning("breaker_command_ignored", stage=command.stage,
                         why="this stage has no circuit breaker")
            return []
        if self.publish:  # a worker obeying it, not `breaker status` replaying history
            _log.warning("breaker_command", stage=command.stage, vendor_id=command.vendor_id,
                         action=command.action, reason=command.reason)
        actions = {
            "force_open": self.board.force_open,
            "disable": self.board.disable,
            "reset": self.board.reset,
        }
        transitions = actions[command.action](command.stage, command.vendor_id)
        if not command.reason:
            return transitions
        return [replace(t, reason=f"{t.reason}: {command.reason}") for t in transitions]

    def _message(self, transition: Transition) -> Message:
        stage, vendor = transition.scope
        self._sequence[transition.scope] += 1
        number = self._sequence[transition.scope]
        name = f"{stage}/{vendor or '*'}/{number}/{transition.from_state}/{transition.to_state}"
        event = CloudEvent[BreakerData](
            id=str(uuid.uuid5(_NAMESPACE, name)),
            source=self.source,
            type=event_type(Topic.BREAKER),
            subject=f"{stage}/{vendor or '*'}",
            time=datetime.fromtimestamp(transition.at, UTC),
            data=BreakerData(
                stage=stage,
                vendor_id=vendor,
                from_state=str(transition.from_state),
                to_state=str(transition.to_state),
                window=transition.snapshot.as_dict(),
                reason=transition.reason,
            ),
        )
        return Message(self.topics.name(Topic.BREAKER), stage, event.model_dump_json().encode(),
                       _CONTENT_TYPE)

    def _export(self) -> None:
        for (stage, vendor), state, snapshot in self.board.snapshots():
            labels = (stage, vendor or "*")
            BREAKER_STATE.labels(*labels).set(STATE_CODES[state])
            BREAKER_FAILURE_RATE.labels(*labels).set(snapshot.failure_rate)
