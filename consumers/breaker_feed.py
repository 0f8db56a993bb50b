"""The circuit breaker's thin transport adapter: metrics in, transitions out, commands obeyed.

::

    metrics ──► BreakerFeed ──► BreakerBoard (pure state machines, consumers/breaker.py)
    breaker ──►  (commands)           │
                     ▲                ▼
                     └──── transitions published on ``breaker``

Every replica of a stage runs one feed in its own consumer group (``<prefix>breaker-<uuid>``).
Start-up is bounded (:mod:`consumers.breaker_start`): the feed reads the ``breaker`` topic to
its end first (transitions and commands only) and brings each breaker to its latest state, then
reads ``metrics`` from a bound derived from the policies (the windows, by count per partition
and by time) rather than from the earliest offset, so start-up does not grow with the length of
``metrics``. Metrics records are keyed by stage, so all of one stage's outcomes sit in one
partition and every replica reads them in the same order: each replica computes the same
window and the same state from the same events. The time-based window buckets by event time,
not by arrival time, for the same reason.

Each replica publishes the transitions it computes. Their event ids are deterministic (scope,
from and to states, and the transition's time, which is an event's time; for an operator's
command, the command's event id), so the copies from several replicas carry the same id and a
subscriber keeps one, whenever each replica started.

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

from consumers.breaker import BreakerBoard, BreakerPolicy, BreakerState, Scope, Transition
from consumers.breaker_start import FeedClock, StartState, restore, scope_of, start_bound
from consumers.logging import get_logger
from consumers.runner import TopicNames, poll_retrying
from consumers.transport import Consumer, Message, Record, Seekable, Transport
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
    its board on that time base (wall-clock time) itself: a board on another clock would never
    see its OPEN wait end. ``bounded=False`` replays both topics from the earliest offset (as
    does a consumer that is not :class:`~consumers.transport.Seekable`).
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
        bounded: bool = True,
    ) -> None:
        self._policies = dict(policies)
        self.clock = FeedClock()
        self.board = BreakerBoard(policies, clock=self.clock)
        self.transport = transport
        self.topics = topics
        self.group = group
        self.publish = publish
        self.tick_s = tick_s
        self.source = source
        self.bounded = bounded
        self.caught_up = asyncio.Event()
        """Set once the feed has read everything that was on its topics when it started."""
        self.transitions: list[Transition] = []
        """Every transition this feed computed, in order (for status, reports and tests); after
        a bounded start, led by each scope's latest transition read from ``breaker``."""
        self.outcomes: Tally[tuple[str, str]] = Tally()
        """Metrics events seen, by (stage, outcome)."""
        self.read: Tally[str] = Tally()
        """Records read, by full topic name."""
        self._restored: dict[Scope, float] = {}
        self._commands: dict[Transition, str] = {}
        self._behind: dict[tuple[str, int], int] | None = None
        """With a bounded start: the last offset there was at start, per partition still to
        reach; ``None``: caught up at the first poll that returns nothing."""

    async def run(self, stop: asyncio.Event, consumer: Consumer | None = None) -> None:
        """Apply records until ``stop`` is set; between polls, let wait-based transitions
        (OPEN → HALF_OPEN) happen and publish them."""
        consumer = consumer or self.transport.consumer(
            self.group, [self.topics.name(Topic.METRICS), self.topics.name(Topic.BREAKER)]
        )
        try:
            if isinstance(consumer, Seekable):
                if self.bounded:
                    await self._start(consumer, stop)
                else:
                    self._behind = await self._ends(consumer, Topic.METRICS, Topic.BREAKER)
            while not stop.is_set():
                records = await poll_retrying(consumer, 500, int(self.tick_s * 1000), stop,
                                              log=_log, event="breaker_poll_failed")
                if records is None:
                    break
                await self.handle(records)
                if records:
                    # Never resumed from (each feed has its own group and positions itself
                    # on start); committing ends the consumer's batch bookkeeping.
                    await consumer.commit(records)
                self._progress(records)
        finally:
            await consumer.close()

    def _progress(self, records: Sequence[Record]) -> None:
        """Set :attr:`caught_up` once what was there at start has been read."""
        if self._behind is None:
            if not records:
                self.caught_up.set()
            return
        for record in records:
            key = (record.topic, record.partition)
            if key in self._behind and record.offset >= self._behind[key]:
                del self._behind[key]
        if not self._behind:
            self.caught_up.set()

    async def _start(self, consumer: Seekable, stop: asyncio.Event) -> None:
        """Read ``breaker`` to its end and restore the board from it, with ``metrics`` paused and
        positioned at the start bound; then resume ``metrics``."""
        breaker, metrics = self.topics.name(Topic.BREAKER), self.topics.name(Topic.METRICS)
        last = {p: span.end - 1 for p, span in (await consumer.spans(breaker)).items()
                if span.end > span.beginning}
        await consumer.seek(metrics, await self._metrics_starts(consumer, metrics))
        await consumer.pause(metrics)
        state = StartState(self._policies)
        reached = dict.fromkeys(last, -1)
        while any(reached[p] < offset for p, offset in last.items()):
            records = await poll_retrying(consumer, 500, int(self.tick_s * 1000), stop,
                                          log=_log, event="breaker_poll_failed")
            if records is None:
                return
            for record in records:
                reached[record.partition] = max(reached.get(record.partition, -1), record.offset)
                self.read[record.topic] += 1
                self._read_state(state, record)
            await consumer.commit(records)
        restore(self.board, state, self.clock)
        self._restored = {scope: latest.at for scope, latest in state.latest.items()}
        self.transitions.extend(sorted((latest.transition for latest in state.latest.values()),
                                       key=lambda t: t.at))
        await self._emit([t for command in state.pending for t in self._command(command)])
        await consumer.resume(metrics)

    async def _metrics_starts(self, consumer: Seekable, metrics: str) -> dict[int, int]:
        bound = start_bound(self._policies)
        spans = await consumer.spans(metrics)
        starts = {p: span.end for p, span in spans.items()}
        if bound.count is not None:
            starts = {p: span.end - bound.count for p, span in spans.items()}
        if bound.seconds is not None:
            by_time = await consumer.offsets_for_time(metrics, time.time() - bound.seconds)
            starts = {p: min(starts[p], by_time.get(p, starts[p])) for p in starts}
        starts = {p: max(start, spans[p].beginning) for p, start in starts.items()}
        self._behind = {(metrics, p): spans[p].end - 1 for p, start in starts.items()
                        if spans[p].end > start}
        return starts

    async def _ends(self, consumer: Seekable, *topics: Topic) -> dict[tuple[str, int], int]:
        """The last offset of every non-empty partition of ``topics`` now."""
        names = [self.topics.name(t) for t in topics]
        return {(name, p): span.end - 1 for name in names
                for p, span in (await consumer.spans(name)).items() if span.end > span.beginning}

    def _read_state(self, state: StartState, record: Record) -> None:
        try:
            state.read(record.value)
        except (ValidationError, ValueError, orjson.JSONDecodeError) as exc:
            _log.warning("breaker_record_skipped", topic=record.topic, offset=record.offset,
                         error=str(exc).splitlines()[0])

    async def handle(self, records: Sequence[Record]) -> list[Transition]:
        """Apply ``records`` in order, then tick; publish and return the transitions."""
        found: list[Transition] = []
        for record in records:
            self.read[record.topic] += 1
            found.extend(self.apply(record))
        return await self._emit(found)

    async def _emit(self, found: list[Transition]) -> list[Transition]:
        """Tick, then publish and return ``found`` and the transitions the tick made."""
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
        messages = [self._message(t) for t in found] if self.publish else []
        self._commands.clear()  # every command's transitions are in ``found``
        if messages:
            await self.transport.publish(messages)
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
                return self._command(command)
        except (ValidationError, ValueError, orjson.JSONDecodeError) as exc:
            _log.warning("breaker_record_skipped", topic=record.topic, offset=record.offset,
                         error=str(exc).splitlines()[0])
        return []

    def _observe(self, event: CloudEvent[MetricsData]) -> list[Transition]:
        self.outcomes[(event.data.stage, event.data.outcome)] += 1
        at = event.time.timestamp() if event.time is not None else None
        policy = self._policies.get(event.data.stage)
        if policy is not None and at is not None and self._restored:
            restored = self._restored.get(scope_of(policy, event.data.stage, event.data.vendor_id))
            if restored is not None and at <= restored:
                return []  # the restored state already accounts for it
        return self.board.observe_metrics(event.data, at=at)

    def _command(self, event: CloudEvent[BreakerControlData]) -> list[Transition]:
        command = event.data
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
        if command.reason:
            transitions = [replace(t, reason=f"{t.reason}: {command.reason}") for t in transitions]
        for transition in transitions:  # dated by this replica's clock: named by the command
            self._commands[transition] = event.id
        return transitions

    def _message(self, transition: Transition) -> Message:
        stage, vendor = transition.scope
        cause = self._commands.pop(transition, None) or f"{transition.at!r}"
        name = f"{stage}/{vendor or '*'}/{cause}/{transition.from_state}/{transition.to_state}"
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
