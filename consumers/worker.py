"""Kafka + S3 mode: ``pixelgate worker STAGE`` and ``pixelgate submit IN``.

A worker runs one stage (or ``all``) as Kafka consumer groups named ``<prefix><stage>``, with
images in S3. The stage code is the same as in embedded mode; only the transport and the store
differ. On SIGTERM or SIGINT it finishes the batch in hand, commits and leaves the group.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Sequence

from consumers.breaker_feed import BreakerFeed, control_message, feed_group
from consumers.errors import RetriableError, TransportUnavailableError
from consumers.health import HealthServer
from consumers.kafka import KafkaTransport
from consumers.launch import running_stages
from consumers.logging import get_logger
from consumers.runner import StageRunner, TopicNames, backoff_delay
from consumers.s3 import S3Store
from consumers.settings import Settings
from consumers.stages import STAGE_NAMES
from consumers.uploads import InputFile, image_id_for, safe_name, uploaded_message, vendor_sku
from schemas.events import ImageRef, Operations, Topic

__all__ = [
    "prepare",
    "read_breaker_states",
    "run_worker",
    "send_breaker_command",
    "submit_files",
]

_log = get_logger("worker")


async def prepare(settings: Settings, transport: KafkaTransport, store: S3Store) -> None:
    """Create topics and buckets if missing, waiting (with backoff) for servers to come up."""
    topics = TopicNames(settings.topic_prefix)
    loop = asyncio.get_running_loop()
    attempt = 0
    while True:
        try:
            await transport.ensure_topics([topics.name(t) for t in Topic])
            await loop.run_in_executor(
                None, store.ensure_buckets, [settings.output_bucket, settings.upload_bucket]
            )
            return
        except RetriableError as exc:
            attempt += 1
            delay = backoff_delay(attempt - 1, cap=5.0)
            _log.warning("waiting_for_servers", error=str(exc), attempt=attempt)
            await asyncio.sleep(delay)


async def run_worker(
    settings: Settings,
    stages: Sequence[str],
    stop: asyncio.Event | None = None,
    *,
    handle_signals: bool = True,
) -> None:
    """Run ``stages`` until ``stop`` is set (or, with ``handle_signals``, SIGTERM/SIGINT)."""
    names = list(STAGE_NAMES) if list(stages) == ["all"] else list(stages)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    transport = KafkaTransport(settings, client_id=f"pixelgate-{'-'.join(names)}")
    store = S3Store(settings)
    topics = TopicNames(settings.topic_prefix)
    # Every worker runs the circuit breaker's feed: before the stages start editing, it restores
    # the breakers from the `breaker` topic's latest transitions and reads the windows' end of
    # `metrics` (consumers/breaker_start.py), in its own consumer group.
    guarded = [n for n in names if n in settings.breakers]
    feed = BreakerFeed({n: settings.breakers[n] for n in guarded}, transport=transport,
                       topics=topics,
                       group=feed_group(settings.topic_prefix),
                       source=f"pixelgate/worker/{'-'.join(names)}/{uuid.uuid4().hex[:8]}")
    runners: list[StageRunner[object]] = []
    health = None
    if settings.http_port:
        health = HealthServer(
            settings.http_port,
            ready=lambda: bool(runners) and all(r.polled for r in runners)
            and (not guarded or feed.caught_up.is_set()),
        )
        health.start()
    _log.info("worker_starting", stages=names, settings=settings.as_dict())
    tasks: list[asyncio.Task[None]] = []
    try:
        await prepare(settings, transport, store)
        if guarded:
            tasks.append(asyncio.create_task(feed.run(stop), name="breaker"))
            await _caught_up(feed, tasks[0], stop)
        with running_stages(settings, stop, transport=transport, store=store, topics=topics,
                            group_prefix=settings.topic_prefix, names=names,
                            board=feed.board if guarded else None) as running:
            runners.extend(running.runners)
            tasks.extend(running.tasks)
            await asyncio.gather(*tasks)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await transport.close()
        if health is not None:
            health.stop()
        _log.info("worker_stopped", stages=names)


async def _caught_up(feed: BreakerFeed, task: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Wait until the breaker feed has replayed the metrics so far (or the worker stops)."""
    waiter = asyncio.create_task(feed.caught_up.wait())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, stopping, task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopping.cancel()
    if task.done():
        task.result()  # re-raises why the feed stopped
    _log.info("breaker_ready", states={f"{s}/{v or '*'}": str(st)
                                       for (s, v), st, _ in feed.board.snapshots()})


async def submit_files(
    files: Sequence[InputFile], settings: Settings, operations: Operations
) -> list[tuple[str, str]]:
    """Upload ``files`` and publish one ``uploaded`` event each; returns (name, image id)."""
    transport = KafkaTransport(settings, client_id="pixelgate-submit")
    store = S3Store(settings)
    topics = TopicNames(settings.topic_prefix)
    loop = asyncio.get_running_loop()
    submitted: list[tuple[str, str]] = []
    try:
        await prepare(settings, transport, store)
        messages = []
        for item in files:
            data = item.path.read_bytes()
            image_id = image_id_for(item.name, data)
            vendor, sku = vendor_sku(item.name)
            ref = ImageRef(
                bucket=settings.upload_bucket,
                key=f"{vendor}/{sku}/{image_id}/{safe_name(item.name)}",
            )
            await loop.run_in_executor(None, store.put, ref, data, "application/octet-stream")
            messages.append(
                uploaded_message(topics, image_id, ref, item.name, operations, "pixelgate/submit")
            )
            submitted.append((item.name, image_id))
        await transport.publish(messages)
    finally:
        await transport.close()
    return submitted


async def send_breaker_command(
    settings: Settings, stage: str, action: str, *, vendor_id: str | None = None, reason: str = ""
) -> None:
    """Publish an operator command on ``breaker``; every replica of ``stage`` obeys it."""
    transport = KafkaTransport(settings, client_id="pixelgate-breaker-cli")
    try:
        await transport.ensure_topics([TopicNames(settings.topic_prefix).name(Topic.BREAKER)])
        await transport.publish([
            control_message(TopicNames(settings.topic_prefix), stage, action,
                            vendor_id=vendor_id, reason=reason)
        ])
    finally:
        await transport.close()


async def read_breaker_states(settings: Settings, *, timeout_s: float = 60.0) -> BreakerFeed:
    """Rebuild every breaker's state the way the workers do (replay ``metrics`` and ``breaker``
    in a consumer group of its own), without publishing anything; returns the caught-up feed."""
    transport = KafkaTransport(settings, client_id="pixelgate-breaker-cli")
    topics = TopicNames(settings.topic_prefix)
    feed = BreakerFeed(settings.breakers, transport=transport, topics=topics,
                       group=feed_group(f"{settings.topic_prefix}status-"), publish=False)
    stop = asyncio.Event()
    try:
        await transport.ensure_topics([topics.name(Topic.METRICS), topics.name(Topic.BREAKER)])
        task = asyncio.create_task(feed.run(stop), name="breaker-status")
        try:
            await asyncio.wait_for(_caught_up(feed, task, stop), timeout=timeout_s)
        except TimeoutError:
            raise TransportUnavailableError(
                f"could not read the metrics topic within {timeout_s:.0f} s"
            ) from None
        finally:
            stop.set()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await transport.close()
    return feed
