"""structlog, configured once at start-up: JSON lines rendered by orjson.

Per-record context (``image_id``, ``stage``, ``topic``, ``partition``, ``offset``) is bound with
``structlog.contextvars`` by the runner, so every line logged while handling a record carries it.
Libraries that log through the standard library (aiokafka, urllib3) are rendered as the same
JSON lines, and a repeated message is let through at most once per few seconds: during a broker
outage aiokafka repeats its connection error hundreds of times a second.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

__all__ = ["configure_logging", "get_logger"]

_SECRET_WORDS = ("secret", "password", "token", "access_key", "sasl")


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: never render a value whose key names a secret."""
    for key in list(event_dict):
        if any(word in key.lower() for word in _SECRET_WORDS):
            event_dict[key] = "**********"
    return event_dict


class _Throttle(logging.Filter):
    """Lets one record per (logger, message template) through every ``interval`` seconds and
    counts what it held back in the next one it lets through (``suppressed``)."""

    def __init__(self, interval: float = 5.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, object], float] = {}
        self._held: dict[tuple[str, object], int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return False
        self._last[key] = now
        held = self._held.pop(key, 0)
        if held:
            record.suppressed = held
        return True


def _json_line(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj).decode()


def _route_stdlib(level: str, stream: Any) -> None:
    """Send standard-library logging through structlog's renderer (JSON, redacted, throttled)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_pixelgate", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._pixelgate = True  # type: ignore[attr-defined]
    handler.addFilter(_Throttle())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                _redact,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(serializer=_json_line),
            ],
        )
    )
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # third-party INFO chatter stays out of the JSON stream
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))


def configure_logging(level: str = "INFO", *, stream: Any = None) -> None:
    """Configure structlog for JSON output on ``stream`` (stderr by default)."""
    _route_stdlib(level, None if stream is None else _TextStream(stream))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=orjson.dumps),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.BytesLoggerFactory(file=stream or sys.stderr.buffer),
        cache_logger_on_first_use=False,
    )


class _TextStream:
    """Adapts a binary stream (what structlog's BytesLogger writes to) for logging's handler."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        return int(self.raw.write(text.encode()))

    def flush(self) -> None:
        self.raw.flush()


def get_logger(name: str) -> Any:
    """A structlog logger bound with the component ``name``."""
    return structlog.get_logger(component=name)
