"""The local dev stack: real Tansu and SeaweedFS processes, started and stopped by DevStack."""

from __future__ import annotations

import asyncio
import io
import os
import re
import shlex
import socket
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import urllib3
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.group import LeaveGroupRequest
from minio import Minio

from consumers.dev.devstack import DevStack, DevStackConfig
from consumers.errors import ConfigError, StoreUnavailableError
from consumers.settings import load_settings

pytestmark = pytest.mark.integration

# Tansu holds a group's first JoinGroup for about session_timeout / 2: 6 s gives 3 s joins.
GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def _name(kind: str) -> str:
    return f"devstack-{kind}-{uuid.uuid4().hex[:8]}"


def _bootstrap(stack: DevStack) -> str:
    return stack.settings_env()["PIXELGATE_KAFKA_BOOTSTRAP_SERVERS"]


async def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, headers=[("trace", key)])
    finally:
        await producer.stop()


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        **GROUP_TIMEOUTS,
    )


async def _take(consumer: AIOKafkaConsumer, count: int, timeout: float = 20.0) -> list:
    records: list = []
    async with asyncio.timeout(timeout):
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=500)
            for partition_records in batch.values():
                records.extend(partition_records)
    return records


async def _leave_and_stop(consumer: AIOKafkaConsumer) -> None:
    """Stop, leaving the group even from Tansu's generation 0 (aiokafka skips that)."""
    coordinator = consumer._coordinator
    if coordinator is not None and coordinator.generation == 0 and coordinator.member_id:
        await coordinator._send_req(LeaveGroupRequest(coordinator.group_id, coordinator.member_id))
    await consumer.stop()


def _alive(pid: int) -> bool:
    """Not gone and not a zombie (a stopped child of this process may linger as one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in {"Z", "X"}


def _minio(env: dict[str, str], pool: urllib3.PoolManager) -> Minio:
    endpoint = urlsplit(env["PIXELGATE_S3_ENDPOINT"])
    return Minio(
        endpoint.netloc,
        access_key=env["PIXELGATE_S3_ACCESS_KEY"],
        secret_key=env["PIXELGATE_S3_SECRET_KEY"],
        region=env["PIXELGATE_S3_REGION"],
        secure=endpoint.scheme == "https",
        http_client=pool,
    )


def test_stack_is_up_running_and_ready(dev_stack):
    statuses = {s.name: s for s in dev_stack.status()}
    assert set(statuses) == {"broker", "store"}
    for status in statuses.values():
        assert status.running, status
        assert status.ready, status
        assert status.pid is not None
        assert status.log.is_file()
    assert statuses["broker"].address == f"127.0.0.1:{dev_stack.config.kafka_port}"
    assert statuses["store"].address == f"http://127.0.0.1:{dev_stack.config.s3_port}"


def test_up_again_is_a_no_op(dev_stack):
    before = {s.name: s.pid for s in dev_stack.status()}
    dev_stack.up(timeout=10)
    assert {s.name: s.pid for s in dev_stack.status()} == before


def test_object_round_trip_with_printed_settings(dev_stack):
    env = dev_stack.settings_env()
    pool = urllib3.PoolManager()
    try:
        client = _minio(env, pool)
        for bucket in ("uploads", "pixelgate", dev_stack.config.broker_bucket):
            assert client.bucket_exists(bucket), bucket
        bucket = _name("bucket")
        client.make_bucket(bucket)
        data = b"pixelgate \x00\xff" * 100
        client.put_object(bucket, "dir/hello.bin", io.BytesIO(data), len(data))
        response = client.get_object(bucket, "dir/hello.bin")
        try:
            assert response.read() == data
        finally:
            response.close()
            response.release_conn()
    finally:
        pool.clear()


async def test_kafka_round_trip_in_a_group_with_commit(dev_stack):
    bootstrap = _bootstrap(dev_stack)
    topic, group = _name("rt"), _name("group")
    await _create_topic(bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            topic, b"value-1", key=b"key-1", headers=[("content-type", b"image/png")]
        )
    finally:
        await producer.stop()
    assert sent.offset == 0
    consumer = _consumer(bootstrap, topic, group)
    try:
        async with asyncio.timeout(30):
            await consumer.start()
            (record,) = await _take(consumer, 1)
            await consumer.commit()
            committed = await consumer.committed(TopicPartition(topic, 0))
    finally:
        await _leave_and_stop(consumer)
    assert (record.key, record.value) == (b"key-1", b"value-1")
    assert list(record.headers) == [("content-type", b"image/png")]
    assert committed == 1


def test_export_lines_parse_back_to_the_env(dev_stack):
    lines = dev_stack.export_lines()
    parsed = {}
    for line in lines:
        assert re.fullmatch(r"export [A-Z][A-Z0-9_]*=\S+", line), line
        words = shlex.split(line)
        assert len(words) == 2
        assert words[0] == "export"
        name, _, value = words[1].partition("=")
        parsed[name] = value
    assert parsed == dev_stack.settings_env()
    assert parsed["PIXELGATE_OUTPUT_BUCKET"] == "pixelgate"


def test_pixelgate_env_points_settings_at_the_stack(pixelgate_env, dev_stack):
    settings = load_settings()
    assert settings.kafka_bootstrap_servers == f"127.0.0.1:{dev_stack.config.kafka_port}"
    assert settings.s3_endpoint == pixelgate_env["PIXELGATE_S3_ENDPOINT"]
    assert settings.s3_secret_key is not None
    assert settings.s3_secret_key.get_secret_value() == dev_stack.config.secret_key


async def test_broker_kill_and_restart_keeps_records_and_offsets(dev_stack):
    bootstrap = _bootstrap(dev_stack)
    topic, group = _name("restart"), _name("group")
    tp = TopicPartition(topic, 0)
    await _create_topic(bootstrap, topic)
    await _produce(bootstrap, topic, [(f"k{i}".encode(), f"v{i}".encode()) for i in range(5)])

    first = _consumer(bootstrap, topic, group)
    try:
        async with asyncio.timeout(30):
            await first.start()
            seen = await _take(first, 2)
            await first.commit({tp: 2})
    finally:
        await _leave_and_stop(first)
    assert [r.offset for r in seen[:2]] == [0, 1]

    old_pid = next(s.pid for s in dev_stack.status() if s.name == "broker")
    dev_stack.stop_service("broker", kill=True)
    assert not next(s.running for s in dev_stack.status() if s.name == "broker")
    await asyncio.to_thread(dev_stack.start_service, "broker", 30.0)
    broker = next(s for s in dev_stack.status() if s.name == "broker")
    assert broker.ready
    assert broker.pid != old_pid

    second = _consumer(bootstrap, topic, group)
    try:
        async with asyncio.timeout(30):
            await second.start()
            rest = await _take(second, 3)
            extra = await second.getmany(timeout_ms=1000)
    finally:
        await _leave_and_stop(second)
    assert [(r.offset, r.key, r.value) for r in rest] == [
        (i, f"k{i}".encode(), f"v{i}".encode()) for i in (2, 3, 4)
    ]
    assert [list(r.headers) for r in rest] == [[("trace", f"k{i}".encode())] for i in (2, 3, 4)]
    assert not any(extra.values())


def test_up_restarts_only_what_is_missing_and_down_works_from_another_process(
    dev_stack_factory,
):
    stack = dev_stack_factory()
    store_pid = next(s.pid for s in stack.status() if s.name == "store")
    stack.stop_service("broker")
    stack.up(timeout=30)
    statuses = {s.name: s for s in stack.status()}
    assert statuses["broker"].ready
    assert statuses["store"].pid == store_pid
    pids = [s.pid for s in statuses.values()]

    # A second DevStack on the same directory (as `pixelgate dev down` would build) finds the
    # servers through their pid files alone.
    other = DevStack(stack.config)
    other.down()
    statuses = list(stack.status())
    assert not any(s.running or s.ready for s in statuses)
    assert all(s.pid is None for s in statuses)
    assert not any(_alive(pid) for pid in pids)
    assert not list(stack.data_dir.glob("*.pid"))
    other.down()
    stack.down()
    assert not any(s.running for s in stack.status())


def test_down_never_signals_a_process_that_is_not_its_server(dev_config_factory):
    stack = DevStack(dev_config_factory())
    stack.data_dir.mkdir(parents=True, exist_ok=True)
    for name in ("broker", "store"):
        (stack.data_dir / f"{name}.pid").write_text(f"{os.getpid()}\n")
    assert not any(s.running for s in stack.status())
    stack.down()
    assert not list(stack.data_dir.glob("*.pid"))


def test_up_that_times_out_stops_what_it_started_and_shows_the_log(dev_config_factory):
    stack = DevStack(dev_config_factory())
    with pytest.raises(StoreUnavailableError, match=r"(?s)did not become ready.*last lines of"):
        stack.up(timeout=0.05)
    assert not any(s.running for s in stack.status())
    assert not list(stack.data_dir.glob("*.pid"))


def test_up_refuses_a_port_held_by_another_process(dev_config_factory):
    config = dev_config_factory()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        stack = DevStack(
            DevStackConfig(
                data_dir=config.data_dir,
                kafka_port=port,
                s3_port=config.s3_port,
                port_base=config.port_base,
            )
        )
        with pytest.raises(ConfigError, match=rf"kafka_port={port}.*in use"):
            stack.up(timeout=10)
    assert not list(stack.data_dir.glob("*.pid"))
    assert not any(s.running for s in stack.status())


def test_config_from_env_and_validation(monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELGATE_DEV_DIR", str(tmp_path))
    monkeypatch.setenv("PIXELGATE_DEV_KAFKA_PORT", "29100")
    monkeypatch.setenv("PIXELGATE_DEV_S3_PORT", "29101")
    monkeypatch.setenv("PIXELGATE_DEV_PORT_BASE", "20000")
    config = DevStackConfig.from_env()
    assert (config.data_dir, config.kafka_port, config.s3_port) == (tmp_path, 29100, 29101)
    assert config.ports()["weed_master"] == 20000
    assert config.ports()["weed_admin_grpc"] == 30007
    monkeypatch.setenv("PIXELGATE_DEV_KAFKA_PORT", "many")
    with pytest.raises(ConfigError, match="PIXELGATE_DEV_KAFKA_PORT"):
        DevStackConfig.from_env()
    with pytest.raises(ConfigError, match="overlap"):
        DevStackConfig(kafka_port=18401)
    with pytest.raises(ConfigError, match="outside"):
        DevStackConfig(port_base=60000)
    with pytest.raises(ConfigError, match="bucket"):
        DevStackConfig(buckets=("Bad_Bucket",))
