"""Memory-safe batching: batches bounded by pixels, and out-of-memory survived (split in halves,
the tiled path, then review, never the dlq)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import REGISTRY
from skimage import data

from consumers.codec import encode_png
from consumers.dev.sample import generate_sample
from consumers.embedded import run_embedded
from consumers.oom import OomLadder, is_out_of_memory
from consumers.runner import Loaded, Output, StageRunner, TopicNames
from consumers.settings import BatchKnobs, Settings
from consumers.stages import UpscaleStage
from consumers.store import FilesystemStore
from consumers.transport import MemoryTransport, Message
from consumers.uploads import collect_inputs
from processors.removal import TextRemoval
from processors.upscale import Upscaler
from schemas.events import (
    CloudEvent,
    ImageRef,
    InpaintedData,
    ItemContext,
    Operations,
    Topic,
    Trail,
    UploadedData,
    UploadedEvent,
    event_type,
)

TOPICS = TopicNames("t.")

# The real exception types a processor raises when memory runs out, in turn.
_OOM_ERRORS: tuple[Callable[[], BaseException], ...] = (
    lambda: torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    MemoryError,
    lambda: RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 9 GB"),
    lambda: RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory"),
)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory"), True),
        (MemoryError(), True),
        (RuntimeError("CUDA error: out of memory"), True),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"), True),
        (RuntimeError("[ONNXRuntimeError] : 6 : Failed to allocate memory for requested"), True),
        (RuntimeError("std::bad_alloc"), True),
        (RuntimeError("shape '[1, 3]' is invalid for input of size 4"), False),
        (ValueError("out of memory"), False),  # only RuntimeError messages are read
        (KeyError("x"), False),
    ],
)
def test_out_of_memory_is_recognised_by_type_and_message(exc, expected):
    assert is_out_of_memory(exc) is expected


def test_an_oom_wrapped_in_another_error_is_recognised():
    outer = ValueError("decode failed")
    outer.__cause__ = MemoryError()
    assert is_out_of_memory(outer)
    assert not is_out_of_memory(ValueError("decode failed"))


class Budget:
    """A processor that runs out of memory above ``pixels`` per call (cycling the real types)."""

    def __init__(self, pixels: int) -> None:
        self.pixels = pixels
        self.calls: list[list[int]] = []

    def __call__(self, costs: Sequence[int]) -> list[str]:
        self.calls.append(list(costs))
        if sum(costs) > self.pixels:
            raise _OOM_ERRORS[len(self.calls) % len(_OOM_ERRORS)]()
        return [f"done {c}" for c in costs]


def test_the_ladder_splits_in_halves_then_tiles_then_gives_up():
    batch, tiled = Budget(200), Budget(300)
    splits: list[int] = []
    ladder = OomLadder(
        process=batch,
        tiled=lambda c: tiled([c])[0].replace("done", "tiled"),
        exhausted=lambda c, exc: f"exhausted {c} {type(exc).__name__}",
        on_split=splits.append,
    )
    out = ladder([100, 100, 100, 100, 250, 400])
    assert out[:5] == ["done 100"] * 4 + ["tiled 250"]
    assert out[5].startswith("exhausted 400 ")
    assert tiled.calls == [[250], [400]]
    assert splits == [6, 3, 3, 2]
    assert [c for c in batch.calls if len(c) == 1] == [[100], [100], [250], [400]]


def test_the_ladder_lets_other_errors_through():
    def broken(items: Sequence[int]) -> list[int]:
        raise ValueError("model exploded")

    ladder = OomLadder(process=broken, tiled=None, exhausted=lambda c, exc: c)
    with pytest.raises(ValueError, match="exploded"):
        ladder([1, 2])


class PixelStage:
    """uploaded -> results; its processor runs out of memory above ``budget`` pixels per call,
    its tiled path above ``tiled`` pixels. Each image's pixel count is its sku's number."""

    name = "pixels"
    consumes = (Topic.UPLOADED,)

    def __init__(self, budget: int, tiled: int) -> None:
        self.batch, self.tiled = Budget(budget), Budget(tiled)

    def parse(self, topic: Topic, value: bytes) -> CloudEvent[Any] | None:
        return UploadedEvent.model_validate_json(value)

    def load(self, event: CloudEvent[Any], store: Any) -> int:
        return int(event.data.sku.removeprefix("px"))

    def _outputs(self, items: Sequence[Loaded[int]], run: Budget, how: str) -> list[Output]:
        run([it.payload for it in items])
        return [Output(outcome=how, events=((Topic.RESULTS, it.event),)) for it in items]

    def process(self, items: Sequence[Loaded[int]]) -> list[Output]:
        return self._outputs(items, self.batch, "pass")

    def process_tiled(self, item: Loaded[int]) -> Output:
        return self._outputs([item], self.tiled, "tiled")[0]


def _upload(n: int, pixels: int) -> bytes:
    data = UploadedData(image=ImageRef(bucket="uploads", key=f"v/{n}.png"), vendor_id="v",
                        sku=f"px{pixels}")
    return UploadedEvent(id=f"img{n}", source="test", subject=f"img{n}", data=data).model_dump_json(
    ).encode()


async def _drain(runner: StageRunner, transport: MemoryTransport, topic: Topic, n: int) -> None:
    """Run until ``n`` records of ``topic`` are committed, then stop."""
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(1000):
        if transport.committed(runner.group, TOPICS.name(topic)) >= n:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_a_batch_over_memory_is_split_tiled_or_reviewed_and_every_record_committed(
    tmp_path: Path,
):
    pixels = [100, 100, 100, 100, 250, 100, 400, 100]
    transport, stage = MemoryTransport(), PixelStage(budget=200, tiled=300)
    await transport.publish([Message(TOPICS.name(Topic.UPLOADED), f"img{n}", _upload(n, p))
                             for n, p in enumerate(pixels)])
    runner = StageRunner(stage, transport=transport, store=FilesystemStore(tmp_path),
                         topics=TOPICS, group="g",
                         knobs=BatchKnobs(max_batch=8, max_wait_ms=20), retry_cap_s=0.01)
    splits = REGISTRY.get_sample_value("pixelgate_oom_splits_total", {"stage": "pixels"}) or 0.0
    await _drain(runner, transport, Topic.UPLOADED, len(pixels))

    assert transport.committed("g", TOPICS.name(Topic.UPLOADED)) == len(pixels)
    assert transport.records(TOPICS.name(Topic.DLQ)) == []
    results = [json.loads(r.value)["subject"]
               for r in transport.records(TOPICS.name(Topic.RESULTS))]
    assert sorted(results) == sorted(f"img{n}" for n, p in enumerate(pixels) if p <= 300)
    assert stage.tiled.calls == [[250], [400]]
    reviews = [json.loads(r.value) for r in transport.records(TOPICS.name(Topic.REVIEW))]
    assert [r["subject"] for r in reviews] == ["img6"]
    assert reviews[0]["data"]["reasons"][0]["code"] == "RESOURCE_EXHAUSTED"
    assert reviews[0]["data"]["context"]["original"]["key"] == "v/6.png"
    metrics = [json.loads(r.value) for r in transport.records(TOPICS.name(Topic.METRICS))]
    assert [(m["subject"], m["data"]["outcome"]) for m in metrics] == [("img6", "error")]
    assert max(len(c) for c in stage.batch.calls[1:]) <= 4  # halves after the first batch
    assert REGISTRY.get_sample_value("pixelgate_oom_splits_total", {"stage": "pixels"}) == (
        splits + 5)  # 8 → 4 + 4; each 4 (400 px) → 2 + 2; each 2 holding a 250 or 400 → 1 + 1
    device = "cuda" if torch.cuda.is_available() else "cpu"
    peak = REGISTRY.get_sample_value("pixelgate_peak_memory_bytes",
                                     {"stage": "pixels", "device": device})
    assert peak is not None
    assert peak > 0


class _OomAbove:
    """An upscaler that runs out of memory on any image over ``pixels`` (its own tiles too)."""

    def __init__(self, inner: Any, pixels: int) -> None:
        self.inner, self.pixels = inner, pixels
        self.config, self.version = inner.config, inner.version

    def __call__(self, images: Sequence[np.ndarray], *, scale: int) -> list[np.ndarray]:
        if any(im.shape[0] * im.shape[1] > self.pixels for im in images):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.50 GiB")
        return list(self.inner(images, scale=scale))


def _inpainted(store: FilesystemStore, n: int, image: np.ndarray) -> bytes:
    ref = ImageRef(bucket="outputs", key=f"p/{n}/in.png")
    store.put(ref, encode_png(image), "image/png")
    data = InpaintedData(
        context=ItemContext(vendor_id="v", sku="s", operations=Operations(upscale_to=128),
                            original=ImageRef(bucket="uploads", key=f"v/{n}.png")),
        image=ref, source=ref, mask=ref, next_stage="upscale", trail=Trail(),
    )
    return CloudEvent[InpaintedData](id=f"e{n}", source="test", type=event_type(Topic.INPAINTED),
                                     subject=f"img{n}", data=data).model_dump_json().encode()


async def test_the_upscale_stage_falls_back_to_its_small_tiles_with_the_same_output(
    tmp_path: Path,
):
    photo = data.astronaut()[::4, ::4]
    images = [np.ascontiguousarray(photo[y : y + 48, 16 : 16 + 64]) for y in (0, 40, 80)]
    settings = Settings(output_bucket="outputs", output_prefix="p")

    async def run(folder: Path, oom: bool) -> dict[str, bytes]:
        store, transport, stage = FilesystemStore(folder), MemoryTransport(), UpscaleStage(settings)
        stage.upscaler = Upscaler(replace(stage.upscaler.config, tile=32))  # 2 x 2 tiles
        if oom:  # every image fails on the normal path; the fallback cuts 3 x 4 tiles of 16
            stage.upscaler = _OomAbove(stage.upscaler, pixels=0)  # type: ignore[assignment]
        await transport.publish([Message(TOPICS.name(Topic.INPAINTED), f"img{n}",
                                         _inpainted(store, n, im)) for n, im in enumerate(images)])
        runner = StageRunner(stage, transport=transport, store=store, topics=TOPICS, group="g",
                             knobs=BatchKnobs(max_batch=4, max_wait_ms=20), retry_cap_s=0.01)
        await _drain(runner, transport, Topic.INPAINTED, len(images))
        assert transport.records(TOPICS.name(Topic.DLQ)) == []
        assert len(transport.records(TOPICS.name(Topic.UPSCALED))) == len(images)
        return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))
                if p.name != "in.png"}

    normal = await run(tmp_path / "normal", oom=False)
    tiled = await run(tmp_path / "tiled", oom=True)
    assert len(normal) == len(images)
    assert tiled == normal


class _Recording:
    """An upscaler that records how many images each call takes."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls = inner, []
        self.config, self.version = inner.config, inner.version

    def __call__(self, images: Sequence[np.ndarray], *, scale: int) -> list[np.ndarray]:
        self.calls.append([im.shape[0] * im.shape[1] * scale * scale for im in images])
        return list(self.inner(images, scale=scale))


def test_the_upscale_stage_hands_its_processor_batches_under_the_pixel_budget(tmp_path: Path):
    photo = data.astronaut()[::4, ::4]
    images = [np.ascontiguousarray(photo[y : y + h, 16:80])  # all ×2 up to a 128 px long side
              for y, h in ((0, 48), (40, 40), (80, 48), (100, 44))]
    budget = 2 * 64 * 48 * 4  # two of the largest ×2 outputs
    settings = Settings(output_bucket="outputs", output_prefix="p",
                        stage_batch={"upscale": BatchKnobs(max_batch_pixels=budget)})
    store, stage = FilesystemStore(tmp_path), UpscaleStage(settings)
    recorder = _Recording(stage.upscaler)
    stage.upscaler = recorder  # type: ignore[assignment]
    events = [stage.parse(Topic.INPAINTED, _inpainted(store, n, im)) for n, im in enumerate(images)]
    items = [Loaded(e, stage.load(e, store), 0.0) for e in events if e is not None]
    before_sum = REGISTRY.get_sample_value("pixelgate_batch_pixels_sum", {"stage": "upscale"}) or 0
    before_count = (
        REGISTRY.get_sample_value("pixelgate_batch_pixels_count", {"stage": "upscale"}) or 0)
    outputs = stage.process(items)

    assert [o.outcome for o in outputs] == ["pass"] * len(images)
    assert len(recorder.calls) == 2
    assert all(sum(call) <= budget for call in recorder.calls)
    assert sorted(c for call in recorder.calls for c in call) == sorted(
        im.shape[0] * im.shape[1] * 4 for im in images)
    observed = REGISTRY.get_sample_value("pixelgate_batch_pixels_sum", {"stage": "upscale"})
    counted = REGISTRY.get_sample_value("pixelgate_batch_pixels_count", {"stage": "upscale"})
    assert observed is not None
    assert counted is not None
    assert observed - before_sum == sum(sum(call) for call in recorder.calls)
    assert counted - before_count == len(recorder.calls)


@pytest.mark.slow  # the whole pipeline with its models: about 20 s
def test_an_embedded_run_survives_a_stage_out_of_memory(tmp_path: Path, monkeypatch):
    """The whole pipeline in embedded mode, with the inpainter out of memory on any batch of
    two or more and on single images of even width: those go to review, the rest through."""
    original = TextRemoval.__call__
    refused: list[tuple[int, ...]] = []

    def scarce(self: TextRemoval, images: Sequence[np.ndarray], *args: Any, **kw: Any) -> Any:
        if len(images) > 1:
            raise MemoryError
        if images[0].shape[1] % 2 == 0:
            refused.append(images[0].shape)
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 3.00 GiB")
        return original(self, images, *args, **kw)

    monkeypatch.setattr(TextRemoval, "__call__", scarce)
    generate_sample(tmp_path / "sample", 6, seed=5)
    files = collect_inputs(tmp_path / "sample" / "upload")
    run = asyncio.run(run_embedded(files, tmp_path / "out", Settings()))

    assert len(run.rows) == len(files)
    assert run.transport.records(f"{Settings().topic_prefix}dlq") == []
    exhausted = [r.record for r in run.rows
                 if any(x["code"] == "RESOURCE_EXHAUSTED" for x in r.record["reasons"])]
    assert refused
    assert len(exhausted) == len(refused)
    assert all(r["status"] == "review" for r in exhausted)
