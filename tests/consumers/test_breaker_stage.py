"""The inpaint stage behind its circuit breaker, over the in-memory transport (the same runner,
stage and feed code as the Kafka workers): a bad model opens the breaker and never reaches
the next stage, a good one closes it again, one vendor's bad batch opens only that vendor's
breaker, the ``pause`` policy holds the batch, items beyond the half-open trials wait for their
verdict, and operator commands are obeyed."""

from __future__ import annotations

import asyncio
import io
import time
import warnings
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import torch
from PIL import Image
from prometheus_client import generate_latest
from structlog.testing import capture_logs

from consumers.breaker import BreakerBoard, BreakerPolicy, BreakerState
from consumers.breaker_feed import BreakerFeed, control_message
from consumers.cli import main
from consumers.errors import BreakerOpenError
from consumers.runner import Loaded, StageRunner, TopicNames
from consumers.settings import BatchKnobs, Settings
from consumers.stages import InpaintStage
from consumers.stages.common import TrialPermits, admit
from consumers.store import FilesystemStore
from consumers.transport import MemoryTransport, Message
from processors.inpaint import InpaintConfig, Inpainter
from schemas.events import (
    CloudEvent,
    ImageRef,
    ItemContext,
    MetricsData,
    Operations,
    RoutedData,
    RouteDecision,
    Topic,
    Trail,
    event_type,
)

TOPICS = TopicNames("t.")


class NoiseFill(torch.nn.Module):
    """A broken inpainting model: uniform noise where the mask is."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.rand_like(image)


class DarkNoiseFill(torch.nn.Module):
    """Broken on dark images only (a vendor batch the model cannot handle); elsewhere it fills
    the mask by repeated 3x3 averaging from the known pixels' mean (a harmonic fill)."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        known = 1.0 - mask
        fill = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True)
        out = image * known + fill * mask
        for _ in range(300):
            blurred = torch.nn.functional.avg_pool2d(out, 3, stride=1, padding=1,
                                                     count_include_pad=False)
            out = image * known + blurred * mask
        dark = (fill.mean(dim=(1, 2, 3), keepdim=True) < 0.35).to(image.dtype)
        return dark * torch.rand_like(image) + (1.0 - dark) * out


class Crash(torch.nn.Module):
    """A model that raises on every call (a deployment that cannot run at all)."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("the model cannot run")


def script(module: torch.nn.Module, path: Path) -> Path:
    """Save ``module`` as TorchScript, the format users deploy (deprecated in torch 2.13 in
    favour of torch.export, but still what LaMa-style exports ship as)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(module).save(str(path))
    return path


def photo(seed: int, dark: bool = False) -> np.ndarray:
    """A smooth 128x128 gradient with a little grain (bright or dark)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:128, 0:128].astype(np.float32) / 127.0
    base = (0.12 if dark else 0.6) + 0.15 * (0.6 * x + 0.4 * y)
    rgb = np.stack([base, base * 0.95, base * 0.9], axis=-1) * 255.0
    rgb += rng.normal(0.0, 1.0, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def blob_mask() -> np.ndarray:
    mask = np.zeros((128, 128), np.uint8)
    mask[50:70, 40:90] = 255
    return mask


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def routed(store: FilesystemStore, index: int, vendor: str, image: np.ndarray) -> Message:
    image_id = f"img-{vendor}-{index:03d}"
    ref = ImageRef(bucket="outputs", key=f"p/{image_id}/preflight.png")
    mask = ImageRef(bucket="outputs", key=f"p/{image_id}/text-mask.png")
    store.put(ref, png(image), "image/png")
    store.put(mask, png(blob_mask()), "image/png")
    data = RoutedData(
        context=ItemContext(vendor_id=vendor, sku=f"sku{index}", operations=Operations(),
                            original=ImageRef(bucket="uploads", key=f"{vendor}/{index}.png")),
        image=ref,
        text_mask=mask,
        next_stage="inpaint",
        trail=Trail(route=RouteDecision(stages=["inpaint"], why=["test"])),
    )
    event = CloudEvent[RoutedData](id=image_id, source="test", type=event_type(Topic.ROUTED),
                                   subject=image_id, data=data)
    return Message(TOPICS.name(Topic.ROUTED), image_id, event.model_dump_json().encode())


def settings_with(model: Path, policy: BreakerPolicy) -> Settings:
    return Settings(topic_prefix="t.", output_bucket="outputs", output_prefix="p",
                    inpaint_method="torchscript", inpaint_model=model,
                    breakers={"inpaint": policy}, batch=BatchKnobs(max_batch=2, max_wait_ms=10))


class Pipeline:
    """One inpaint stage runner plus its breaker feed over a memory transport."""

    def __init__(self, tmp_path: Path, settings: Settings) -> None:
        self.settings = settings
        self.transport = MemoryTransport()
        self.store = FilesystemStore(tmp_path / "store")
        self.feed = BreakerFeed(settings.breakers, transport=self.transport, topics=TOPICS,
                                group="breaker", tick_s=0.05)
        self.board = self.feed.board
        self.stage = InpaintStage(settings, self.board)
        self.runner = StageRunner(self.stage, transport=self.transport, store=self.store,
                                  topics=TOPICS, group="inpaint", knobs=settings.knobs("inpaint"),
                                  retry_cap_s=0.2)
        self.stop = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Pipeline:
        self.tasks = [asyncio.create_task(self.runner.run(self.stop)),
                      asyncio.create_task(self.feed.run(self.stop))]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)

    async def submit(self, messages: list[Message]) -> None:
        for message in messages:  # one by one, as uploads arrive
            await self.transport.publish([message])
            await asyncio.sleep(0.02)

    def done(self) -> dict[str, str]:
        """Image id -> the topic it left the stage on (inpainted or review)."""
        out: dict[str, str] = {}
        for topic in (Topic.INPAINTED, Topic.REVIEW):
            for record in self.transport.records(TOPICS.name(topic)):
                out.setdefault(record.key or "", topic.value)
        return out

    def reasons(self) -> Counter[str]:
        codes: Counter[str] = Counter()
        for record in self.transport.records(TOPICS.name(Topic.REVIEW)):
            for reason in orjson.loads(record.value)["data"]["reasons"]:
                codes[reason["code"]] += 1
        return codes

    def transitions(self) -> list[tuple[str | None, str, str]]:
        return [(t.scope.vendor_id, str(t.from_state), str(t.to_state))
                for t in self.feed.transitions]

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        """Poll ``condition`` every 50 ms until it holds; fail after ``timeout`` seconds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            assert asyncio.get_running_loop().time() < deadline, f"not {what} in {timeout} s"
            await asyncio.sleep(0.05)

    async def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.done()) < count:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(self.done())} done"
            await asyncio.sleep(0.05)


POLICY = BreakerPolicy(window="count", window_size=6, minimum_calls=4,
                       failure_rate_threshold=50.0, wait_in_open_s=1.0, half_open_permits=2)


async def test_a_bad_model_opens_the_breaker_and_a_good_one_closes_it(tmp_path):
    settings = settings_with(script(NoiseFill(), tmp_path / "noise.pt"), POLICY)
    async with Pipeline(tmp_path, settings) as pipe:
        await pipe.submit([routed(pipe.store, i, "v1", photo(i)) for i in range(12)])
        await pipe.wait_for(12)
        # Nothing bad went on: every item is in review, none reached the next stage.
        assert set(pipe.done().values()) == {"review"}
        assert pipe.transitions()[0] == (None, "CLOSED", "OPEN")
        opened = pipe.feed.transitions[0].snapshot
        assert opened.calls >= POLICY.minimum_calls
        assert opened.failure_rate >= POLICY.failure_rate_threshold
        reasons = pipe.reasons()
        assert reasons["BREAKER_OPEN"] >= 1  # later items were held, not edited
        # Edited (and failed) items: the first window, plus what was in flight when it opened.
        # The feed reads the metrics asynchronously, so on a loaded machine the stage may edit
        # up to 3 more batches of 2 before it learns that the breaker opened.
        assert reasons["WORSE_THAN_INPUT"] <= POLICY.minimum_calls + 3 * 2

        # Deploy the good model; after the wait the half-open trials pass and it closes.
        pipe.stage.inpainter = Inpainter(InpaintConfig(method="telea"))
        await asyncio.sleep(POLICY.wait_in_open_s + 0.2)
        trials = POLICY.half_open_permits
        await pipe.submit([routed(pipe.store, 100 + i, "v1", photo(100 + i))
                           for i in range(trials)])
        await pipe.wait_for(12 + trials)
        await pipe.submit([routed(pipe.store, 200 + i, "v1", photo(200 + i)) for i in range(3)])
        await pipe.wait_for(15 + trials)
    states = pipe.transitions()
    assert states[1:] == [(None, "OPEN", "HALF_OPEN"), (None, "HALF_OPEN", "CLOSED")]
    after = {k: v for k, v in pipe.done().items() if k.startswith(("img-v1-1", "img-v1-2"))}
    assert set(after.values()) == {"inpainted"}
    trials = [orjson.loads(r.value)["data"] for r in pipe.transport.records("t.metrics")]
    assert sum(1 for m in trials if m["trial"]) >= POLICY.half_open_permits


async def test_one_vendors_bad_batch_opens_only_that_vendors_breaker(tmp_path):
    policy = BreakerPolicy(window="count", window_size=6, minimum_calls=3,
                           failure_rate_threshold=50.0, wait_in_open_s=60.0, per_vendor=True)
    settings = settings_with(script(DarkNoiseFill(), tmp_path / "dark.pt"), policy)
    async with Pipeline(tmp_path, settings) as pipe:
        messages = []
        for i in range(8):
            messages.append(routed(pipe.store, i, "dark", photo(i, dark=True)))
            messages.append(routed(pipe.store, i, "bright", photo(i)))
        await pipe.submit(messages)
        await pipe.wait_for(16)
    assert pipe.board.state("inpaint", "dark") is BreakerState.OPEN
    assert pipe.board.state("inpaint", "bright") is BreakerState.CLOSED
    assert pipe.transitions() == [("dark", "CLOSED", "OPEN")]
    bright = {k: v for k, v in pipe.done().items() if "bright" in k}
    dark = {k: v for k, v in pipe.done().items() if "dark" in k}
    assert set(bright.values()) == {"inpainted"}
    assert set(dark.values()) == {"review"}


async def test_pause_policy_holds_the_batch_until_an_operator_resets(tmp_path):
    policy = BreakerPolicy(window="count", window_size=4, minimum_calls=2,
                           failure_rate_threshold=50.0, wait_in_open_s=600.0,
                           when_open="pause")
    settings = settings_with(script(NoiseFill(), tmp_path / "noise.pt"), policy)
    async with Pipeline(tmp_path, settings) as pipe:
        await pipe.submit([routed(pipe.store, i, "v1", photo(i)) for i in range(8)])
        await pipe.wait_for(2)
        await asyncio.sleep(1.0)
        held = len(pipe.done())
        assert pipe.board.state("inpaint") is BreakerState.OPEN
        assert held < 8  # the rest wait, uncommitted
        assert pipe.transport.committed("inpaint", "t.routed") < 8
        assert pipe.reasons()["BREAKER_OPEN"] == 0  # paused, not sent to review
        # An operator fixes the model and resets the breaker: every replica obeys the command.
        pipe.stage.inpainter = Inpainter(InpaintConfig(method="telea"))
        await pipe.transport.publish([control_message(TOPICS, "inpaint", "reset",
                                                      reason="model rolled back")])
        await pipe.wait_for(8)
    assert pipe.transitions()[-1] == (None, "OPEN", "CLOSED")
    assert sum(1 for v in pipe.done().values() if v == "inpainted") == 8 - held


async def test_forced_open_sends_items_to_review_untouched(tmp_path):
    settings = settings_with(script(NoiseFill(), tmp_path / "noise.pt"), POLICY)
    async with Pipeline(tmp_path, settings) as pipe:
        pipe.stage.inpainter = Inpainter(InpaintConfig(method="telea"))
        await pipe.transport.publish([control_message(TOPICS, "inpaint", "force_open")])
        await pipe.until(lambda: pipe.board.state("inpaint") is BreakerState.FORCED_OPEN,
                         "forced open")
        await pipe.submit([routed(pipe.store, i, "v1", photo(i)) for i in range(3)])
        await pipe.wait_for(3)
    assert set(pipe.done().values()) == {"review"}
    assert pipe.reasons() == Counter({"BREAKER_OPEN": 3})
    reviews = [orjson.loads(r.value)["data"] for r in pipe.transport.records("t.review")]
    assert all(r["candidate"] is None and r["mask"] is not None for r in reviews)
    assert pipe.transitions() == [(None, "CLOSED", "FORCED_OPEN")]


# --- HALF_OPEN: the items beyond the trial permits wait for the trials' verdict ---------------


def test_admission_defers_the_items_beyond_the_trial_permits() -> None:
    clock = [1000.0]
    policy = BreakerPolicy(window_size=4, minimum_calls=2, wait_in_open_s=30.0,
                           half_open_permits=2)
    board = BreakerBoard({"inpaint": policy}, clock=lambda: clock[0])
    for _ in range(2):
        board.observe("inpaint", "v1", failed=True, duration_s=0.1)
    refused = admit(board, "inpaint", ["v1"] * 3)
    assert (refused.allowed, refused.deferred) == ((False,) * 3, (False,) * 3)  # OPEN: review
    clock[0] += 30.0
    half = admit(board, "inpaint", ["v1"] * 5)
    assert half.allowed == (True, True, False, False, False)
    assert half.trial == (True, True, False, False, False)
    assert half.deferred == (False, False, True, True, True)
    assert admit(board, "inpaint", ["v1"]).deferred == (True,)  # still waiting for the verdict
    for _ in range(2):
        board.observe("inpaint", "v1", failed=False, duration_s=0.1, trial=True)
    closed = admit(board, "inpaint", ["v1"] * 3)
    assert closed.allowed == (True,) * 3
    assert closed.trial == closed.deferred == (False,) * 3


def test_a_trial_keeps_its_permit_until_its_outcome_is_out(tmp_path) -> None:
    clock = [1000.0]
    policy = BreakerPolicy(window_size=4, minimum_calls=2, wait_in_open_s=30.0,
                           half_open_permits=2)
    board = BreakerBoard({"inpaint": policy}, clock=lambda: clock[0])
    for _ in range(2):
        board.observe("inpaint", "v1", failed=True, duration_s=0.1)
    clock[0] += 30.0
    store = FilesystemStore(tmp_path / "store")
    items = [Loaded(CloudEvent[RoutedData].model_validate_json(
        routed(store, i, "v1", photo(i)).value), None, 0.0) for i in range(3)]
    trials = TrialPermits()
    assert trials.admit(board, "inpaint", items).trial == (True, True, False)
    # The batch raised: processed again one by one, the trials keep their permits and the
    # item beyond them is still deferred.
    assert [trials.admit(board, "inpaint", [item]).trial for item in items[:2]] == [(True,)] * 2
    assert trials.admit(board, "inpaint", items[2:]).deferred == (True,)
    trials.release(items[1:2])  # its output carries its outcome
    assert [trials.settle(item.event) for item in items] == [True, False, False]
    assert not trials.settle(items[0].event)
    for _ in range(2):
        board.observe("inpaint", "v1", failed=True, duration_s=0.1, trial=True)
    reopened = trials.admit(board, "inpaint", items[2:])
    assert (reopened.allowed, reopened.deferred) == ((False,), (False,))  # OPEN: to review


def test_admission_of_a_stage_without_a_breaker_edits_everything() -> None:
    admission = admit(None, "inpaint", ["v1", "v2"])
    assert admission.allowed == (True, True)
    assert admission.trial == admission.deferred == (False, False)


def test_pause_admission_raises_while_open_and_defers_in_half_open() -> None:
    clock = [1000.0]
    policy = BreakerPolicy(window_size=4, minimum_calls=2, wait_in_open_s=30.0,
                           half_open_permits=1, when_open="pause")
    board = BreakerBoard({"inpaint": policy}, clock=lambda: clock[0])
    for _ in range(2):
        board.observe("inpaint", "v1", failed=True, duration_s=0.1)
    with pytest.raises(BreakerOpenError, match="holding the batch until it half-opens"):
        admit(board, "inpaint", ["v1"])
    clock[0] += 30.0
    assert admit(board, "inpaint", ["v1", "v1"]).deferred == (False, True)


HALF_OPEN_POLICY: dict[str, Any] = {
    "window": "count", "window_size": 4, "minimum_calls": 2, "failure_rate_threshold": 50.0,
    "wait_in_open_s": 60.0, "half_open_permits": 2,
}


def half_open_settings(model: Path, when_open: str) -> Settings:
    """An inpaint stage whose breaker admits 2 trials, behind batches of up to 6 items."""
    return Settings(topic_prefix="t.", output_bucket="outputs", output_prefix="p",
                    inpaint_method="torchscript", inpaint_model=model,
                    breakers={"inpaint": BreakerPolicy(**HALF_OPEN_POLICY, when_open=when_open)},
                    batch=BatchKnobs(max_batch=6, max_wait_ms=10))


async def half_open(pipe: Pipeline) -> None:
    """Open the breaker with two failures dated one full wait ago: it is HALF_OPEN at once."""
    at = datetime.fromtimestamp(time.time() - HALF_OPEN_POLICY["wait_in_open_s"] - 1.0, UTC)
    failures = []
    for index in range(2):
        data = MetricsData(stage="inpaint", vendor_id="v1", outcome="fail", latency_ms=10.0,
                           batch_size=1)
        event = CloudEvent[MetricsData](id=f"old-{index}", source="test",
                                        type=event_type(Topic.METRICS), subject=f"old-{index}",
                                        time=at, data=data)
        failures.append(Message(TOPICS.name(Topic.METRICS), "inpaint",
                                event.model_dump_json().encode()))
    await pipe.transport.publish(failures)
    await pipe.until(lambda: pipe.board.state("inpaint") is BreakerState.HALF_OPEN, "half-open")


def stage_metrics(pipe: Pipeline) -> list[dict[str, Any]]:
    """The inpaint stage's own metrics events (not the ones the test published)."""
    events = [orjson.loads(r.value) for r in pipe.transport.records("t.metrics")]
    return [e["data"] for e in events if e["source"] == "pixelgate/inpaint"]


async def test_items_beyond_the_trials_wait_and_are_edited_once_the_trials_pass(tmp_path):
    settings = half_open_settings(script(NoiseFill(), tmp_path / "noise.pt"), "review")
    with capture_logs() as logs:
        async with Pipeline(tmp_path, settings) as pipe:
            pipe.stage.inpainter = Inpainter(InpaintConfig(method="telea"))  # the fixed model
            await half_open(pipe)
            items = [routed(pipe.store, i, "v1", photo(i)) for i in range(6)]
            await pipe.transport.publish(items)  # one poll: 2 trials and 4 items beyond them
            await pipe.wait_for(6)
            await pipe.until(lambda: pipe.transport.committed("inpaint", "t.routed") == 6,
                             "committed")
    assert next(e["count"] for e in logs if e["event"] == "items_deferred") == 4
    assert pipe.transitions() == [
        (None, "CLOSED", "OPEN"), (None, "OPEN", "HALF_OPEN"), (None, "HALF_OPEN", "CLOSED")
    ]
    # Every item edited and passed on exactly once; none reached people.
    assert sorted(r.key or "" for r in pipe.transport.records("t.inpainted")) == sorted(
        m.key for m in items
    )
    assert pipe.transport.records("t.review") == []
    assert sorted((m["trial"], m["outcome"]) for m in stage_metrics(pipe)) == (
        [(False, "pass")] * 4 + [(True, "pass")] * 2
    )


@pytest.mark.parametrize("when_open", ["review", "pause"])
async def test_items_beyond_failed_trials_follow_the_open_policy(tmp_path, when_open):
    settings = half_open_settings(script(NoiseFill(), tmp_path / "noise.pt"), when_open)
    with capture_logs() as logs:
        async with Pipeline(tmp_path, settings) as pipe:
            await half_open(pipe)
            await pipe.transport.publish([routed(pipe.store, i, "v1", photo(i))
                                          for i in range(6)])
            await pipe.until(lambda: pipe.transitions()[-1:] == [(None, "HALF_OPEN", "OPEN")],
                             "reopened by the failed trials")
            if when_open == "pause":
                # Held, uncommitted, neither edited nor sent to review, until an operator acts.
                await pipe.until(lambda: any(e["event"] == "retrying" and e["phase"] == "process"
                                             for e in logs), "held by the open breaker")
                assert len(pipe.done()) == 2  # the failed trials
                assert pipe.transport.committed("inpaint", "t.routed") == 0
                pipe.stage.inpainter = Inpainter(InpaintConfig(method="telea"))
                await pipe.transport.publish([control_message(TOPICS, "inpaint", "reset")])
            await pipe.wait_for(6)
    assert next(e["count"] for e in logs if e["event"] == "items_deferred") == 4
    trials = [m for m in stage_metrics(pipe) if m["trial"]]
    assert [m["outcome"] for m in trials] == ["fail", "fail"]
    reviews = [orjson.loads(r.value)["data"] for r in pipe.transport.records("t.review")]
    edited_for_review = [r for r in reviews if r["candidate"] is not None]
    assert len(edited_for_review) == 2  # the trials, refused by their gates
    if when_open == "review":
        assert set(pipe.done().values()) == {"review"}
        assert pipe.reasons()["BREAKER_OPEN"] == 4
    else:
        assert Counter(pipe.done().values()) == Counter({"review": 2, "inpainted": 4})
        assert pipe.reasons()["BREAKER_OPEN"] == 0
        assert pipe.transitions()[-1] == (None, "OPEN", "CLOSED")


@pytest.mark.parametrize("when_open", ["review", "pause"])
async def test_trials_that_raise_are_failed_trials_and_the_held_items_follow_the_open_policy(
    tmp_path, when_open
):
    settings = half_open_settings(script(Crash(), tmp_path / "crash.pt"), when_open)
    with capture_logs() as logs:
        async with asyncio.timeout(60), Pipeline(tmp_path, settings) as pipe:
            await half_open(pipe)
            items = [routed(pipe.store, i, "v1", photo(i)) for i in range(6)]
            await pipe.transport.publish(items)
            await pipe.until(lambda: pipe.transitions()[-1:] == [(None, "HALF_OPEN", "OPEN")],
                             "reopened by the trials' errors")
            if when_open == "pause":
                await pipe.until(lambda: any(e["event"] == "retrying" and e["phase"] == "process"
                                             for e in logs), "held by the open breaker")
                assert pipe.done() == {}
                assert pipe.transport.committed("inpaint", "t.routed") == 0
                pipe.stage.inpainter = Inpainter(InpaintConfig(method="telea"))
                await pipe.transport.publish([control_message(TOPICS, "inpaint", "reset")])
            await pipe.wait_for(4)
            await pipe.until(lambda: pipe.transport.committed("inpaint", "t.routed") == 6,
                             "committed")
    dead = {r.key for r in pipe.transport.records("t.dlq")}
    assert len(dead) == 2  # the two trials, whose processing raised
    for message in items:  # no trial permit left held
        assert not pipe.stage.settle_trial(CloudEvent[RoutedData].model_validate_json(
            message.value))
    events = [orjson.loads(r.value) for r in pipe.transport.records("t.metrics")]
    errors = [(e["subject"], e["data"]["trial"]) for e in events
              if e["source"] == "pixelgate/inpaint" and e["data"]["outcome"] == "error"]
    assert sorted(errors) == sorted((key, True) for key in dead)
    held = {m.key for m in items} - dead
    assert set(pipe.done()) == held
    if when_open == "review":
        assert set(pipe.done().values()) == {"review"}
        assert pipe.reasons() == Counter({"BREAKER_OPEN": 4})
    else:
        assert set(pipe.done().values()) == {"inpainted"}
        assert pipe.transitions()[-1] == (None, "OPEN", "CLOSED")


@pytest.mark.parametrize("action", ["disable"])
async def test_disabled_breaker_never_opens(tmp_path, action):
    settings = settings_with(script(NoiseFill(), tmp_path / "noise.pt"), POLICY)
    async with Pipeline(tmp_path, settings) as pipe:
        await pipe.transport.publish([control_message(TOPICS, "inpaint", action)])
        await pipe.until(lambda: pipe.board.state("inpaint") is BreakerState.DISABLED, "disabled")
        await pipe.submit([routed(pipe.store, i, "v1", photo(i)) for i in range(8)])
        await pipe.wait_for(8)
    # Every item was edited and gated (the gate still protects results), none held.
    assert pipe.reasons()["BREAKER_OPEN"] == 0
    assert pipe.reasons()["WORSE_THAN_INPUT"] == 8
    assert pipe.transitions() == [(None, "CLOSED", "DISABLED")]


async def test_breaker_state_and_failure_rate_are_prometheus_metrics(tmp_path):
    expected = [
        'pixelgate_breaker_state{stage="inpaint",vendor="*"} 1.0',
        'pixelgate_breaker_failure_rate{stage="inpaint",vendor="*"} 100.0',
        'pixelgate_items_total{outcome="held",stage="inpaint"}',
    ]
    settings = settings_with(script(NoiseFill(), tmp_path / "noise.pt"), POLICY)
    async with Pipeline(tmp_path, settings) as pipe:
        await pipe.submit([routed(pipe.store, i, "v1", photo(i)) for i in range(6)])
        await pipe.wait_for(6)
        # The feed exports the gauges on its next tick after the breaker opened.
        await pipe.until(lambda: all(line in generate_latest().decode() for line in expected),
                         "exported")
    exposition = generate_latest().decode()
    for line in expected:
        assert line in exposition


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["breaker", "force-open"], "needs --stage"),
        (["breaker", "disable", "--stage", "inpaint", "--vendor", "v1"], "not per vendor"),
    ],
)
def test_breaker_cli_refuses_incomplete_commands(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
