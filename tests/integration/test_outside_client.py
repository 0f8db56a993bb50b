"""An outside client that speaks only the documented contract gets the same guarantees.

It uses its own aiokafka producer and minio uploads, configured only from the `PIXELGATE_*`
lines that `pixelgate dev up` prints (here: the same mapping, via `pixelgate_env`).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid
from urllib.parse import urlparse

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from minio import Minio
from PIL import Image
from skimage import data

from consumers.settings import load_settings
from consumers.worker import run_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((900, 600)).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


async def _wait_for_topic(bootstrap: str, topic: str, timeout: float = 60.0) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while topic not in await admin.list_topics():
            assert asyncio.get_running_loop().time() < deadline, f"{topic} never created"
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def test_outside_client_gets_results_and_identical_duplicates(pixelgate_env, monkeypatch):
    prefix = f"o{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("PIXELGATE_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("PIXELGATE_HTTP_PORT", "0")
    monkeypatch.setenv("PIXELGATE_KAFKA_SESSION_TIMEOUT_MS", "6000")
    monkeypatch.setenv("PIXELGATE_KAFKA_HEARTBEAT_INTERVAL_MS", "1000")
    settings = load_settings()
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, ["all"], stop, handle_signals=False))

    # --- the outside client: only env vars, its own clients, the documented event ---------
    endpoint = urlparse(os.environ["PIXELGATE_S3_ENDPOINT"])
    s3 = Minio(endpoint.netloc, access_key=os.environ["PIXELGATE_S3_ACCESS_KEY"],
               secret_key=os.environ["PIXELGATE_S3_SECRET_KEY"],
               region=os.environ["PIXELGATE_S3_REGION"], secure=False)
    bucket = os.environ["PIXELGATE_UPLOAD_BUCKET"]
    if not s3.bucket_exists(bucket):
        s3.make_bucket(bucket)
    body = _jpeg()
    key = "vendor42/sku123/front.jpg"
    s3.put_object(bucket, key, io.BytesIO(body), len(body), content_type="image/jpeg")
    image_id = str(uuid.uuid4())
    event = {
        "specversion": "1.0", "id": image_id, "source": "marketplace/uploads",
        "type": "pixelgate.uploaded.v1", "subject": image_id, "time": "2026-03-15T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"image": {"bucket": bucket, "key": key}, "vendor_id": "vendor42",
                 "sku": "sku123",
                 "operations": {"remove_text": "auto", "object_mask": None, "upscale_to": 1200}},
    }
    bootstrap = os.environ["PIXELGATE_KAFKA_BOOTSTRAP_SERVERS"]
    results = []
    try:
        await _wait_for_topic(bootstrap, f"{prefix}uploaded")  # the workers create the topics
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all",
                                    enable_idempotence=False)
        await producer.start()
        try:
            value = json.dumps(event).encode()
            for _ in range(2):  # the marketplace retries: a duplicate upload event
                await producer.send_and_wait(f"{prefix}uploaded", value, key=image_id.encode())
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            f"{prefix}results", f"{prefix}rejected", f"{prefix}review", f"{prefix}dlq",
            bootstrap_servers=os.environ["PIXELGATE_KAFKA_BOOTSTRAP_SERVERS"],
            group_id="downstream", auto_offset_reset="earliest", enable_auto_commit=False,
            session_timeout_ms=6000, heartbeat_interval_ms=1000)
        await consumer.start()
        try:
            deadline = asyncio.get_running_loop().time() + 120
            while len(results) < 2 and asyncio.get_running_loop().time() < deadline:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    results.extend(messages)
        finally:
            await consumer.stop()
    finally:
        stop.set()
        await asyncio.wait_for(worker, 60)
    assert [m.topic for m in results] == [f"{prefix}results"] * 2, [m.topic for m in results]
    events = [json.loads(m.value) for m in results]
    assert all(m.key.decode() == image_id for m in results)
    assert events[0]["id"] == events[1]["id"]  # the duplicate is recognisable
    for e in events:  # only wall-clock figures may differ between a record and its replay
        del e["data"]["trail"]["timings_ms"]
    assert events[0]["data"] == events[1]["data"]
    final = events[0]["data"]["image"]
    response = s3.get_object(final["bucket"], final["key"])
    try:
        png = response.read()
    finally:
        response.close()
        response.release_conn()
    with Image.open(io.BytesIO(png)) as out:
        assert max(out.size) == 1200
        assert out.mode == "RGB"
