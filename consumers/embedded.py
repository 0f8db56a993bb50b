"""Embedded mode: every stage in one process, over the in-memory transport and a filesystem store.

It goes through the same :class:`~consumers.runner.StageRunner`, events and object keys as the
Kafka workers; only the transport and the store differ. ``run_embedded`` uploads the input
files into the store, publishes one ``uploaded`` event per file, runs all stages until every
image id has reached a terminal topic (``results``, ``rejected``, ``review`` or ``dlq``), and
returns one report row per input file.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from consumers.breaker import Transition
from consumers.breaker_feed import BreakerFeed
from consumers.errors import PixelgateError, PoisonRecordError, SourceMissingError
from consumers.keys import PREFLIGHT_IMAGE, ObjectKeys
from consumers.launch import running_stages
from consumers.report import BreakerTransition, ReportRow
from consumers.runner import TopicNames
from consumers.settings import Settings
from consumers.store import FilesystemStore
from consumers.transport import MemoryTransport, Message, Record
from consumers.uploads import (
    InputFile,
    image_id_for,
    safe_name,
    uploaded_message,
)
from schemas.events import (
    ImageRef,
    Operations,
    RejectedData,
    ResultData,
    ReviewData,
    Topic,
)
from schemas.reasons import ReasonCode

__all__ = [
    "TERMINAL",
    "EmbeddedRun",
    "run_embedded",
]

TERMINAL = (Topic.RESULTS, Topic.REJECTED, Topic.REVIEW, Topic.DLQ)
_STATUS = {Topic.RESULTS: "done", Topic.REVIEW: "review", Topic.REJECTED: "rejected",
           Topic.DLQ: "failed"}
_DEAD_LETTER_CODES: tuple[tuple[type[PixelgateError], ReasonCode], ...] = (
    (PoisonRecordError, ReasonCode.INVALID_EVENT),
    (SourceMissingError, ReasonCode.SOURCE_MISSING),
)
"""The reason a dead letter is reported with, by the type of the error that sent it there
(any other error: ``processing_failed``)."""


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
    with running_stages(settings, stop, transport=transport, store=store, topics=topics,
                        group_prefix="pixelgate-", board=feed.board) as running:
        tasks = list(running.tasks)
        tasks.append(asyncio.create_task(feed.run(stop), name="breaker"))
        terminal = await _await_terminal(transport, topics, set(by_id), by_id, tasks, on_terminal)
        stop.set()
        await asyncio.gather(*tasks)
    images = out / "images"
    if images.is_dir():
        shutil.rmtree(images)  # ours: rebuilt on every run so reruns are comparable
    used: set[Path] = set()
    ordered = sorted(terminal.items(), key=lambda pair: by_id[pair[0]].name)
    keys = ObjectKeys.from_settings(settings)
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


@dataclass(frozen=True)
class _Images:
    """The images on disk that illustrate a report row (see :class:`ReportRow`)."""

    before: Path | None = None
    after: Path | None = None
    mask: Path | None = None
    candidate: Path | None = None


def _row(
    item: InputFile,
    record: Record,
    topics: TopicNames,
    store: FilesystemStore,
    out: Path,
    used: set[Path],
    keys: ObjectKeys,
) -> ReportRow:
    """The report row of one input file, from its terminal record."""
    topic = topics.topic(record.topic)
    images = _Images()
    fields: dict[str, Any] = {"reasons": [], "route": {}, "output": None, "metrics": {},
                              "timings_ms": {}}
    if topic is Topic.DLQ:
        fields["reasons"] = _dead_letter_reasons(record)
    else:
        images, fields = _terminal_row(item, record, topic, store, out, used, keys)
    record_out = {"input": item.name, "status": _STATUS[topic], **fields}
    return ReportRow(record=record_out, before=images.before, after=images.after,
                     mask=images.mask, candidate=images.candidate)


def _dead_letter_reasons(record: Record) -> list[dict[str, Any]]:
    """The reason of a dead letter, from the error type its ``error-class`` header names."""
    headers = dict(record.headers)
    error = headers.get("error-class", b"").decode()
    kind = _error_types().get(error)
    code = next(
        (c for base, c in _DEAD_LETTER_CODES if kind is not None and issubclass(kind, base)),
        ReasonCode.PROCESSING_FAILED,
    )
    message = headers.get("error-message", b"").decode("utf-8", "replace")
    return [{"code": code.value, "text": code.text, "detail": f"{error}: {message}"}]


def _error_types() -> dict[str, type[PixelgateError]]:
    """Every class of the error tree, by name."""
    found: dict[str, type[PixelgateError]] = {}
    pending: list[type[PixelgateError]] = [PixelgateError]
    while pending:
        kind = pending.pop()
        found.setdefault(kind.__name__, kind)
        pending.extend(kind.__subclasses__())
    return found


def _terminal_row(
    item: InputFile,
    record: Record,
    topic: Topic,
    store: FilesystemStore,
    out: Path,
    used: set[Path],
    keys: ObjectKeys,
) -> tuple[_Images, dict[str, Any]]:
    """The images and the fields of a row that reached ``results``, ``rejected`` or ``review``
    (the final image exported under ``out``)."""
    event = orjson.loads(record.value)
    data: ResultData | RejectedData | ReviewData
    if topic is Topic.RESULTS:
        data = ResultData.model_validate(event["data"])
    elif topic is Topic.REJECTED:
        data = RejectedData.model_validate(event["data"])
    else:
        data = ReviewData.model_validate(event["data"])
    trail = data.trail
    fields: dict[str, Any] = {
        "reasons": [],
        "route": trail.route.model_dump(mode="json") if trail.route else {},
        "output": None,
        "metrics": dict(trail.metrics),
        "timings_ms": dict(trail.timings_ms),
    }
    if isinstance(data, RejectedData | ReviewData):
        fields["reasons"] = [r.model_dump(mode="json") for r in data.reasons]
    images = _Images(before=_existing(store, keys.ref(str(record.key), PREFLIGHT_IMAGE)))
    if isinstance(data, ResultData):
        after = _export(store.path(data.image), item.name, out, used)
        fields["output"] = after.relative_to(out).as_posix()
        mask = store.path(data.mask) if data.mask else None
        images = replace(images, after=after, mask=mask)
    elif isinstance(data, ReviewData):
        candidate = store.path(data.candidate) if data.candidate else None
        mask = store.path(data.mask) if data.mask else None
        images = replace(images, mask=mask, candidate=candidate)
    return images, fields


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
