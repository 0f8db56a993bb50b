"""The Kafka transport (aiokafka): the same ``Transport``/``Consumer`` protocols as in-memory.

- **Producer:** ``acks="all"``, no idempotence (Tansu has no idempotent producer; see
  docs/operations.md), keyed by image id, awaited until every message is acknowledged.
- **Consumer:** a group member with manual commits (``enable_auto_commit=False``) starting at
  ``earliest`` when the group has no offset. A batch handed to the runner is *in flight* until it
  is committed: the rebalance listener waits for it on revoke, so revoked partitions flush and
  commit before they are given up.
- **Long batches:** while a batch is in flight longer than half of ``max.poll.interval.ms``, a
  keep-alive task pauses every assigned partition and keeps calling ``getmany`` (which returns
  nothing for paused partitions), so the member stays in the group instead of looping through
  rebalances; partitions resume on commit.
- **Joining:** the first poll joins the group. A join still without an assignment after
  ``Settings.join_timeout_s()`` is abandoned (the consumer stopped) and raises
  ``TransportUnavailableError``; the runner backs off and the next poll joins as a new member.
- **Seeking:** the consumer is :class:`~consumers.transport.Seekable` over the partitions it
  holds (``end_offsets`` checked by a fetch, a binary search by record timestamp, ``seek``,
  ``pause``); a group of its own holds every partition, which is how the breaker feed starts
  near the end of ``metrics``.
- **Leaving:** ``close()`` leaves the group explicitly (aiokafka skips LeaveGroup for generation
  0, which Tansu uses for the first generation) so a replacement joins at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
)
from aiokafka.protocol.group import LeaveGroupRequest
from prometheus_client import Counter

from consumers.errors import TransportUnavailableError
from consumers.logging import get_logger
from consumers.settings import Settings
from consumers.transport import Message, PartitionSpan, Record

__all__ = ["JOIN_TIMEOUTS", "KafkaConsumer", "KafkaTransport", "kafka_client_config"]

_log = get_logger("kafka")

JOIN_TIMEOUTS = Counter(
    "pixelgate_kafka_join_timeouts", "Group joins abandoned after the join timeout.", ["group"]
)


def kafka_client_config(settings: Settings) -> dict[str, Any]:
    """The connection keyword arguments shared by aiokafka's producer, consumer and admin."""
    config: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
        if settings.kafka_ssl_certfile is not None:
            context.load_cert_chain(
                str(settings.kafka_ssl_certfile),
                str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
            )
        config["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL"):
        if settings.kafka_sasl_mechanism is None or settings.kafka_sasl_username is None:
            from consumers.errors import ConfigError  # noqa: PLC0415 - error path only

            raise ConfigError(
                "SASL needs PIXELGATE_KAFKA_SASL_MECHANISM and PIXELGATE_KAFKA_SASL_USERNAME"
            )
        password = settings.kafka_sasl_password
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=password.get_secret_value() if password else "",
        )
    return config


class KafkaTransport:
    """Publishes to Kafka and creates group consumers."""

    def __init__(self, settings: Settings, *, client_id: str = "pixelgate") -> None:
        self.settings = settings
        self.client_id = client_id
        self._config = kafka_client_config(settings)
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect the producer (idempotent)."""
        async with self._lock:
            if self._producer is not None:
                return
            producer = AIOKafkaProducer(
                **self._config,
                client_id=self.client_id,
                acks="all",
                enable_idempotence=False,
                linger_ms=5,
                request_timeout_ms=30_000,
            )
            try:
                await producer.start()
            except KafkaError as exc:
                await producer.stop()
                raise TransportUnavailableError(f"cannot reach Kafka: {exc!r}") from exc
            self._producer = producer

    async def ensure_topics(self, names: Sequence[str]) -> None:
        """Create missing topics with the configured partitions; existing ones are left alone."""
        admin = AIOKafkaAdminClient(**self._config, client_id=f"{self.client_id}-admin")
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            wanted = [
                NewTopic(
                    name,
                    num_partitions=self.settings.topic_partitions,
                    replication_factor=self.settings.topic_replication,
                )
                for name in names
                if name not in existing
            ]
            if wanted:
                try:
                    await admin.create_topics(wanted)
                except KafkaError as exc:
                    # Another worker may be creating the same topics right now (TopicAlreadyExists,
                    # or an unknown error from Tansu in that race): fine if they exist afterwards.
                    missing = {t.name for t in wanted} - set(await admin.list_topics())
                    if missing:
                        raise TransportUnavailableError(
                            f"topics {sorted(missing)} not created: {exc!r}"
                        ) from exc
                _log.info("topics_created", topics=[t.name for t in wanted])
        except (KafkaConnectionError, KafkaTimeoutError) as exc:
            raise TransportUnavailableError(f"cannot create topics: {exc!r}") from exc
        finally:
            await admin.close()

    async def publish(self, messages: Sequence[Message]) -> None:
        """Send every message and wait for all acknowledgements."""
        await self.start()
        if self._producer is None:
            raise TransportUnavailableError("producer is not started")
        try:
            futures = [
                await self._producer.send(
                    m.topic, m.value, key=m.key.encode(), headers=list(m.headers)
                )
                for m in messages
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise TransportUnavailableError(f"publish failed: {exc!r}") from exc

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaConsumer:
        """A group member subscribed to ``topics`` (connects on first poll)."""
        return KafkaConsumer(self.settings, self._config, group, tuple(topics))

    async def close(self) -> None:
        """Flush and close the producer."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None


async def _abandon(consumer: AIOKafkaConsumer, timeout_s: float = 10.0) -> None:
    """Stop a consumer whose start failed or was cut short, without waiting on the broker for
    long: it holds sockets and tasks even before it has joined."""
    try:
        await asyncio.wait_for(consumer.stop(), timeout_s)
    except TimeoutError:
        # stop() first lets the group coordinator finish the request in hand, which a broker
        # that does not answer holds for request_timeout_ms; cut short, it never reached the
        # connections. aiokafka has no forced close, hence its private attributes here.
        for part in (getattr(consumer, "_fetcher", None), getattr(consumer, "_client", None)):
            if part is not None:
                with contextlib.suppress(KafkaError, OSError, TimeoutError):
                    await asyncio.wait_for(part.close(), timeout_s)
    except (KafkaError, OSError):
        pass


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: KafkaConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # Flush: the batch in hand finishes and commits before the partitions are given up.
        await self.owner.wait_idle()
        _log.info(
            "partitions_revoked", group=self.owner.group, partitions=sorted(map(str, revoked))
        )

    async def on_partitions_assigned(self, assigned: Any) -> None:
        _log.info(
            "partitions_assigned", group=self.owner.group, partitions=sorted(map(str, assigned))
        )


class KafkaConsumer:
    """One member of a consumer group; see the module docstring for its guarantees."""

    def __init__(
        self, settings: Settings, config: dict[str, Any], group: str, topics: tuple[str, ...]
    ) -> None:
        self.settings = settings
        self.group = group
        self.topics = topics
        self._config = config
        self._consumer: AIOKafkaConsumer | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._keepalive: asyncio.Task[None] | None = None

    async def _start(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                **self._config,
                group_id=self.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self.settings.kafka_session_timeout_ms,
                heartbeat_interval_ms=self.settings.kafka_heartbeat_interval_ms,
                max_poll_interval_ms=self.settings.kafka_max_poll_interval_ms,
            )
            consumer.subscribe(list(self.topics), listener=_Listener(self))
            timeout = self.settings.join_timeout_s()
            try:
                # aiokafka's start() waits for the first assignment without a bound, retrying
                # JoinGroup as long as the coordinator answers; a join that never completes
                # would hold the stage (and its shutdown) forever.
                await asyncio.wait_for(consumer.start(), timeout)
            except TimeoutError:
                await _abandon(consumer)
                JOIN_TIMEOUTS.labels(self.group).inc()
                _log.warning("join_timeout", group=self.group, timeout_s=timeout)
                raise TransportUnavailableError(
                    f"no assignment in group {self.group} after {timeout:.0f} s; joining again"
                ) from None
            except KafkaError as exc:
                await _abandon(consumer)
                raise TransportUnavailableError(f"cannot join group {self.group}: {exc!r}") from exc
            except asyncio.CancelledError:
                await _abandon(consumer)  # a stop during the join: close what was opened
                raise
            self._consumer = consumer
        return self._consumer

    async def wait_idle(self) -> None:
        """Return once no polled batch is waiting for its commit."""
        await self._idle.wait()

    async def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        """Up to ``max_records`` records from the assigned partitions."""
        consumer = await self._start()
        try:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise TransportUnavailableError(f"fetch failed: {exc!r}") from exc
        records = [
            Record(
                topic=m.topic,
                partition=m.partition,
                offset=m.offset,
                key=m.key.decode("utf-8", "replace") if m.key is not None else None,
                value=m.value if m.value is not None else b"",
                headers=tuple((k, bytes(v)) for k, v in (m.headers or ())),
            )
            for messages in batches.values()
            for m in messages
        ]
        if records:
            self._idle.clear()
            self._keepalive = asyncio.create_task(self._keep_membership(consumer))
        return records

    async def _keep_membership(self, consumer: AIOKafkaConsumer) -> None:
        """Pause and keep polling while a batch outlives half of max.poll.interval.ms."""
        half = self.settings.kafka_max_poll_interval_ms / 2000.0
        await asyncio.sleep(half)
        paused: set[TopicPartition] = set()
        _log.warning("long_batch_pausing", group=self.group)
        try:
            while not self._idle.is_set():
                newly = consumer.assignment() - paused  # assigned during the batch: pause too
                consumer.pause(*newly)
                paused |= newly
                with contextlib.suppress(KafkaError):
                    got = await consumer.getmany(timeout_ms=1000, max_records=1)
                    for tp, messages in got.items():
                        # Never skip a record: rewind anything fetched here.
                        consumer.seek(tp, messages[0].offset)
                await asyncio.sleep(min(half / 4, 5.0))
        finally:
            consumer.resume(*[tp for tp in paused if tp in consumer.assignment()])

    async def commit(self, records: Sequence[Record]) -> None:
        """Commit past every record; a commit refused after a rebalance is logged (the new owner
        re-delivers those records: at-least-once)."""
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        try:
            if offsets and self._consumer is not None:
                await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            _log.warning("commit_refused", group=self.group, error=repr(exc))
        except KafkaError as exc:
            raise TransportUnavailableError(f"commit failed: {exc!r}") from exc
        finally:
            self._idle.set()
            if self._keepalive is not None:
                self._keepalive.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._keepalive
                self._keepalive = None

    async def _partitions(self, topic: str) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
        consumer = await self._start()
        return consumer, sorted(tp for tp in consumer.assignment() if tp.topic == topic)

    async def spans(self, topic: str) -> dict[int, PartitionSpan]:
        """Each assigned partition of ``topic``: its beginning and end offsets.

        The end is the high watermark of a fetch at the listed end's last record, not the
        listed end alone: Tansu's ListOffsets can answer an end far below the last offset
        after large batches, while its fetch responses carry the true high watermark. The
        consumer's positions are left where they were; the partitions must not be paused.
        """
        consumer, tps = await self._partitions(topic)
        try:
            beginnings = await consumer.beginning_offsets(tps)
            ends = await consumer.end_offsets(tps)
            probed = [tp for tp in tps if ends[tp] > beginnings[tp]]
            highwater = await self._highwater(consumer, probed, ends)
        except KafkaError as exc:
            raise TransportUnavailableError(f"cannot list offsets of {topic}: {exc!r}") from exc
        return {
            tp.partition: PartitionSpan(beginnings[tp], max(ends[tp], highwater.get(tp, 0)))
            for tp in tps
        }

    async def _highwater(
        self, consumer: AIOKafkaConsumer, tps: list[TopicPartition],
        ends: Mapping[TopicPartition, int], timeout_s: float = 10.0,
    ) -> dict[TopicPartition, int]:
        """The high watermark of one fetch per partition in ``tps`` (from its listed end's last
        record); positions are restored afterwards."""
        if not tps:
            return {}
        positions = {tp: await consumer.position(tp) for tp in tps}
        for tp in tps:
            consumer.seek(tp, ends[tp] - 1)
        found: dict[TopicPartition, int] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        try:
            while len(found) < len(tps) and loop.time() < deadline:
                await consumer.getmany(*tps, timeout_ms=500, max_records=1)
                for tp in tps:
                    mark = consumer.highwater(tp)
                    if mark is not None:
                        found[tp] = mark
        finally:
            for tp, position in positions.items():
                consumer.seek(tp, position)
        return found

    async def offsets_for_time(self, topic: str, at: float) -> dict[int, int]:
        """Per assigned partition, the first offset whose record timestamp is ``at`` or later
        (the partition's end where there is none).

        A binary search over fetched records' timestamps (about log2(n) single-record fetches
        per partition), not ListOffsets by time: Tansu answers that with the earliest offset
        whatever the time. Positions are left where they were; partitions must not be paused.
        """
        consumer, tps = await self._partitions(topic)
        spans = await self.spans(topic)
        target = int(at * 1000)
        positions = {tp: await consumer.position(tp) for tp in tps}
        found: dict[int, int] = {}
        try:
            for tp in tps:
                span = spans[tp.partition]
                low, high = span.beginning, span.end
                while low < high:
                    middle = (low + high) // 2
                    stamp = await self._timestamp(consumer, tp, middle)
                    if stamp is None or stamp >= target:
                        high = middle
                    else:
                        low = middle + 1
                found[tp.partition] = low
        except KafkaError as exc:
            raise TransportUnavailableError(f"cannot search {topic} by time: {exc!r}") from exc
        finally:
            for tp, position in positions.items():
                consumer.seek(tp, position)
        return found

    @staticmethod
    async def _timestamp(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int,
                         timeout_s: float = 10.0) -> int | None:
        """The timestamp (ms) of the first record at ``offset`` or after; ``None`` if none."""
        consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            got = await consumer.getmany(tp, timeout_ms=500, max_records=1)
            if got.get(tp):
                return int(got[tp][0].timestamp)
        return None

    async def seek(self, topic: str, offsets: Mapping[int, int]) -> None:
        """Fetch each given partition of ``topic`` from its offset next."""
        consumer, tps = await self._partitions(topic)
        for tp in tps:
            if tp.partition in offsets:
                consumer.seek(tp, offsets[tp.partition])

    async def pause(self, topic: str) -> None:
        """Fetch nothing from ``topic`` until :meth:`resume`."""
        consumer, tps = await self._partitions(topic)
        consumer.pause(*tps)

    async def resume(self, topic: str) -> None:
        """Fetch from ``topic`` again."""
        consumer, tps = await self._partitions(topic)
        consumer.resume(*tps)

    async def close(self) -> None:
        """Leave the group explicitly, then stop."""
        consumer, self._consumer = self._consumer, None
        self._idle.set()
        if consumer is None:
            return
        coordinator = getattr(consumer, "_coordinator", None)
        generation = getattr(coordinator, "generation", None)
        member_id = getattr(coordinator, "member_id", None)
        if coordinator is not None and generation == 0 and member_id:
            # aiokafka sends LeaveGroup only for generation > 0; Tansu starts at 0.
            with contextlib.suppress(KafkaError, OSError):
                await coordinator._send_req(LeaveGroupRequest(self.group, member_id))
        await consumer.stop()
