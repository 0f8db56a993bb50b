"""Probes of the local dev servers: process state, free ports, HTTP and Kafka readiness, logs."""

from __future__ import annotations

import http.client
import os
import socket
import struct
from pathlib import Path
from typing import Literal

__all__ = [
    "HOST",
    "collect",
    "http_ok",
    "kafka_metadata_ok",
    "log_tail",
    "pid_alive",
    "port_free",
]

HOST = "127.0.0.1"
"""Every dev server listens on this address only."""
_LOG_TAIL_LINES = 25


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()
    return bool(state) and state[0] not in {"Z", "X"}


def collect(pid: int) -> Literal["running", "collected", "not_child"]:
    """Collect ``pid`` if it is an exited child of this process (``waitpid``, not blocking)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # not (or no longer) our child
        return "not_child"
    return "running" if done == 0 else "collected"


def port_free(port: int) -> bool:
    """Nothing listens on 127.0.0.1:``port`` (TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def http_ok(port: int, path: str, timeout: float) -> bool:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(size - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks += chunk
    return bytes(chunks)


def kafka_metadata_ok(port: int, timeout: float) -> bool:
    """A Kafka Metadata (v0, all topics) request is answered and names this broker.

    Metadata reads the broker's storage, so this fails while Tansu cannot reach S3, even though
    its port is open (an open port is not ready).
    """
    correlation_id = 0x70677465
    client_id = b"pixelgate-dev"
    request = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    request += struct.pack(">i", 0)  # v0: an empty topic list means every topic
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
            if not 8 <= size <= 64 * 1024 * 1024:
                return False
            response = _recv_exactly(sock, size)
    except OSError:
        return False
    return _names_broker(response, correlation_id, port)


def _names_broker(response: bytes, correlation_id: int, port: int) -> bool:
    """Parse the head of a Metadata v0 response: its broker list includes 127.0.0.1:port."""
    try:
        got_id, count = struct.unpack_from(">ii", response, 0)
        offset = 8
        for _ in range(min(count, 1024)):
            _node, host_len = struct.unpack_from(">ih", response, offset)
            offset += 6
            host = response[offset : offset + host_len].decode("ascii", errors="replace")
            offset += host_len
            (broker_port,) = struct.unpack_from(">i", response, offset)
            offset += 4
            if got_id == correlation_id and host == HOST and broker_port == port:
                return True
    except struct.error:
        return False
    return False


def log_tail(path: Path, offset: int) -> str:
    """The last lines of ``path`` written after ``offset``."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError as exc:
        return f"(log unreadable: {exc})"
    lines = data.decode("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines) if lines else "(log is empty)"
