"""Embedded mode: every stage in one process, over the in-memory transport and a filesystem store.

It goes through the same :class:`~consumers.runner.StageRunner`, events and object keys as the
Kafka workers; only the transport and the store differ. ``run_embedded`` uploads the input
files into the store, publishes one ``uploaded`` event per file, runs all stages until every
image id has reached a terminal topic (``results``, ``rejected``, ``review`` or ``dlq``), and
returns one report row per input file.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from consumers.breaker import Transition
from consumers.breaker_feed import BreakerFeed
from consumers.report import BreakerTransition, ReportRow
from consumers.runner import StageRunner, TopicNames
from consumers.settings import Settings
from consumers.stages import build_stages
from consumers.store import FilesystemStore
from consumers.transport import MemoryTransport, Message, Record
from schemas.events import (
    ImageRef,
    Operations,
    RejectedData,
    ResultData,
    ReviewData,
    Topic,
    UploadedData,
    UploadedEvent,
)
from schemas.reasons import ReasonCode

__all__ = [
    "TERMINAL",
    "EmbeddedRun",
    "InputFile",
    "image_id_for",
    "run_embedded",
    "safe_name",
    "uploaded_message",
    "vendor_sku",
]

TERMINAL = (Topic.RESULTS, Topic.REJECTED, Topic.REVIEW, Topic.DLQ)
_STATUS = {Topic.RESULTS: "done", Topic.REVIEW: "review", Topic.REJECTED: "rejected",
           Topic.DLQ: "failed"}
_NAMESPACE = uuid.UUID("0e4f0a52-8a83-4d5e-b4a4-2b1c7d9e6f10")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InputFile:
    """One input file of an embedded run."""

    name: str
    """Path relative to IN, with '/' separators: the report's ``input``."""
    path: Path
    """The file on disk."""


@dataclass(frozen=True)
class EmbeddedRun:
    """What an embedded run produced."""

    rows: list[ReportRow]
    """One report row per input file, sorted by input."""
    elapsed_s: float
    """Wall time of the run."""
    transport: MemoryTransport
    """The in-memory broker, with every topic's records (for inspection and tests)."""
    transitions: list[BreakerTransition]
    """Every circuit-breaker transition during the run, in order."""


def image_id_for(name: str, data: bytes) -> str:
    """A deterministic image id: the same file at the same path always gets the same id."""
    digest = hashlib.sha256(data).hexdigest()
    return str(uuid.uuid5(_NAMESPACE, f"{name}\0{digest}"))


def uploaded_message(
    topics: TopicNames, image_id: str, ref: ImageRef, name: str, ops: Operations, source: str
) -> Message:
    """The ``uploaded`` record for a file called ``name`` stored at ``ref`` (vendor and SKU come
    from a ``vendor/sku/file`` path)."""
    vendor, sku = vendor_sku(name)
    event = UploadedEvent(
        id=image_id,
        source=source,
        subject=image_id,
        time=datetime.now(UTC),
        data=UploadedData(image=ref, vendor_id=vendor, sku=sku, operations=ops),
    )
    return Message(
        topics.name(Topic.UPLOADED),
        image_id,
        event.model_dump_json().encode(),
        (("content-type", b"application/cloudevents+json"),),
    )


def safe_name(name: str) -> str:
    """A file name safe inside an object key (letters, digits, ".", "_", "-")."""
    base = _UNSAFE.sub("_", Path(name).name).strip("._") or "file"
    return base[:100]


async def run_embedded(
    files: Sequence[InputFile],
    out: Path,
    settings: Settings,
    *,
    operations: Operations | None = None,
    on_terminal: Callable[[str, str], None] | None = None,
) -> EmbeddedRun:
    """Run the whole pipeline over ``files``; outputs go under ``out``.

    ``on_terminal(input_name, status)`` is called as each file reaches its terminal topic.
    """
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    store = FilesystemStore(out / "store")
    transport = MemoryTransport()
    topics = TopicNames(settings.topic_prefix)
    ops = operations or Operations()
    by_id: dict[str, InputFile] = {}
    uploads: list[Message] = []
    for item in files:
        data = item.path.read_bytes()
        image_id = image_id_for(item.name, data)
        by_id[image_id] = item
        ref = ImageRef(bucket=settings.upload_bucket,
                       key=f"embedded/{image_id}/{safe_name(item.name)}")
        store.put(ref, data, "application/octet-stream")
        uploads.append(
            uploaded_message(topics, image_id, ref, item.name, ops, "pixelgate/embedded")
        )
    await transport.publish(uploads)

    stop = asyncio.Event()
    # The same gates and circuit breaker as the Kafka workers: the feed reads the in-memory
    # metrics topic and publishes transitions on the in-memory breaker topic.
    feed = BreakerFeed(settings.breakers, transport=transport, topics=topics,
                       group="pixelgate-breaker",
                       source="pixelgate/embedded")
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="pixelgate") as executor:
        runners = [
            StageRunner(
                stage,
                transport=transport,
                store=store,
                topics=topics,
                group=f"pixelgate-{stage.name}",
                knobs=settings.knobs(stage.name),
                executor=executor,
            )
            for stage in build_stages(settings, board=feed.board)
        ]
        tasks = [asyncio.create_task(r.run(stop), name=r.stage.name) for r in runners]
        tasks.append(asyncio.create_task(feed.run(stop), name="breaker"))
        terminal = await _await_terminal(transport, topics, set(by_id), by_id, tasks, on_terminal)
        stop.set()
        await asyncio.gather(*tasks)
    images = out / "images"
    if images.is_dir():
        shutil.rmtree(images)  # ours: rebuilt on every run so reruns are comparable
    used: set[Path] = set()
    ordered = sorted(terminal.items(), key=lambda pair: by_id[pair[0]].name)
    keys = (settings.output_bucket, settings.output_prefix.strip("/"))
    rows = [_row(by_id[i], rec, topics, store, out, used, keys) for i, rec in ordered]
    rows.sort(key=lambda r: str(r.record["input"]))
    transitions = [_transition(t) for t in feed.transitions]
    return EmbeddedRun(rows, time.perf_counter() - started, transport, transitions)


def _transition(transition: Transition) -> BreakerTransition:
    stage, vendor = transition.scope
    rate = transition.snapshot.failure_rate
    return BreakerTransition(
        stage=stage,
        vendor=vendor,
        from_state=str(transition.from_state),
        to_state=str(transition.to_state),
        at=datetime.fromtimestamp(transition.at, UTC).isoformat(timespec="seconds"),
        failure_rate=rate / 100.0 if rate >= 0 else None,
        reason=transition.reason,
    )


def vendor_sku(name: str) -> tuple[str, str]:
    """Vendor and SKU from a ``vendor/sku/file`` layout, else placeholders."""
    parts = [_UNSAFE.sub("_", p).strip("._-")[:128] or "x" for p in Path(name).parts[:-1]]
    vendor = parts[0] if parts else "local"
    sku = parts[1] if len(parts) > 1 else Path(name).stem
    sku = _UNSAFE.sub("_", sku).strip("._-")[:128] or "unknown"
    return vendor, sku


async def _await_terminal(
    transport: MemoryTransport,
    topics: TopicNames,
    pending: set[str],
    by_id: dict[str, InputFile],
    tasks: list[asyncio.Task[None]],
    on_terminal: Callable[[str, str], None] | None,
) -> dict[str, Record]:
    """Collect the first terminal record of every image id; fail fast if a runner dies."""
    consumer = transport.consumer("pixelgate-embedded-report", [topics.name(t) for t in TERMINAL])
    seen: dict[str, Record] = {}
    try:
        while pending:
            crashed = [t for t in tasks if t.done()]
            for task in crashed:
                task.result()  # re-raises the runner's exception
            if crashed:
                raise RuntimeError(f"stage runner {crashed[0].get_name()} stopped early")
            for record in await consumer.poll(256, 100):
                key = record.key or ""
                if key in pending:
                    pending.discard(key)
                    seen[key] = record
                    if on_terminal is not None:
                        status = _STATUS[topics.topic(record.topic)]
                        on_terminal(by_id[key].name, status)
                await consumer.commit([record])
    finally:
        await consumer.close()
    return seen


def _row(
    item: InputFile,
    record: Record,
    topics: TopicNames,
    store: FilesystemStore,
    out: Path,
    used: set[Path],
    keys: tuple[str, str],
) -> ReportRow:
    topic = topics.topic(record.topic)
    status = _STATUS[topic]
    reasons: list[dict[str, Any]] = []
    route: dict[str, Any] = {}
    metrics: dict[str, Any] = {}
    timings: dict[str, Any] = {}
    output = None
    before = after = mask = candidate = None
    if topic is Topic.DLQ:
        headers = dict(record.headers)
        error = headers.get("error-class", b"").decode()
        code = {"PoisonRecordError": ReasonCode.INVALID_EVENT,
                "SourceMissingError": ReasonCode.SOURCE_MISSING}.get(
            error, ReasonCode.PROCESSING_FAILED)
        message = headers.get("error-message", b"").decode("utf-8", "replace")
        reasons = [{"code": code.value, "text": code.text, "detail": f"{error}: {message}"}]
    else:
        event = orjson.loads(record.value)
        data: ResultData | RejectedData | ReviewData
        if topic is Topic.RESULTS:
            data = ResultData.model_validate(event["data"])
        elif topic is Topic.REJECTED:
            data = RejectedData.model_validate(event["data"])
        else:
            data = ReviewData.model_validate(event["data"])
        trail = data.trail
        route = trail.route.model_dump(mode="json") if trail.route else {}
        metrics = dict(trail.metrics)
        timings = dict(trail.timings_ms)
        if isinstance(data, RejectedData | ReviewData):
            reasons = [r.model_dump(mode="json") for r in data.reasons]
        before = _existing(
            store, ImageRef(bucket=keys[0], key=f"{keys[1]}/{record.key}/preflight.png")
        )
        if isinstance(data, ResultData):
            final = store.path(data.image)
            output_path = _export(final, item.name, out, used)
            output = output_path.relative_to(out).as_posix()
            after = output_path
            mask = store.path(data.mask) if data.mask else None
        elif isinstance(data, ReviewData):
            candidate = store.path(data.candidate) if data.candidate else None
            mask = store.path(data.mask) if data.mask else None
    record_out = {
        "input": item.name,
        "status": status,
        "reasons": reasons,
        "route": route,
        "output": output,
        "metrics": metrics,
        "timings_ms": timings,
    }
    return ReportRow(record=record_out, before=before, after=after, mask=mask,
                     candidate=candidate)


def _existing(store: FilesystemStore, ref: ImageRef | None) -> Path | None:
    if ref is None:
        return None
    path = store.path(ref)
    return path if path.is_file() else None


def _export(final: Path, name: str, out: Path, used: set[Path]) -> Path:
    """Copy the final image to ``out/images/<name with .png>``, keeping names unique."""
    target = out / "images" / Path(name).with_suffix(".png")
    if target in used:
        target = out / "images" / f"{name}.png"
    used.add(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(final, target)
    return target
