"""Starting the stage runners: the one start-up path of embedded mode and the Kafka workers.

Only the transport, the store and the consumer-group prefix differ between the two modes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from consumers.breaker import BreakerBoard
from consumers.runner import StageRunner, TopicNames
from consumers.settings import Settings
from consumers.stages import STAGE_NAMES, build_stages
from consumers.store import Store
from consumers.transport import Transport

__all__ = ["RunningStages", "running_stages"]

_THREADS = 4
"""Threads that load, process and store items, shared by every stage of the process."""


@dataclass(frozen=True)
class RunningStages:
    """The runners started, and their tasks (one per runner, named after its stage)."""

    runners: list[StageRunner[Any]]
    """One runner per stage, in pipeline order."""
    tasks: list[asyncio.Task[None]]
    """``runner.run(stop)`` of each runner, in the same order."""


@contextmanager
def running_stages(
    settings: Settings,
    stop: asyncio.Event,
    *,
    transport: Transport,
    store: Store,
    topics: TopicNames,
    group_prefix: str,
    names: Sequence[str] = STAGE_NAMES,
    board: BreakerBoard | None = None,
) -> Iterator[RunningStages]:
    """Build the stages ``names`` and start a runner task for each, in consumer groups named
    ``<group_prefix><stage>``; the worker threads stay up until the block is left (await the
    tasks inside it)."""
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="pixelgate") as executor:
        runners: list[StageRunner[Any]] = [
            StageRunner(
                stage,
                transport=transport,
                store=store,
                topics=topics,
                group=f"{group_prefix}{stage.name}",
                knobs=settings.knobs(stage.name),
                executor=executor,
            )
            for stage in build_stages(settings, names, board=board)
        ]
        tasks = [asyncio.create_task(r.run(stop), name=r.stage.name) for r in runners]
        yield RunningStages(runners, tasks)
