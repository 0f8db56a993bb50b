"""Real local servers for the integration tests: Tansu (Kafka) and SeaweedFS (S3).

``dev_stack_factory`` starts a :class:`DevStack` in its own temporary directory on free
127.0.0.1 ports and stops every stack it made when the session ends, even after a failure.
Under pytest-xdist every test process has its own session, hence its own stacks.
``dev_stack`` is the one shared stack of the session; ``pixelgate_env`` points the
``PIXELGATE_*`` settings at it for one test. ``dev_config_factory`` only picks a directory and
free ports, for tests that start (or fail to start) a stack themselves.
"""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator, Sequence

import pytest
from aiokafka import AIOKafkaConsumer

from consumers.dev.devstack import DevStack, DevStackConfig, free_config
from consumers.runner import TopicNames
from consumers.settings import Settings
from schemas.events import Topic


def _this_process_owns(config: DevStackConfig) -> bool:
    """Whether ``config``'s block of SeaweedFS ports lies in this test process's share.

    Under pytest-xdist each process starts stacks of its own, possibly at the same moment as
    another process. Process ``k`` of ``n`` takes the port bases whose thousand is ``k`` modulo
    ``n``, and none in the last 8 of a thousand, so two processes never pick overlapping blocks
    (``port_base + 0..7``; ``+ 10007`` differs as the bases do).
    """
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    thousand, offset = divmod(config.port_base, 1000)
    return thousand % count == index and offset < 1000 - 8


@pytest.fixture(scope="session")
def dev_config_factory(tmp_path_factory) -> Callable[[], DevStackConfig]:
    """Make a DevStackConfig in a fresh temporary directory on free ports."""
    rng = random.Random()

    def make() -> DevStackConfig:
        data_dir = tmp_path_factory.mktemp("devstack")
        config = free_config(data_dir, rng)
        while not _this_process_owns(config):
            config = free_config(data_dir, rng)
        return config

    return make


@pytest.fixture(scope="session")
def dev_stack_factory(dev_config_factory) -> Iterator[Callable[[], DevStack]]:
    """Start a fresh local stack; every stack made is stopped when the session ends."""
    made: list[DevStack] = []

    def make(timeout: float = 60.0) -> DevStack:
        stack = DevStack(dev_config_factory())
        made.append(stack)
        stack.up(timeout=timeout)
        return stack

    try:
        yield make
    finally:
        errors = []
        for stack in made:
            try:
                stack.down()
            except Exception as exc:  # noqa: BLE001 - stop the others, then report
                errors.append(exc)
        if errors:
            raise errors[0]


@pytest.fixture(scope="session")
def dev_stack(dev_stack_factory) -> DevStack:
    """The session's shared, running broker + object store."""
    return dev_stack_factory()


@pytest.fixture
def pixelgate_env(dev_stack, monkeypatch) -> dict[str, str]:
    """``PIXELGATE_*`` variables pointing at ``dev_stack``, for the length of one test."""
    env = dev_stack.settings_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(scope="session")
def observer_factory() -> Callable[[Settings, Sequence[Topic]], AIOKafkaConsumer]:
    """An outside subscriber (not yet started) to ``topics`` under the settings' prefix, in a
    fresh group from the earliest offset, as a downstream service would read them."""

    def make(settings: Settings, topics: Sequence[Topic]) -> AIOKafkaConsumer:
        names = TopicNames(settings.topic_prefix)
        return AIOKafkaConsumer(
            *[names.name(t) for t in topics],
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=f"observer-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )

    return make
