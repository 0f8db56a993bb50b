"""The bad-model scenario on real servers (Tansu + SeaweedFS), as docs/operations.md tells a user
to reproduce it: deploy a TorchScript inpainting model that returns noise, watch the breaker
open, restore the good model, watch the half-open trials close it. Two replicas of the inpaint
stage run throughout and must agree on every transition."""

from __future__ import annotations

import asyncio
import io
import uuid
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch
from aiokafka import AIOKafkaConsumer
from PIL import Image, ImageDraw

from consumers.breaker import BreakerPolicy, BreakerState
from consumers.kafka import KafkaTransport
from consumers.runner import TopicNames
from consumers.s3 import S3Store
from consumers.settings import BatchKnobs, Settings
from consumers.uploads import uploaded_message
from consumers.worker import prepare, read_breaker_states, run_worker, send_breaker_command
from schemas.events import ImageRef, Operations, Topic

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POLICY = BreakerPolicy(window="count", window_size=6, minimum_calls=4,
                       failure_rate_threshold=50.0, wait_in_open_s=8.0, half_open_permits=2)
REPLICAS = 2
MAX_BATCH = 2


class NoiseFill(torch.nn.Module):
    """The bad deployment: uniform noise wherever it is asked to fill."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(image)


def noise_model(path: Path) -> Path:
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; users still ship it
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(NoiseFill()).save(str(path))
    return path


def product_photo(seed: int) -> bytes:
    """A 480x480 packshot: gradient backdrop, a sharp-edged product, grain."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:480, 0:480].astype(np.float32) / 479.0
    base = 170 + 50 * (0.7 * x + 0.3 * y)
    rgb = np.stack([base, base * 0.97, base * 0.93], axis=-1)
    image = Image.fromarray(np.clip(rgb + rng.normal(0, 1.5, rgb.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    colour = tuple(int(c) for c in rng.integers(20, 140, 3))
    draw.rounded_rectangle((250, 120, 420, 400), radius=18, fill=colour)
    draw.ellipse((290, 170, 380, 260), fill=(240, 240, 235))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def object_mask() -> bytes:
    """The caller's mask: a sticker-sized blob on the plain backdrop."""
    mask = Image.new("L", (480, 480), 0)
    ImageDraw.Draw(mask).ellipse((60, 300, 170, 380), fill=255)
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    return buffer.getvalue()


async def submit(settings: Settings, names: list[str]) -> set[str]:
    """Upload a photo and an object mask per name and publish its ``uploaded`` event."""
    topics = TopicNames(settings.topic_prefix)
    store = S3Store(settings)
    transport = KafkaTransport(settings, client_id="test-submit")
    loop = asyncio.get_running_loop()
    try:
        messages = []
        for index, name in enumerate(names):
            image_id = str(uuid.uuid4())
            ref = ImageRef(bucket=settings.upload_bucket, key=f"v1/{name}/{image_id}.png")
            mask = ImageRef(bucket=settings.upload_bucket, key=f"v1/{name}/{image_id}-mask.png")
            await loop.run_in_executor(None, store.put, ref, product_photo(index), "image/png")
            await loop.run_in_executor(None, store.put, mask, object_mask(), "image/png")
            ops = Operations(remove_text="off", object_mask=mask)
            messages.append(uploaded_message(topics, image_id, ref, f"v1/{name}/photo.png", ops,
                                             "test/bad-model"))
        await transport.publish(messages)
    finally:
        await transport.close()
    return {m.key for m in messages}


async def read(consumer: AIOKafkaConsumer, until, timeout: float) -> list[Any]:
    """Every record ``consumer`` (an observer from the start) gets, until ``until(records)``
    holds (then one more second for stragglers) or ``timeout``."""
    await consumer.start()
    records: list[Any] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not until(records) and loop.time() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        for batch in (await consumer.getmany(timeout_ms=1000)).values():
            records.extend(batch)
    finally:
        await consumer.stop()
    return records


def terminal_of(records: list[Any], ids: set[str]) -> dict[str, tuple[str, dict]]:
    out = {}
    for record in records:
        key = record.key.decode()
        if key in ids and key not in out:
            out[key] = (record.topic.rsplit(".", 1)[-1], orjson.loads(record.value)["data"])
    return out


def transitions_by_replica(records: list[Any]) -> dict[str, list[tuple[str, str, str]]]:
    replicas: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for record in records:
        event = orjson.loads(record.value)
        if event["type"] == "pixelgate.breaker.v1":
            data = event["data"]
            replicas[event["source"]].append((event["id"], data["from_state"], data["to_state"]))
    return dict(replicas)


class Replicas:
    """Workers started and stopped like pods: one for the other stages, N for inpaint."""

    def __init__(self) -> None:
        self.running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(self, settings: Settings, stages: list[str]) -> asyncio.Event:
        stop = asyncio.Event()
        task = asyncio.create_task(run_worker(settings, stages, stop, handle_signals=False))
        self.running.append((stop, task))
        return stop

    async def stop(self, which: list[asyncio.Event] | None = None) -> None:
        for stop, task in list(self.running):
            if which is None or stop in which:
                stop.set()
                await asyncio.wait_for(task, 60)
                self.running.remove((stop, task))


async def test_bad_model_opens_the_breaker_and_the_restored_model_closes_it(
    dev_stack, tmp_path, observer_factory
):
    good = dev_stack.settings(
        topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
        http_port=0,
        kafka_session_timeout_ms=6000,
        kafka_heartbeat_interval_ms=1000,
        kafka_join_timeout_ms=60_000,  # batches here take seconds: a join stuck longer restarts
        batch=BatchKnobs(max_batch=MAX_BATCH, max_wait_ms=100),
        breakers={"inpaint": POLICY},
        inpaint_method="patch",  # the default deployment: what "restoring" goes back to
    )
    bad = good.model_copy(update={"inpaint_method": "torchscript",
                                  "inpaint_model": noise_model(tmp_path / "noise.pt")})
    transport = KafkaTransport(good, client_id="test-prepare")
    try:
        await prepare(good, transport, S3Store(good))
    finally:
        await transport.close()

    pods = Replicas()
    try:
        pods.start(good, ["preflight", "route", "finalize"])
        bad_pods = [pods.start(bad, ["inpaint"]) for _ in range(REPLICAS)]

        # 1. The bad model is deployed: the breaker opens, nothing bad reaches results.
        first = await submit(bad, [f"sku{i}" for i in range(10)])
        terminal = [Topic.RESULTS, Topic.REVIEW, Topic.REJECTED, Topic.DLQ]
        records = await read(observer_factory(good, terminal),
                             lambda rs: first <= {r.key.decode() for r in rs}, timeout=240)
        outcome = terminal_of(records, first)
        assert set(outcome) == first
        assert {topic for topic, _ in outcome.values()} == {"review"}
        codes = [r["code"] for _, data in outcome.values() for r in data["reasons"]]
        assert "BREAKER_OPEN" in codes
        # Edited-and-failed items: the window that opened it plus what was in flight.
        metrics = await read(observer_factory(good, [Topic.METRICS]), lambda rs: False, timeout=3)
        inpaint = [orjson.loads(m.value)["data"] for m in metrics]
        failed = [m for m in inpaint if m["stage"] == "inpaint" and m["outcome"] == "fail"]
        assert len(failed) <= POLICY.minimum_calls + 2 * REPLICAS * MAX_BATCH
        for _, data in outcome.values():
            if data["candidate"] is not None:  # edited, then refused by its gate
                assert data["figures"], "a gated review item carries its figures"
        await pods.stop(bad_pods)

        # 2. Restore the good model (new pods); after the wait, trials pass and it closes. The
        # items beyond each replica's trials wait for their verdict: every one reaches results.
        for _ in range(REPLICAS):
            pods.start(good, ["inpaint"])
        await asyncio.sleep(POLICY.wait_in_open_s)
        recovery = await submit(good, [f"recovery{i}" for i in range(6)])
        records = await read(observer_factory(good, terminal),
                             lambda rs: recovery <= {r.key.decode() for r in rs}, timeout=240)
        done = terminal_of(records, recovery)
        assert recovery <= set(done), f"{len(recovery - set(done))} of 6 never finished"
        assert {topic for topic, _ in done.values()} == {"results"}, [
            data.get("reasons") for topic, data in done.values() if topic != "results"
        ]
    finally:
        await pods.stop()

    # 3. Every replica computed and published the same transitions (same ids, same order).
    log = await read(observer_factory(good, [Topic.BREAKER]), lambda rs: False, timeout=3)
    replicas = transitions_by_replica(log)
    assert len(replicas) == 2 * REPLICAS
    first_pair, second_pair = list(replicas.values())[:2], list(replicas.values())[2:]
    # The bad pods were stopped around the end of the open wait: compare what both published.
    common = min(len(first_pair[0]), len(first_pair[1]))
    assert common >= 1
    assert first_pair[0][:common] == first_pair[1][:common]
    assert first_pair[0][0][1:] == ("CLOSED", "OPEN")
    assert second_pair[0] == second_pair[1]
    # The new pods start from the latest transition on `breaker`: they publish what follows it,
    # under the ids the bad pods gave the same transitions.
    assert [t[1:] for t in second_pair[0]] in (
        [("OPEN", "HALF_OPEN"), ("HALF_OPEN", "CLOSED")], [("HALF_OPEN", "CLOSED")]
    )
    ids = {t[1:]: t[0] for t in first_pair[0]}
    assert all(ids.get(t[1:], t[0]) == t[0] for t in second_pair[0])

    # 4. What `pixelgate breaker status` shows, and an operator forcing it open.
    status = await read_breaker_states(good)
    assert status.board.state("inpaint") is BreakerState.CLOSED
    assert [(t.from_state, t.to_state) for t in status.transitions][-1] == (
        BreakerState.HALF_OPEN, BreakerState.CLOSED
    )
    await send_breaker_command(good, "inpaint", "force_open", reason="INC-123")
    status = await read_breaker_states(good)
    assert status.board.state("inpaint") is BreakerState.FORCED_OPEN
