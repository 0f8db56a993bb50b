"""Transports: the ``Transport``/``Consumer`` protocols and the in-memory implementation.

The Kafka transport implements the same protocols, so stage code never forks by mode. The
in-memory transport keeps one partition per topic, per-group committed offsets and an
``asyncio.Condition`` that wakes pollers, which is all the runner needs in embedded mode.

Consumers of both transports are also :class:`Seekable`: they report each partition's offsets,
find the first offset at or after a time, seek and pause by topic. The breaker feed uses this to
start near the end of ``metrics`` instead of replaying it whole.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

__all__ = [
    "Consumer",
    "MemoryConsumer",
    "MemoryTransport",
    "Message",
    "PartitionSpan",
    "Record",
    "Seekable",
    "Transport",
    "poll_or_stop",
]


@dataclass(frozen=True)
class Record:
    """One consumed record."""

    topic: str
    """Full topic name (with prefix)."""
    partition: int
    """Partition number."""
    offset: int
    """Offset within the partition."""
    key: str | None
    """Message key: the image id."""
    value: bytes
    """The record bytes, untouched (a CloudEvent in structured JSON mode)."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Record headers."""


@dataclass(frozen=True)
class Message:
    """One record to publish."""

    topic: str
    """Full topic name (with prefix)."""
    key: str
    """Message key: the image id."""
    value: bytes
    """Record bytes."""
    headers: tuple[tuple[str, bytes], ...] = ()
    """Record headers."""


class Consumer(Protocol):
    """One member of a consumer group."""

    async def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        """Up to ``max_records`` records, waiting at most ``timeout_ms`` for the first one."""
        ...

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past every record given (highest offset + 1 per partition)."""
        ...

    async def close(self) -> None:
        """Leave the group."""
        ...


@dataclass(frozen=True)
class PartitionSpan:
    """The offsets one partition holds now."""

    beginning: int
    """The oldest offset still on the partition."""
    end: int
    """The offset the next record will get (``beginning`` when the partition is empty)."""


@runtime_checkable
class Seekable(Consumer, Protocol):
    """A consumer that can be positioned by hand, per topic (it must hold all its partitions)."""

    async def spans(self, topic: str) -> dict[int, PartitionSpan]:
        """Each partition of ``topic`` and the offsets it holds now."""
        ...

    async def offsets_for_time(self, topic: str, at: float) -> dict[int, int]:
        """Per partition, the first offset whose record time is ``at`` (epoch seconds) or later;
        the partition's end where there is none."""
        ...

    async def seek(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Read each partition of ``topic`` from the offset given next."""
        ...

    async def pause(self, topic: str) -> None:
        """Stop returning records of ``topic`` until :meth:`resume`."""
        ...

    async def resume(self, topic: str) -> None:
        """Return records of ``topic`` again."""
        ...


async def poll_or_stop(
    consumer: Consumer, max_records: int, timeout_ms: int, stop: asyncio.Event
) -> list[Record] | None:
    """``consumer.poll(...)``, or None if ``stop`` is set and the poll does not end soon after.

    A poll can wait far longer than ``timeout_ms``: the first one joins the group, and a join
    lasts until the group's rebalance completes. Once ``stop`` is set, a poll still running
    ``timeout_ms`` (+ 0.5 s) later is cancelled, so a worker leaves when told to; a poll that
    ends by then is returned, records and all (an ordinary poll is never cancelled). What a
    cancelled poll had fetched is not committed: the partition's next owner gets it.
    """
    if stop.is_set():
        return None
    polling = asyncio.ensure_future(consumer.poll(max_records, timeout_ms))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not polling.done():
            await asyncio.wait({polling}, timeout=timeout_ms / 1000.0 + 0.5)
    finally:
        stopping.cancel()
        if not polling.done():
            polling.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await polling
    return None if polling.cancelled() else polling.result()


class Transport(Protocol):
    """Publishes records and creates consumers."""

    async def publish(self, messages: Sequence[Message]) -> None:
        """Publish all ``messages``; return only once every one is acknowledged."""
        ...

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """A consumer in ``group`` subscribed to ``topics``."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass
class _Log:
    records: list[Record] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    """Each record's append time (the broker's log-append time), in epoch seconds."""


class MemoryTransport:
    """An in-process broker: one partition per topic, committed offsets per group.

    ``clock`` stamps each record's append time (epoch seconds), which
    :meth:`MemoryConsumer.offsets_for_time` searches.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._logs: dict[str, _Log] = {}
        self._committed: dict[tuple[str, str], int] = {}
        self._changed = asyncio.Condition()

    def records(self, topic: str) -> list[Record]:
        """Every record on ``topic`` so far (for reports and tests)."""
        return list(self._logs.get(topic, _Log()).records)

    def committed(self, group: str, topic: str) -> int:
        """The committed offset of ``group`` on ``topic`` (0 if none)."""
        return self._committed.get((group, topic), 0)

    async def publish(self, messages: Sequence[Message]) -> None:
        """Append every message; acknowledged when this returns."""
        async with self._changed:
            now = self._clock()
            for message in messages:
                log = self._logs.setdefault(message.topic, _Log())
                log.times.append(now)
                log.records.append(
                    Record(
                        topic=message.topic,
                        partition=0,
                        offset=len(log.records),
                        key=message.key,
                        value=message.value,
                        headers=message.headers,
                    )
                )
            self._changed.notify_all()

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        """A consumer of ``group`` that resumes from the group's committed offsets."""
        return MemoryConsumer(self, group, tuple(topics))

    async def close(self) -> None:
        """Nothing to release."""

    def _commit(self, group: str, topic: str, offset: int) -> None:
        key = (group, topic)
        self._committed[key] = max(self._committed.get(key, 0), offset)

    def _available(self, positions: dict[str, int], paused: set[str]) -> bool:
        return any(
            len(self._logs.get(topic, _Log()).records) > pos
            for topic, pos in positions.items()
            if topic not in paused
        )

    def _log(self, topic: str) -> _Log:
        return self._logs.get(topic, _Log())


class MemoryConsumer:
    """A consumer over :class:`MemoryTransport`; positions start at the committed offsets."""

    def __init__(self, transport: MemoryTransport, group: str, topics: tuple[str, ...]) -> None:
        self._transport = transport
        self._group = group
        self._positions = {t: transport.committed(group, t) for t in topics}
        self._paused: set[str] = set()

    async def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        """Round-robin across topics, up to ``max_records``; waits up to ``timeout_ms`` for the
        batch to fill, returning early once it is full."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000.0
        batch: list[Record] = []
        changed = self._transport._changed
        while True:
            batch.extend(self._take(max_records - len(batch)))
            remaining = deadline - loop.time()
            if len(batch) >= max_records or remaining <= 0:
                return batch
            async with changed:
                if not self._transport._available(self._positions, self._paused):
                    try:
                        await asyncio.wait_for(changed.wait(), timeout=remaining)
                    except TimeoutError:
                        return batch

    def _take(self, limit: int) -> list[Record]:
        taken: list[Record] = []
        progressed = True
        while len(taken) < limit and progressed:
            progressed = False
            for topic, pos in self._positions.items():
                if topic in self._paused:
                    continue
                records = self._transport._logs.get(topic, _Log()).records
                if pos < len(records) and len(taken) < limit:
                    taken.append(records[pos])
                    self._positions[topic] = pos + 1
                    progressed = True
        return taken

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past each record's offset."""
        for record in records:
            self._transport._commit(self._group, record.topic, record.offset + 1)

    async def spans(self, topic: str) -> dict[int, PartitionSpan]:
        """The one partition of ``topic``: from offset 0 to its length."""
        return {0: PartitionSpan(0, len(self._transport._log(topic).records))}

    async def offsets_for_time(self, topic: str, at: float) -> dict[int, int]:
        """The first record appended at ``at`` or later (append times never decrease)."""
        return {0: bisect.bisect_left(self._transport._log(topic).times, at)}

    async def seek(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Read ``topic`` from ``offsets[0]`` next."""
        if 0 in offsets:
            self._positions[topic] = offsets[0]

    async def pause(self, topic: str) -> None:
        """Skip ``topic`` in polls until resumed."""
        self._paused.add(topic)

    async def resume(self, topic: str) -> None:
        """Poll ``topic`` again (and wake a poll waiting for records)."""
        self._paused.discard(topic)
        async with self._transport._changed:
            self._transport._changed.notify_all()

    async def close(self) -> None:
        """Nothing to release; uncommitted records are redelivered to the next consumer."""
