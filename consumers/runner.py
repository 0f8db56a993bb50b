"""The stage runner: the same loop in Kafka and embedded mode, split by role in the data flow.

    poll ──► parse ──► load ──► process ──► store ──► publish ──► commit
    (batch)  (dlq bad)  (executor, (executor,  (executor) (acked)    (only after both)
                         concurrent) batched)

1. **poll** up to ``max_batch`` records or ``max_wait_ms``, whichever comes first;
2. **parse** each record; a record that cannot be parsed goes to ``dlq`` with its bytes intact;
   a record meant for another stage is skipped (and committed);
3. **load** inputs concurrently, off the event loop;
4. **process** the batch in an executor through the out-of-memory ladder
   (:class:`consumers.oom.OomLadder`: split in halves, then the stage's ``process_tiled`` if it
   has one, then ``review`` with ``RESOURCE_EXHAUSTED``); a batch that raises anything else is
   retried item by item, so one bad item cannot sink its neighbours; an item that still fails
   goes to ``dlq``, and its ``error`` metrics count as a failed trial when it was a half-open
   breaker's trial. Items the stage defers (a half-open breaker's trial permits all taken) are
   processed again once the others are out;
5. **store** outputs, then 6. **publish** next events and wait for their acks, then 7. **commit**.

Retriable errors (``StoreUnavailableError``, ``TransportUnavailableError``) are retried with
bounded, jittered backoff and never dead-lettered: an outage pauses the stage, it does not empty
the queue into ``dlq``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import structlog
from prometheus_client import Counter, Gauge, Histogram

from consumers.errors import PermanentError, RetriableError
from consumers.logging import get_logger
from consumers.oom import OomLadder, exhausted_events, peak_memory, reset_peak_memory
from consumers.settings import BatchKnobs
from consumers.store import Store
from consumers.transport import Consumer, Message, Record, Transport, poll_or_stop
from schemas.events import CloudEvent, ImageRef, MetricsData, Topic, event_type

__all__ = [
    "BATCH_PIXELS",
    "BATCH_SIZE",
    "DEFERRED",
    "ITEMS",
    "OOM_SPLITS",
    "PEAK_MEMORY",
    "STAGE_SECONDS",
    "Loaded",
    "Output",
    "Stage",
    "StageRunner",
    "TopicNames",
    "TrialStage",
    "backoff_delay",
    "backoff_delays",
    "poll_retrying",
]

T = TypeVar("T")
PayloadT = TypeVar("PayloadT")

BATCH_SIZE = Histogram(
    "pixelgate_batch_size", "Records per processed batch.", ["stage"], buckets=(1, 2, 4, 8, 16, 32)
)
STAGE_SECONDS = Histogram("pixelgate_stage_seconds", "Wall time of one batch.", ["stage", "phase"])
ITEMS = Counter("pixelgate_items_total", "Items handled, by outcome.", ["stage", "outcome"])
BATCH_PIXELS = Histogram(
    "pixelgate_batch_pixels",
    "Pixels per processor call: input pixels (detection, inpainting), output pixels (upscaling).",
    ["stage"],
    buckets=(2**16, 2**18, 2**20, 2**22, 2**24, 2**26, 2**28),
)
PEAK_MEMORY = Gauge(
    "pixelgate_peak_memory_bytes",
    "Peak memory of the last batch: CUDA allocator peak, or the process's peak RSS on the CPU.",
    ["stage", "device"],
)
OOM_SPLITS = Counter(
    "pixelgate_oom_splits_total", "Batches split in halves after running out of memory.",
    ["stage"],
)

DEFERRED = "deferred"
"""The outcome of an item the stage holds back for now (a half-open breaker with every trial
permit taken): nothing stored or published, the batch left uncommitted and the item processed
again after a backoff."""

_log = get_logger("runner")
_NAMESPACE = uuid.UUID("3b0f6f55-1c1e-4a8e-9f0a-5d2c9e7b1a44")


def _key(topic: Topic, event: CloudEvent[Any]) -> str:
    """The record key: the image id, except on ``metrics``, keyed by stage so that all of one
    stage's outcomes share a partition and every circuit-breaker replica reads them in the same
    order (the breaker's window is then the same everywhere)."""
    if topic is Topic.METRICS:
        return str(event.data.stage)
    return event.subject


@dataclass(frozen=True)
class TopicNames:
    """Full topic names under a prefix (default ``pixelgate.``)."""

    prefix: str = "pixelgate."

    def name(self, topic: Topic) -> str:
        """``<prefix><topic>``."""
        return f"{self.prefix}{topic.value}"

    def topic(self, name: str) -> Topic:
        """The :class:`Topic` of a full name."""
        return Topic(name.removeprefix(self.prefix))


@dataclass(frozen=True)
class Loaded(Generic[PayloadT]):
    """One parsed event with its inputs fetched and decoded."""

    event: CloudEvent[Any]
    """The parsed input event."""
    payload: PayloadT
    """What the stage's ``load`` returned."""
    load_ms: float
    """Wall time spent loading it."""


@dataclass(frozen=True)
class Output:
    """What one input item produced: objects to store, then events to publish."""

    outcome: str
    """``pass``, ``fail``, ``rejected``, ``skipped``...: counted in metrics."""
    objects: tuple[tuple[ImageRef, bytes, str], ...] = ()
    """(ref, bytes, content type) written before any event is published."""
    events: tuple[tuple[Topic, CloudEvent[Any]], ...] = ()
    """(topic, event) published after the objects are stored."""


class Stage(Protocol[PayloadT]):
    """A processing stage: parse, load and process; the runner does all the rest."""

    name: str
    consumes: tuple[Topic, ...]

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        """The event, or None when the record is meant for another stage.

        Raises :class:`~consumers.errors.PoisonRecordError` when it breaks the contract.
        """
        ...

    def load(self, event: CloudEvent[Any], store: Store) -> PayloadT:
        """Fetch and decode the event's inputs (runs in an executor)."""
        ...

    def process(self, items: Sequence[Loaded[PayloadT]]) -> list[Output]:
        """Process a batch; one output per item, same order (runs in an executor).

        A stage may also define ``process_tiled(item) -> Output``: the same for one item under
        less memory, which the runner calls when that item alone ran out of memory."""
        ...


@runtime_checkable
class TrialStage(Protocol):
    """A stage behind a circuit breaker, which may admit an item as a half-open trial."""

    def settle_trial(self, event: CloudEvent[Any]) -> bool:
        """Whether the event's item was admitted as a trial whose outcome is not out yet; the
        runner asks when it dead-letters the item, and its ``error`` metrics then count as the
        failed trial's outcome."""
        ...


def backoff_delays(attempts: int, *, base: float = 0.2, cap: float = 10.0) -> list[float]:
    """Full-jitter exponential backoff delays (AWS architecture blog's "full jitter")."""
    return [backoff_delay(i, base=base, cap=cap) for i in range(attempts)]


def backoff_delay(attempt: int, *, base: float = 0.2, cap: float = 10.0) -> float:
    """The full-jitter delay before retry number ``attempt`` (0-based). The exponent is capped,
    so a stage held for hours (thousands of tries) gets a finite delay, not an overflow."""
    return random.uniform(0, min(cap, base * 2 ** min(attempt, 30)))


async def _sleep_or_stop(delay: float, stop: asyncio.Event) -> None:
    """Sleep ``delay`` seconds, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), delay)


async def poll_retrying(
    consumer: Consumer, max_records: int, timeout_ms: int, stop: asyncio.Event, *,
    log: Any, event: str = "poll_failed", cap: float = 10.0,
) -> list[Record] | None:
    """:func:`poll_or_stop` until a poll succeeds (its records) or ``stop`` is set (None). A
    retriable failure (the broker away, a join that timed out) is logged as ``event`` and
    retried after a jittered backoff; the consumer reconnects (or joins as a new member) by
    itself."""
    failures = 0
    while True:
        try:
            return await poll_or_stop(consumer, max_records, timeout_ms, stop)
        except RetriableError as exc:
            failures += 1
            delay = backoff_delay(failures - 1, cap=cap)
            log.warning(event, error=str(exc), delay_s=round(delay, 3))
            await _sleep_or_stop(delay, stop)  # poll_or_stop returns None once stop is set


@dataclass
class _Batch:
    records: list[Record]
    jobs: list[tuple[Record, CloudEvent[Any]]] = field(default_factory=list)
    dead: list[tuple[Record, BaseException]] = field(default_factory=list)


class StageRunner(Generic[PayloadT]):
    """Runs one stage over a transport and a store until told to stop."""

    def __init__(
        self,
        stage: Stage[PayloadT],
        *,
        transport: Transport,
        store: Store,
        topics: TopicNames,
        group: str,
        knobs: BatchKnobs,
        executor: Executor | None = None,
        retry_cap_s: float = 10.0,
    ) -> None:
        self.stage = stage
        self.transport = transport
        self.store = store
        self.topics = topics
        self.group = group
        self.knobs = knobs
        self.executor = executor
        self.retry_cap_s = retry_cap_s
        self.log = _log.bind(stage=stage.name, group=group)
        self.polled = False
        """True once the first poll succeeded (readiness)."""

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, consumer: Consumer | None = None) -> None:
        """Poll and handle batches until ``stop`` is set; finish the batch in hand, then leave."""
        consumer = consumer or self.transport.consumer(
            self.group, [self.topics.name(t) for t in self.stage.consumes]
        )
        try:
            while not stop.is_set():
                polled = await poll_retrying(
                    consumer, self.knobs.max_batch, self.knobs.max_wait_ms, stop,
                    log=self.log, cap=self.retry_cap_s,
                )
                if polled is None:
                    break
                self.polled = True
                if polled:
                    await self.handle(polled, consumer)
        finally:
            await consumer.close()

    async def handle(self, records: list[Record], consumer: Consumer) -> None:
        """Take one polled batch all the way to its commit."""
        batch = self._parse(records)
        if batch.jobs:
            BATCH_SIZE.labels(self.stage.name).observe(len(batch.jobs))
            loaded, failed = await self._load(batch.jobs)
            batch.dead.extend(failed)
            await self._finish(batch, loaded)
        await self._dead_letter(batch)
        await self._retrying("commit", lambda: consumer.commit(records))

    async def _finish(self, batch: _Batch, loaded: list[tuple[Record, Loaded[PayloadT]]]) -> None:
        """Process, store and publish the loaded items; the items that failed join ``batch.dead``.

        A retriable failure (the breaker's ``pause`` policy) holds the whole batch, uncommitted,
        and tries it again after a backoff. Items the stage defers (outcome :data:`DEFERRED`: a
        half-open breaker's items beyond its trial permits) are processed again after a backoff
        once the others' outputs are out (the trials among them), until none is deferred; the
        batch is committed only after that. The items that failed so far are dead-lettered
        before each wait: a trial that raised is among them, and its ``error`` metrics are the
        verdict the deferred items wait for.
        """
        attempt = 0
        while loaded:
            done, failed = await self._retrying("process", partial(self._process, loaded))
            batch.dead.extend(failed)
            ready = [(record, output) for record, output in done if output.outcome != DEFERRED]
            outputs = [output for _, output in ready]
            await self._store(outputs)
            await self._publish(outputs)
            for record, output in ready:
                with self._bound(record):
                    self.log.info("item_done", outcome=output.outcome)
            deferred = {record for record, output in done if output.outcome == DEFERRED}
            loaded = [pair for pair in loaded if pair[0] in deferred]
            if loaded:
                await self._dead_letter(batch)
                delay = backoff_delay(attempt, cap=self.retry_cap_s)
                self.log.info("items_deferred", count=len(loaded), delay_s=round(delay, 3))
                attempt += 1
                await asyncio.sleep(delay)

    # -- phases -----------------------------------------------------------------------------

    def _parse(self, records: list[Record]) -> _Batch:
        batch = _Batch(records)
        for record in records:
            with self._bound(record):
                try:
                    event = self.stage.parse(self.topics.topic(record.topic), record.value)
                except PermanentError as exc:
                    self.log.warning("poison_record", error=str(exc))
                    batch.dead.append((record, exc))
                    continue
                if event is not None:
                    batch.jobs.append((record, event))
        return batch

    async def _load(
        self, jobs: list[tuple[Record, CloudEvent[Any]]]
    ) -> tuple[list[tuple[Record, Loaded[PayloadT]]], list[tuple[Record, BaseException]]]:
        async def one(record: Record, event: CloudEvent[Any]) -> Loaded[PayloadT]:
            start = time.perf_counter()
            with self._bound(record):
                payload = await self._retrying(
                    "load", lambda: self._in_executor(self.stage.load, event, self.store)
                )
            return Loaded(event, payload, (time.perf_counter() - start) * 1000.0)

        start = time.perf_counter()
        results = await asyncio.gather(
            *(one(record, event) for record, event in jobs), return_exceptions=True
        )
        STAGE_SECONDS.labels(self.stage.name, "load").observe(time.perf_counter() - start)
        loaded: list[tuple[Record, Loaded[PayloadT]]] = []
        dead: list[tuple[Record, BaseException]] = []
        for (record, _), result in zip(jobs, results, strict=True):
            if isinstance(result, Exception):
                # Permanent (missing object, undecodable input): dead-letter, never block.
                with self._bound(record):
                    self.log.warning("load_failed", error=repr(result))
                dead.append((record, result))
            elif isinstance(result, BaseException):
                raise result
            else:
                loaded.append((record, result))
        return loaded, dead

    async def _process(
        self, loaded: list[tuple[Record, Loaded[PayloadT]]]
    ) -> tuple[list[tuple[Record, Output]], list[tuple[Record, BaseException]]]:
        if not loaded:
            return [], []
        items = [item for _, item in loaded]
        start = time.perf_counter()
        try:
            outputs = await self._in_executor(self._run_batch, items)
            if len(outputs) != len(items):
                raise RuntimeError(
                    f"stage {self.stage.name} gave {len(outputs)} outputs for {len(items)} items"
                )
        except RetriableError:
            raise
        except Exception as exc:  # noqa: BLE001 - isolated per item and dead-lettered, never lost
            if len(items) == 1:
                return [], [(loaded[0][0], exc)]
            # Isolate the failing item: retry one by one so its neighbours still go through.
            self.log.warning("batch_failed_isolating", error=repr(exc), size=len(items))
            done: list[tuple[Record, Output]] = []
            dead: list[tuple[Record, BaseException]] = []
            for pair in loaded:
                ok, failed = await self._process([pair])
                done.extend(ok)
                dead.extend(failed)
            return done, dead
        finally:
            STAGE_SECONDS.labels(self.stage.name, "process").observe(time.perf_counter() - start)
        for output in outputs:
            ITEMS.labels(self.stage.name, output.outcome).inc()
        return [(record, output) for (record, _), output in zip(loaded, outputs, strict=True)], []

    async def _store(self, outputs: list[Output]) -> None:
        async def put(ref: ImageRef, data: bytes, content_type: str) -> None:
            await self._retrying(
                "store", lambda: self._in_executor(self.store.put, ref, data, content_type)
            )

        start = time.perf_counter()
        await asyncio.gather(*(put(*obj) for output in outputs for obj in output.objects))
        STAGE_SECONDS.labels(self.stage.name, "store").observe(time.perf_counter() - start)

    async def _publish(self, outputs: list[Output]) -> None:
        messages = [
            Message(
                topic=self.topics.name(topic),
                key=_key(topic, event),
                value=event.model_dump_json(exclude_none=False).encode(),
                headers=(("content-type", b"application/cloudevents+json"),),
            )
            for output in outputs
            for topic, event in output.events
        ]
        if messages:
            await self._retrying("publish", lambda: self.transport.publish(messages))

    async def _dead_letter(self, batch: _Batch) -> None:
        """Send each record of ``batch.dead`` to ``dlq`` with headers, and empty it; for a record
        that parsed, also publish an ``error`` metrics event (errors count as failures in the
        circuit breaker's window; a half-open trial's error is marked as the trial's outcome)."""
        if not batch.dead:
            return
        dead, batch.dead = batch.dead, []
        events = dict(batch.jobs)
        messages = []
        for record, exc in dead:
            event = events.get(record)
            if event is not None:
                messages.append(self._error_metrics(event))
            ITEMS.labels(self.stage.name, "dlq").inc()
            with self._bound(record):
                self.log.warning("dead_lettered", error_class=type(exc).__name__)
            headers = (
                ("source-topic", record.topic.encode()),
                ("source-partition", str(record.partition).encode()),
                ("source-offset", str(record.offset).encode()),
                ("consumer-group", self.group.encode()),
                ("stage", self.stage.name.encode()),
                ("error-class", type(exc).__name__.encode()),
                ("error-message", str(exc)[:1000].encode("utf-8", "replace")),
            )
            messages.append(
                Message(
                    topic=self.topics.name(Topic.DLQ),
                    key=record.key or "",
                    value=record.value,
                    headers=record.headers + headers,
                )
            )
        await self._retrying("dead_letter", lambda: self.transport.publish(messages))

    # -- helpers ----------------------------------------------------------------------------

    def _run_batch(self, items: Sequence[Loaded[PayloadT]]) -> list[Output]:
        """The ladder over ``items``, recording the batch's peak memory."""
        reset_peak_memory()
        try:
            return self._ladder()(items)
        finally:
            device, peak = peak_memory()
            PEAK_MEMORY.labels(self.stage.name, device).set(peak)

    def _ladder(self) -> OomLadder[Loaded[PayloadT], Output]:
        """The stage's ``process`` behind the out-of-memory ladder."""

        def split(size: int) -> None:
            OOM_SPLITS.labels(self.stage.name).inc()
            self.log.warning("out_of_memory_splitting", size=size)

        return OomLadder(
            process=self.stage.process,
            tiled=getattr(self.stage, "process_tiled", None),
            exhausted=self._exhausted,
            on_split=split,
        )

    def _exhausted(self, item: Loaded[PayloadT], exc: BaseException) -> Output:
        """An item that ran out of memory even alone: to review, and an ``error`` outcome."""
        self.log.warning("resource_exhausted", image_id=item.event.subject, error=repr(exc))
        trial = isinstance(self.stage, TrialStage) and self.stage.settle_trial(item.event)
        events = exhausted_events(item.event, self.stage.name, trial=trial)
        return Output(outcome="exhausted", events=events)

    def _error_metrics(self, event: CloudEvent[Any]) -> Message:
        data = event.data
        context = getattr(data, "context", None)
        vendor = context.vendor_id if context is not None else getattr(data, "vendor_id", "")
        trial = isinstance(self.stage, TrialStage) and self.stage.settle_trial(event)
        metrics = CloudEvent[MetricsData](
            id=str(uuid.uuid5(_NAMESPACE, f"{event.subject}/{self.stage.name}/error")),
            source=f"pixelgate/{self.stage.name}",
            type=event_type(Topic.METRICS),
            subject=event.subject,
            time=datetime.now(UTC),
            data=MetricsData(stage=self.stage.name, vendor_id=vendor or "unknown",
                             outcome="error", latency_ms=0.0, batch_size=1, trial=trial),
        )
        return Message(
            topic=self.topics.name(Topic.METRICS),
            key=_key(Topic.METRICS, metrics),
            value=metrics.model_dump_json().encode(),
            headers=(("content-type", b"application/cloudevents+json"),),
        )

    async def _in_executor(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` off the event loop, keeping the caller's structlog context."""
        context = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: context.run(fn, *args))

    async def _retrying(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Retry ``call`` on retriable errors with full-jitter backoff, without limit on the
        number of tries (the stage pauses, it never drops or dead-letters on an outage) but with
        each wait capped at ``retry_cap_s``."""
        attempt = 0
        while True:
            try:
                return await call()
            except RetriableError as exc:
                delay = backoff_delay(attempt, cap=self.retry_cap_s)
                self.log.warning("retrying", phase=what, attempt=attempt + 1, error=str(exc),
                                 delay_s=round(delay, 3))
                attempt += 1
                await asyncio.sleep(delay)

    def _bound(self, record: Record) -> Any:
        return structlog.contextvars.bound_contextvars(
            image_id=record.key,
            stage=self.stage.name,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
        )
