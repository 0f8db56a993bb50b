"""Faults over real servers: a joining worker, kill -9 mid-batch, a broker restart, an S3 outage.

Workers run as subprocesses (``pixelgate worker all``) so that they can be killed for real. An
in-process observer reads the terminal topics (``results``, ``rejected``, ``review``, ``dlq``)
from the beginning without a consumer group, so it neither joins nor disturbs the workers' groups
and keeps reading across a broker restart. Each test uses a fresh topic prefix, hence fresh
topics and groups. Tests that stop a server use a stack of their own, never the shared one.

The guarantees checked are those of docs/operations.md ("Delivery guarantees"): at-least-once,
exactly one terminal topic per image (duplicates of the same event count as one), byte-identical
replays, and no dead letters for an outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import logging
import os
import signal
import socket
import subprocess
import sysconfig
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client.parser import text_string_to_metric_families

from consumers.dev.devstack import DevStack
from consumers.dev.sample import generate_sample
from consumers.kafka import KafkaTransport
from consumers.runner import TopicNames
from consumers.s3 import S3Store
from consumers.settings import Settings
from consumers.uploads import InputFile, collect_inputs
from consumers.worker import prepare, submit_files
from schemas.events import ImageRef, Operations, Topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TERMINAL = (Topic.RESULTS, Topic.REJECTED, Topic.REVIEW, Topic.DLQ)
PIXELGATE = Path(sysconfig.get_path("scripts")) / "pixelgate"
SESSION_TIMEOUT_MS = 6000  # Tansu holds a first JoinGroup for about half of it: 3 s joins
MAX_BATCH = 2
OUTAGE_S = 20.0
NOTICE_S = 60.0
"""Most seconds the store stays down beyond ``OUTAGE_S`` waiting for a worker to run into it."""

_log = logging.getLogger(__name__)  # measurements: run with --log-cli-level=INFO to see them


# -- helpers ------------------------------------------------------------------------------------


def _prefix() -> str:
    return f"f{uuid.uuid4().hex[:8]}."


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _settings(stack: DevStack, prefix: str) -> Settings:
    """In-process settings (submit, observer, store checks) for ``stack`` under ``prefix``."""
    return stack.settings(
        topic_prefix=prefix,
        http_port=0,
        kafka_session_timeout_ms=SESSION_TIMEOUT_MS,
        kafka_heartbeat_interval_ms=1000,
    )


async def _prepare(settings: Settings) -> None:
    """Topics and buckets exist (the observer assigns partitions before anything is produced)."""
    transport = KafkaTransport(settings, client_id="faults-prepare")
    try:
        await prepare(settings, transport, S3Store(settings))
    finally:
        await transport.close()


def _sample(tmp_path: Path, count: int, seed: int) -> list[InputFile]:
    """``count`` sample uploads (clean, text, broken and rejected kinds, in a fixed order)."""
    folder = tmp_path / f"sample-{seed}"
    generate_sample(folder, count, seed=seed)
    return collect_inputs(folder / "upload")


async def _submit(settings: Settings, files: list[InputFile]) -> set[str]:
    """Upload ``files`` and publish their ``uploaded`` events; their image ids."""
    submitted = await submit_files(files, settings, Operations())
    ids = {image_id for _, image_id in submitted}
    assert len(ids) == len(files)
    return ids


async def _eventually(condition: Callable[[], bool], timeout: float, step: float = 0.2) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(step)
    return True


# -- worker subprocesses ------------------------------------------------------------------------


@dataclass
class Worker:
    """One ``pixelgate worker`` subprocess; its stdout and stderr go to ``log``."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    http_port: int

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (anything else is skipped)."""
        out = []
        for raw in self.log.read_bytes().splitlines():
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                if isinstance(line, dict):
                    out.append(line)
        return out

    def count(self, event: str) -> int:
        """How many log lines have this ``event``."""
        return sum(1 for line in self.lines() if line.get("event") == event)

    def _get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=2.0)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return 0, b""
        finally:
            conn.close()

    def ready(self) -> bool:
        """``/readyz`` is 200: every stage's consumer has joined its group and polled."""
        return self._get("/readyz")[0] == 200

    def items(self) -> dict[str, float]:
        """``pixelgate_items_total`` by ``stage/outcome``, scraped from ``/metrics``."""
        status, body = self._get("/metrics")
        if status != 200:
            return {}
        return {
            f"{sample.labels['stage']}/{sample.labels['outcome']}": sample.value
            for family in text_string_to_metric_families(body.decode())
            if family.name == "pixelgate_items"
            for sample in family.samples
            if sample.name == "pixelgate_items_total"
        }

    def tail(self) -> str:
        """The end of its log, for failure messages."""
        return self.log.read_text(errors="replace")[-3000:]

    def alive(self) -> bool:
        """The process has not exited."""
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no flush, no commit, no LeaveGroup."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (finish the batch in hand, commit, leave), SIGKILL after ``timeout`` s."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Workers:
    """Starts ``pixelgate worker all`` subprocesses and stops every one it started."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.made: list[Worker] = []
        self.base = {k: v for k, v in os.environ.items() if not k.startswith("PIXELGATE_")}

    def start(self, stack: DevStack, prefix: str, name: str) -> Worker:
        """A worker of every stage on ``stack`` under ``prefix``; its log is ``worker-NAME.log``."""
        port = _free_port()
        env = {
            **self.base,
            **stack.settings_env(),
            "PIXELGATE_TOPIC_PREFIX": prefix,
            "PIXELGATE_HTTP_PORT": str(port),
            "PIXELGATE_KAFKA_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
            "PIXELGATE_KAFKA_HEARTBEAT_INTERVAL_MS": "1000",
            "PIXELGATE_BATCH__MAX_BATCH": str(MAX_BATCH),
        }
        log = self.tmp_path / f"worker-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(PIXELGATE), "worker", "all"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(name, proc, log, port)
        self.made.append(worker)
        return worker

    def stop_all(self) -> None:
        """Stop every worker started here: SIGTERM to all at once, SIGKILL after 20 s."""
        for worker in self.made:
            if worker.alive():
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.made:
            worker.stop()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Worker subprocesses for one test; all of them are stopped when it ends."""
    made = Workers(tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


# -- the terminal observer ----------------------------------------------------------------------


@dataclass
class Terminal:
    """Reads every terminal topic of a prefix from offset 0 in the background, without a group.

    With ``snapshot``, the bytes of each ``results`` event's object are read as soon as the
    event is seen (so a replay that rewrote the object can be compared with the first write).
    """

    settings: Settings
    snapshot: bool = False
    records: dict[str, list[ConsumerRecord[bytes, bytes]]] = field(default_factory=dict)
    snapshots: dict[tuple[str, int, int], bytes] = field(default_factory=dict)
    fetch_errors: int = 0
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Terminal:
        topics = TopicNames(self.settings.topic_prefix)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        partitions = [
            TopicPartition(topics.name(topic), p)
            for topic in TERMINAL
            for p in range(self.settings.topic_partitions)
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run(consumer))
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        store = S3Store(self.settings)
        results = TopicNames(self.settings.topic_prefix).name(Topic.RESULTS)
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=500)
            except KafkaError:
                self.fetch_errors += 1
                await asyncio.sleep(0.5)
                continue
            for messages in batches.values():
                for m in messages:
                    if self.snapshot and m.topic == results:
                        ref = ImageRef.model_validate(json.loads(m.value)["data"]["image"])
                        self.snapshots[(m.topic, m.partition, m.offset)] = await asyncio.to_thread(
                            store.get, ref
                        )
                    self.records.setdefault(m.key.decode(), []).append(m)

    def count(self) -> int:
        """Image ids seen on a terminal topic so far."""
        return len(self.records)

    def covers(self, ids: set[str]) -> bool:
        """Every id in ``ids`` has reached a terminal topic."""
        return ids <= set(self.records)

    async def settle(self, seconds: float = 2.0) -> None:
        """Give late duplicates (or a second, wrong terminal) time to arrive."""
        await asyncio.sleep(seconds)


def _check_terminals(terminal: Terminal, ids: set[str]) -> dict[str, str]:
    """Exactly one terminal topic per id, nothing lost, nothing foreign; returns id -> topic.

    Duplicates of the same event (same topic, same CloudEvent ``id``) are allowed.
    """
    prefix = terminal.settings.topic_prefix
    assert set(terminal.records) == ids, {
        "lost": sorted(ids - set(terminal.records)),
        "foreign": sorted(set(terminal.records) - ids),
    }
    topics: dict[str, str] = {}
    for image_id, records in terminal.records.items():
        names = {r.topic.removeprefix(prefix) for r in records}
        assert len(names) == 1, (image_id, sorted(names))
        (topics[image_id],) = names
        if topics[image_id] != Topic.DLQ:
            # A duplicate is the same event: same id and data; only wall-clock fields differ.
            replays = {json.dumps(_replay_view(r.value), sort_keys=True) for r in records}
            assert len(replays) == 1, (image_id, replays)
    return topics


def _replay_view(value: bytes) -> dict[str, Any]:
    """A terminal event without what a replay may change: ``time`` and the trail's timings."""
    event = json.loads(value)
    event.pop("time", None)
    event.get("data", {}).get("trail", {}).pop("timings_ms", None)
    return event


def _result_refs(terminal: Terminal) -> dict[str, set[ImageRef]]:
    results = TopicNames(terminal.settings.topic_prefix).name(Topic.RESULTS)
    return {
        image_id: {ImageRef.model_validate(json.loads(r.value)["data"]["image"]) for r in records}
        for image_id, records in terminal.records.items()
        if records[0].topic == results
    }


def _assert_results_stored(terminal: Terminal) -> int:
    """Every ``results`` event names one object, and it is a PNG in the store; their count."""
    store = S3Store(terminal.settings)
    refs = _result_refs(terminal)
    for image_id, image_refs in refs.items():
        assert len(image_refs) == 1, (image_id, image_refs)  # duplicates name the same key
        (ref,) = image_refs
        assert store.get(ref)[:8] == b"\x89PNG\r\n\x1a\n", (image_id, ref)
    return len(refs)


def _duplicated(terminal: Terminal) -> int:
    """Image ids whose terminal event arrived more than once."""
    return sum(1 for records in terminal.records.values() if len(records) > 1)


def _measured(test: str, **values: Any) -> None:
    _log.info("measured %s: %s", test, json.dumps(values, sort_keys=True))


# -- the tests ----------------------------------------------------------------------------------


async def test_two_workers_share_partitions_and_a_third_joins_mid_stream(
    tmp_path, dev_stack, workers
):
    prefix = _prefix()
    settings = _settings(dev_stack, prefix)
    pool = _sample(tmp_path, 40, seed=21)  # every kind; 28 spare for about 40 s of trickle
    # The last wave's ids hash onto all three partitions of `uploaded` (seed 31 puts two on
    # each), so each of the three members of the preflight group gets some of it.
    last_wave = _sample(tmp_path, 6, seed=31)
    await _prepare(settings)
    pair = [workers.start(dev_stack, prefix, name) for name in ("a", "b")]
    assert await _eventually(lambda: all(w.ready() for w in pair), 90), [w.tail() for w in pair]
    async with Terminal(settings) as terminal:
        ids = await _submit(settings, pool[:12])
        started = time.monotonic()
        assert await _eventually(lambda: terminal.count() >= 1, 120), "nothing came through"
        joiner = workers.start(dev_stack, prefix, "c")
        joining = time.monotonic()
        done_at_join = terminal.count()
        # Keep the stream flowing until the joiner has its partitions: one more upload every
        # 1.5 s. A rebalance stops consumption in every group for about 3 s (Tansu holds the
        # JoinGroup for half the session timeout), so uploads made during it are still pending
        # when the joiner is ready: each group rebalances with records in flight.
        rest = pool[12:]
        next_upload = 0.0
        while not joiner.ready():
            assert time.monotonic() - joining < 90, joiner.tail()
            if rest and time.monotonic() >= next_upload:
                ids |= await _submit(settings, [rest.pop(0)])
                next_upload = time.monotonic() + 1.5
            await asyncio.sleep(0.25)
        join_s = time.monotonic() - joining
        pending_at_ready = len(ids - set(terminal.records))
        assert pending_at_ready, "the stream ran dry before the joiner got its partitions"
        ids |= await _submit(settings, last_wave)
        assert await _eventually(lambda: terminal.covers(ids), 180), sorted(
            ids - set(terminal.records)
        )
        finished = time.monotonic() - started
        await terminal.settle()
    topics = _check_terminals(terminal, ids)
    assert _assert_results_stored(terminal) >= 1
    trio = [*pair, joiner]
    items = {w.name: w.items() for w in trio}
    for worker in trio:
        assert worker.alive(), worker.tail()
        preflighted = sum(v for k, v in items[worker.name].items() if k.startswith("preflight/"))
        assert preflighted >= 1, items
    _measured(
        "joiner",
        images=len(ids),
        done_at_join=done_at_join,
        pending_at_ready=pending_at_ready,
        join_s=round(join_s, 1),
        stream_s=round(finished, 1),
        topics=dict(Counter(topics.values())),
        duplicated_ids=_duplicated(terminal),
        items_by_worker=items,
        revokes={w.name: w.count("partitions_revoked") for w in trio},
    )


async def test_kill_9_mid_batch_then_a_new_worker_loses_nothing(tmp_path, dev_stack, workers):
    prefix = _prefix()
    settings = _settings(dev_stack, prefix)
    await _prepare(settings)
    victim = workers.start(dev_stack, prefix, "victim")
    async with Terminal(settings, snapshot=True) as terminal:
        ids = await _submit(settings, _sample(tmp_path, 10, seed=22))
        assert await _eventually(lambda: terminal.count() >= 1, 120), "nothing came through"
        victim.kill()
        killed = time.monotonic()
        done_at_kill = terminal.count()
        assert done_at_kill < len(ids), "every image was done before the kill: nothing tested"
        heir = workers.start(dev_stack, prefix, "heir")
        assert await _eventually(lambda: terminal.covers(ids), 180), sorted(
            ids - set(terminal.records)
        )
        recovery = time.monotonic() - killed
        await terminal.settle()
    assert victim.proc.returncode == -signal.SIGKILL
    _check_terminals(terminal, ids)
    _assert_results_stored(terminal)
    # Replay determinism: every write of a result object (one snapshot per results event,
    # taken when the event was seen) and the object now in the store hold the same bytes.
    store = S3Store(settings)
    results = TopicNames(prefix).name(Topic.RESULTS)
    for image_id, (ref,) in ((i, tuple(r)) for i, r in _result_refs(terminal).items()):
        seen = {
            terminal.snapshots[(m.topic, m.partition, m.offset)]
            for m in terminal.records[image_id]
            if m.topic == results
        }
        assert seen == {store.get(ref)}, image_id
    assert heir.alive()
    _measured(
        "kill -9",
        done_at_kill=done_at_kill,
        recovery_s=round(recovery, 1),
        duplicated_ids=_duplicated(terminal),
        duplicated_results=sum(1 for i in _result_refs(terminal) if len(terminal.records[i]) > 1),
    )


async def test_broker_restart_mid_stream_the_same_worker_finishes(
    tmp_path, dev_stack_factory, workers
):
    stack = dev_stack_factory()  # this test restarts the broker: never the shared one
    try:
        prefix = _prefix()
        settings = _settings(stack, prefix)
        await _prepare(settings)
        worker = workers.start(stack, prefix, "a")
        async with Terminal(settings) as terminal:
            ids = await _submit(settings, _sample(tmp_path, 12, seed=23))
            assert await _eventually(lambda: terminal.count() >= 1, 120), "nothing came through"
            done_at_kill = terminal.count()
            await asyncio.to_thread(stack.stop_service, "broker", kill=True)
            down = time.monotonic()
            await asyncio.sleep(3.0)
            await asyncio.to_thread(stack.start_service, "broker")
            assert await _eventually(lambda: terminal.covers(ids), 180), sorted(
                ids - set(terminal.records)
            )
            recovery = time.monotonic() - down
            await terminal.settle()
        assert worker.alive(), worker.tail()  # it was never restarted
        assert done_at_kill < len(ids), "every image was done before the restart: nothing tested"
        topics = _check_terminals(terminal, ids)
        assert Topic.DLQ not in topics.values(), topics  # an outage dead-letters nothing
        _assert_results_stored(terminal)
        _measured(
            "broker restart",
            done_at_kill=done_at_kill,
            recovery_s=round(recovery, 1),
            duplicated_ids=_duplicated(terminal),
            retrying=worker.count("retrying"),
            poll_failed=worker.count("poll_failed"),
            observer_fetch_errors=terminal.fetch_errors,
        )
    finally:
        workers.stop_all()  # before the servers they talk to
        stack.down(timeout=5.0)  # its data is disposable: do not wait out a slow weed exit


def _outage_seen(worker: Worker) -> int:
    """How often ``worker`` ran into an outage: calls it retried, and polls that failed."""
    return worker.count("retrying") + worker.count("poll_failed")


async def test_object_store_down_for_20_s_pauses_and_dead_letters_nothing(
    tmp_path, dev_stack_factory, workers
):
    stack = dev_stack_factory()  # this test stops the object store: never the shared one
    try:
        prefix = _prefix()
        settings = _settings(stack, prefix)
        await _prepare(settings)
        worker = workers.start(stack, prefix, "a")
        assert await _eventually(worker.ready, 90), worker.tail()
        async with Terminal(settings) as terminal:
            ids = await _submit(settings, _sample(tmp_path, 10, seed=24))
            # Mid-stream, so the worker has batches in hand that need the store. (The broker
            # keeps its log in this store too: while it is down, Kafka is unusable as well.)
            assert await _eventually(lambda: terminal.count() >= 1, 120), "nothing came through"
            done_at_outage = terminal.count()
            seen_before = _outage_seen(worker)  # a first poll may fail while the group forms
            down = time.monotonic()  # S3 stops answering at SIGTERM; weed may take 15 s to exit
            await asyncio.to_thread(stack.stop_service, "store")
            stop_s = time.monotonic() - down
            await asyncio.sleep(max(0.0, OUTAGE_S - stop_s))
            # The outage lasts until the worker has run into it (a retried store call, or a
            # failed poll: the broker keeps its log in the store). A worker busy computing a
            # batch for the whole 20 s would otherwise see no outage at all, and the test would
            # check nothing.
            noticed = await _eventually(lambda: _outage_seen(worker) > seen_before, NOTICE_S)
            await asyncio.to_thread(stack.start_service, "store")
            up = time.monotonic()
            assert noticed, f"no retry or failed poll in {OUTAGE_S + NOTICE_S:.0f} s of outage"
            assert await _eventually(lambda: terminal.covers(ids), 240), sorted(
                ids - set(terminal.records)
            )
            recovery = time.monotonic() - up
            await terminal.settle()
        assert worker.alive(), worker.tail()
        assert done_at_outage < len(ids), "every image was done before the outage: nothing tested"
        topics = _check_terminals(terminal, ids)
        dead = sorted(i for i, t in topics.items() if t == Topic.DLQ)
        assert not dead, [dict(terminal.records[i][0].headers) for i in dead]
        _assert_results_stored(terminal)
        retries = _outage_seen(worker)
        assert retries < 200, retries  # retries are bounded (each wait is capped, not their count)
        _measured(
            "store outage",
            done_at_outage=done_at_outage,
            outage_s=round(up - down, 1),
            store_stop_s=round(stop_s, 1),
            recovery_s=round(recovery, 1),
            retrying=worker.count("retrying"),
            poll_failed=worker.count("poll_failed"),
            duplicated_ids=_duplicated(terminal),
        )
    finally:
        workers.stop_all()
        stack.down(timeout=5.0)  # its data is disposable: do not wait out a slow weed exit
