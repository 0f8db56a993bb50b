"""Transports: the ``Transport``/``Consumer`` protocols and the in-memory implementation.

The Kafka transport implements the same protocols, so stage code never forks by mode. The
in-memory transport keeps one partition per topic, per-group committed offsets and an
``asyncio.Condition`` that wakes pollers, which is all the runner needs in embedded mode.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Consumer", "MemoryTransport", "Message", "Record", "Transport", "poll_or_stop"]


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


class MemoryTransport:
    """An in-process broker: one partition per topic, committed offsets per group."""

    def __init__(self) -> None:
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
            for message in messages:
                log = self._logs.setdefault(message.topic, _Log())
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

    def _available(self, positions: dict[str, int]) -> bool:
        return any(
            len(self._logs.get(topic, _Log()).records) > pos for topic, pos in positions.items()
        )


class MemoryConsumer:
    """A consumer over :class:`MemoryTransport`; positions start at the committed offsets."""

    def __init__(self, transport: MemoryTransport, group: str, topics: tuple[str, ...]) -> None:
        self._transport = transport
        self._group = group
        self._positions = {t: transport.committed(group, t) for t in topics}

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
                if not self._transport._available(self._positions):
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

    async def close(self) -> None:
        """Nothing to release; uncommitted records are redelivered to the next consumer."""
