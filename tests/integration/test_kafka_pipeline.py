"""Every stage over Kafka (Tansu) + S3 (SeaweedFS), both real servers started by the session."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers.dev.sample import generate_sample
from consumers.kafka import KafkaTransport
from consumers.runner import TopicNames
from consumers.s3 import S3Store
from consumers.settings import BatchKnobs, Settings
from consumers.uploads import collect_inputs
from consumers.worker import prepare, run_worker, submit_files
from schemas.events import ImageRef, Operations, Topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TERMINAL = (Topic.RESULTS, Topic.REJECTED, Topic.REVIEW, Topic.DLQ)


@pytest.fixture
def kafka_settings(dev_stack) -> Settings:
    return dev_stack.settings(
        topic_prefix=f"t{uuid.uuid4().hex[:8]}.",  # a fresh set of topics and groups per test
        http_port=0,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        batch=BatchKnobs(max_batch=4, max_wait_ms=100),
    )


async def collect(
    consumer: AIOKafkaConsumer, expected: set[str], timeout: float
) -> dict[str, list]:
    """Every terminal record per image id (``consumer``: an observer of the terminal topics),
    until each expected id has one (or timeout)."""
    await consumer.start()
    seen: dict[str, list] = {}
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while not expected <= set(seen) and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for messages in batches.values():
                for m in messages:
                    seen.setdefault(m.key.decode(), []).append(m)
        await asyncio.sleep(1.0)  # anything extra (a second terminal) would arrive now
        for messages in (await consumer.getmany(timeout_ms=1000)).values():
            for m in messages:
                seen.setdefault(m.key.decode(), []).append(m)
    finally:
        await consumer.stop()
    return seen


async def test_every_stage_end_to_end_over_kafka_and_s3(
    tmp_path: Path, kafka_settings, observer_factory
):
    items = generate_sample(tmp_path / "sample", 12, seed=5)
    files = collect_inputs(tmp_path / "sample" / "upload")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(kafka_settings, ["all"], stop, handle_signals=False))
    try:
        submitted = await submit_files(files, kafka_settings, Operations(upscale_to=1000))
        ids = {image_id for _, image_id in submitted}
        seen = await collect(observer_factory(kafka_settings, TERMINAL), ids, timeout=240)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    assert set(seen) == ids
    store = S3Store(kafka_settings)
    by_name = dict(submitted)
    expected = {i.file: i for i in items}
    for name, image_id in by_name.items():
        records = seen[image_id]
        topics = {m.topic.removeprefix(kafka_settings.topic_prefix) for m in records}
        assert len(topics) == 1, (name, topics)  # exactly one terminal topic
        (topic,) = topics
        if expected[name].expected_status == "rejected":
            assert topic == "rejected", name
            event = json.loads(records[0].value)
            assert expected[name].expected_reason in [r["code"] for r in event["data"]["reasons"]]
        else:
            assert topic in {"results", "review"}, (name, topic)
        if topic == "results":
            ref = ImageRef.model_validate(json.loads(records[0].value)["data"]["image"])
            assert store.exists(ref)
            assert store.get(ref)[:8] == b"\x89PNG\r\n\x1a\n"


def _uploaded(settings: Settings, image_id: str, **image) -> bytes:
    return json.dumps(
        {
            "specversion": "1.0",
            "id": image_id,
            "source": "test",
            "type": "pixelgate.uploaded.v1",
            "subject": image_id,
            "data": {
                "image": image or {"bucket": settings.upload_bucket, "key": "k.jpg"},
                "vendor_id": "v1",
                "sku": "s1",
            },
        }
    ).encode()


async def test_poison_records_go_to_dlq_and_good_ones_keep_flowing(
    tmp_path, kafka_settings, observer_factory
):
    settings = kafka_settings
    topics = TopicNames(settings.topic_prefix)
    generate_sample(tmp_path / "s", 1, seed=1)
    files = collect_inputs(tmp_path / "s" / "upload")
    bucket = settings.upload_bucket
    poison = {
        "invalid-json": b"{not json",
        "schema": _uploaded(settings, "schema", bucket=bucket),  # image without a key
        "missing-object": _uploaded(settings, "missing", bucket=bucket, key="nope/none.jpg"),
        "dotdot-key": _uploaded(settings, "dotdot", bucket=bucket, key="a/../../etc/passwd"),
        "leading-slash": _uploaded(settings, "slash", bucket=bucket, key="/etc/passwd"),
    }
    transport = KafkaTransport(settings)
    await prepare(settings, transport, S3Store(settings))  # topics exist before we produce
    await transport.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=False
    )
    await producer.start()
    try:
        for key, value in poison.items():
            await producer.send_and_wait(
                topics.name(Topic.UPLOADED), value, key=key.encode(), partition=0
            )
    finally:
        await producer.stop()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, ["all"], stop, handle_signals=False))
    try:
        submitted = await submit_files(files, settings, Operations())
        good_id = submitted[0][1]
        seen = await collect(observer_factory(settings, TERMINAL), set(poison) | {good_id},
                             timeout=120)
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    for key, value in poison.items():
        assert key in seen, key
        (record,) = seen[key]
        assert record.topic == topics.name(Topic.DLQ), key
        assert record.value == value  # original bytes intact
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["source-topic"] == topics.name(Topic.UPLOADED)
        assert headers["source-partition"] == "0"
        assert int(headers["source-offset"]) >= 0
        assert headers["consumer-group"] == f"{settings.topic_prefix}preflight"
        assert headers["error-class"] in {"PoisonRecordError", "SourceMissingError"}
        assert headers["error-message"]
    assert [r.topic for r in seen[good_id]] != [topics.name(Topic.DLQ)]
