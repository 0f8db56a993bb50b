"""Real local servers for the integration tests: Tansu (Kafka) and SeaweedFS (S3).

``dev_stack_factory`` starts a :class:`DevStack` in its own temporary directory on free
127.0.0.1 ports and stops every stack it made when the session ends, even after a failure.
``dev_stack`` is the one shared stack of the session; ``pixelgate_env`` points the
``PIXELGATE_*`` settings at it for one test. ``dev_config_factory`` only picks a directory and
free ports, for tests that start (or fail to start) a stack themselves.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from consumers.devstack import DevStack, DevStackConfig

_HOST = "127.0.0.1"
# port_base needs port_base + 0..7 and port_base + 10007; keep all of them below the kernel's
# ephemeral range (32768+), where the ports picked by binding port 0 come from.
_BASE_RANGE = (15000, 22700)


def _listening_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((_HOST, port))
        except OSError:
            return False
    return True


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free ports, by binding port 0 (all held until all are picked)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((_HOST, 0))
        return [sock.getsockname()[1] for sock in socks]


def _free_config(data_dir, rng: random.Random) -> DevStackConfig:
    kafka_port, s3_port = _free_ports(2)
    for _ in range(200):
        config = DevStackConfig(
            data_dir=data_dir,
            kafka_port=kafka_port,
            s3_port=s3_port,
            port_base=rng.randrange(*_BASE_RANGE),
        )
        weed_ports = [p for name, p in config.ports().items() if name.startswith("weed_")]
        if all(_listening_free(p) for p in weed_ports):
            return config
    raise RuntimeError("no free block of weed ports found")


@pytest.fixture(scope="session")
def dev_config_factory(tmp_path_factory) -> Callable[[], DevStackConfig]:
    """Make a DevStackConfig in a fresh temporary directory on free ports."""
    rng = random.Random()

    def make() -> DevStackConfig:
        return _free_config(tmp_path_factory.mktemp("devstack"), rng)

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
