"""The stage runner over the in-memory transport: batching, ordering, dead letters, retries."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import structlog
from pydantic import BaseModel
from structlog.testing import capture_logs

from consumers.errors import PoisonRecordError, StoreUnavailableError
from consumers.runner import Loaded, Output, StageRunner, TopicNames, backoff_delays
from consumers.settings import BatchKnobs
from consumers.store import FilesystemStore
from consumers.transport import MemoryTransport, Message, poll_or_stop
from schemas.events import CloudEvent, ImageRef, Topic

TOPICS = TopicNames("t.")


class Note(BaseModel):
    n: int
    fail: bool = False


class EchoStage:
    """uploaded -> results, writing one object per item; raises on items marked fail."""

    name = "echo"
    consumes = (Topic.UPLOADED,)

    def __init__(self) -> None:
        self.batches: list[int] = []

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        try:
            raw = json.loads(value)
            note = Note.model_validate(raw)
        except (ValueError, TypeError) as exc:
            raise PoisonRecordError(str(exc)) from None
        if note.n < 0:
            return None  # meant for another stage
        return CloudEvent[Note](
            id=str(note.n), source="test", type="pixelgate.uploaded.v1", subject=f"img{note.n}",
            data=note,
        )

    def load(self, event: CloudEvent[Any], store: Any) -> int:
        return int(event.data.n)

    def process(self, items: Sequence[Loaded[int]]) -> list[Output]:
        self.batches.append(len(items))
        if any(item.event.data.fail for item in items):
            raise ValueError("model exploded")
        return [
            Output(
                outcome="pass",
                objects=((ImageRef(bucket="out", key=f"x/{it.payload}.bin"), b"%d" % it.payload,
                          "application/octet-stream"),),
                events=((Topic.RESULTS, it.event),),
            )
            for it in items
        ]


async def _publish(transport: MemoryTransport, values: list[bytes]) -> None:
    await transport.publish(
        [Message(TOPICS.name(Topic.UPLOADED), f"k{i}", v) for i, v in enumerate(values)]
    )


async def _drain(runner: StageRunner, transport: MemoryTransport, expect: int) -> None:
    """Run until `expect` records are committed, then stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(500):
        if transport.committed(runner.group, TOPICS.name(Topic.UPLOADED)) >= expect:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)


def _runner(stage, transport, store, max_batch=4) -> StageRunner:
    return StageRunner(stage, transport=transport, store=store, topics=TOPICS, group="g",
                       knobs=BatchKnobs(max_batch=max_batch, max_wait_ms=20), retry_cap_s=0.01)


async def test_good_records_flow_and_batches_respect_max_batch(tmp_path: Path):
    transport, stage = MemoryTransport(), EchoStage()
    await _publish(transport, [json.dumps({"n": i}).encode() for i in range(10)])
    await _drain(_runner(stage, transport, FilesystemStore(tmp_path)), transport, 10)
    assert len(transport.records(TOPICS.name(Topic.RESULTS))) == 10
    assert max(stage.batches) <= 4
    assert sum(stage.batches) == 10
    assert (tmp_path / "out" / "x" / "7.bin").read_bytes() == b"7"


async def test_poison_goes_to_dlq_with_bytes_and_headers_and_does_not_block(tmp_path: Path):
    transport = MemoryTransport()
    poison = b"\xff{not json"
    good = [json.dumps({"n": n}).encode() for n in (1, 2)]
    await _publish(transport, [good[0], poison, good[1]])
    await _drain(_runner(EchoStage(), transport, FilesystemStore(tmp_path)), transport, 3)
    dlq = transport.records(TOPICS.name(Topic.DLQ))
    assert [r.value for r in dlq] == [poison]
    headers = dict(dlq[0].headers)
    assert headers["source-topic"] == b"t.uploaded"
    assert headers["source-offset"] == b"1"
    assert headers["consumer-group"] == b"g"
    assert headers["error-class"] == b"PoisonRecordError"
    assert len(transport.records(TOPICS.name(Topic.RESULTS))) == 2


async def test_failing_item_is_isolated_from_its_batch(tmp_path: Path):
    transport = MemoryTransport()
    values = [json.dumps({"n": i, "fail": i == 2}).encode() for i in range(4)]
    await _publish(transport, values)
    await _drain(_runner(EchoStage(), transport, FilesystemStore(tmp_path)), transport, 4)
    results = transport.records(TOPICS.name(Topic.RESULTS))
    assert sorted(r.key for r in results) == ["img0", "img1", "img3"]
    dlq = transport.records(TOPICS.name(Topic.DLQ))
    assert [r.value for r in dlq] == [values[2]]
    assert dict(dlq[0].headers)["error-class"] == b"ValueError"


async def test_records_for_other_stages_are_skipped_and_committed(tmp_path: Path):
    transport, stage = MemoryTransport(), EchoStage()
    await _publish(transport, [json.dumps({"n": -1}).encode(), json.dumps({"n": 5}).encode()])
    await _drain(_runner(stage, transport, FilesystemStore(tmp_path)), transport, 2)
    assert [r.key for r in transport.records(TOPICS.name(Topic.RESULTS))] == ["img5"]
    assert transport.records(TOPICS.name(Topic.DLQ)) == []


class FlakyStore(FilesystemStore):
    def __init__(self, root: Path, failures: int, log: list[str]) -> None:
        super().__init__(root)
        self.failures = failures
        self.log = log

    def put(self, ref: ImageRef, data: bytes, content_type: str) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailableError("store down")
        self.log.append("put")
        super().put(ref, data, content_type)


class RecordingTransport(MemoryTransport):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log

    async def publish(self, messages):
        if any(m.topic.endswith("results") for m in messages):
            self.log.append("publish")
        await super().publish(messages)

    def _commit(self, group, topic, offset):
        self.log.append("commit")
        super()._commit(group, topic, offset)


async def test_store_outage_is_retried_and_commit_comes_after_store_and_publish(tmp_path: Path):
    log: list[str] = []
    transport = RecordingTransport(log)
    store = FlakyStore(tmp_path, failures=3, log=log)
    await _publish(transport, [json.dumps({"n": 1}).encode()])
    await _drain(_runner(EchoStage(), transport, store), transport, 1)
    assert log == ["put", "publish", "commit"]
    assert transport.records(TOPICS.name(Topic.DLQ)) == []


async def test_a_new_consumer_resumes_from_the_committed_offset():
    transport = MemoryTransport()
    await _publish(transport, [b"a", b"b", b"c"])
    first = transport.consumer("g", [TOPICS.name(Topic.UPLOADED)])
    got = await first.poll(2, 10)
    await first.commit(got)
    second = transport.consumer("g", [TOPICS.name(Topic.UPLOADED)])
    assert [r.value for r in await second.poll(10, 10)] == [b"c"]


async def test_poll_waits_at_most_max_wait():
    transport = MemoryTransport()
    consumer = transport.consumer("g", ["t.none"])
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await consumer.poll(8, 50) == []
    assert 0.04 <= loop.time() - start < 1.0


@pytest.mark.parametrize("attempts", [1, 5, 12])
def test_backoff_is_bounded(attempts):
    delays = backoff_delays(attempts, base=0.1, cap=2.0)
    assert len(delays) == attempts
    assert all(0 <= d <= 2.0 for d in delays)


class LosingStage(EchoStage):
    """Returns no output at all: the runner must not lose the items."""

    def process(self, items):
        return []


class OddError(Exception):
    """Not one of ours (like cv2.error): still isolated, never crashes the runner."""


class OddStage(EchoStage):
    def process(self, items):
        if any(item.event.data.fail for item in items):
            raise OddError("native library failure")
        return super().process(items)


async def test_a_stage_that_drops_items_sends_them_to_dlq(tmp_path: Path):
    transport = MemoryTransport()
    await _publish(transport, [json.dumps({"n": i}).encode() for i in range(3)])
    await _drain(_runner(LosingStage(), transport, FilesystemStore(tmp_path)), transport, 3)
    assert len(transport.records(TOPICS.name(Topic.DLQ))) == 3


async def test_foreign_exceptions_are_isolated_too(tmp_path: Path):
    transport = MemoryTransport()
    await _publish(transport, [json.dumps({"n": i, "fail": i == 0}).encode() for i in range(3)])
    await _drain(_runner(OddStage(), transport, FilesystemStore(tmp_path)), transport, 3)
    assert len(transport.records(TOPICS.name(Topic.RESULTS))) == 2
    (dead,) = transport.records(TOPICS.name(Topic.DLQ))
    assert dict(dead.headers)["error-class"] == b"OddError"


async def test_every_record_log_line_carries_its_context(tmp_path: Path):
    transport = MemoryTransport()
    await _publish(transport, [json.dumps({"n": 1}).encode(), b"bad"])
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        await _drain(_runner(EchoStage(), transport, FilesystemStore(tmp_path)), transport, 2)
    per_record = [e for e in logs if e["event"] in {"item_done", "dead_lettered", "poison_record"}]
    assert {e["event"] for e in per_record} == {"item_done", "dead_lettered", "poison_record"}
    for entry in per_record:
        assert {"image_id", "stage", "topic", "partition", "offset"} <= set(entry), entry


class JoiningForever:
    """A consumer whose first poll never returns, as a group join the broker never completes."""

    def __init__(self) -> None:
        self.polling = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.closed = False

    async def poll(self, max_records: int, timeout_ms: int) -> list[Any]:
        self.polling.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return []

    async def commit(self, records: Sequence[Any]) -> None:
        raise AssertionError("nothing was polled, nothing to commit")

    async def close(self) -> None:
        self.closed = True


async def test_a_stop_cuts_short_a_poll_that_never_returns_and_the_consumer_is_closed(
    tmp_path: Path,
):
    runner = _runner(EchoStage(), MemoryTransport(), FilesystemStore(tmp_path))
    consumer, stop = JoiningForever(), asyncio.Event()
    task = asyncio.create_task(runner.run(stop, consumer))  # type: ignore[arg-type]
    await asyncio.wait_for(consumer.polling.wait(), 2.0)  # the stop comes during the poll
    assert not task.done()
    stop.set()
    await asyncio.wait_for(task, 2.0)  # the poll's own 20 ms, + 0.5 s, then cancelled
    assert consumer.cancelled.is_set()
    assert consumer.closed
    assert not runner.polled


async def test_a_poll_stopped_before_it_began_returns_none_and_loses_nothing():
    transport = MemoryTransport()
    await _publish(transport, [b"a", b"b"])
    stop = asyncio.Event()
    stop.set()
    first = transport.consumer("g", [TOPICS.name(Topic.UPLOADED)])
    assert await poll_or_stop(first, 10, 10, stop) is None  # stopped before it polled
    await first.close()
    second = transport.consumer("g", [TOPICS.name(Topic.UPLOADED)])
    got = await poll_or_stop(second, 10, 10, asyncio.Event())
    assert got is not None
    assert [r.value for r in got] == [b"a", b"b"]
