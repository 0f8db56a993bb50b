"""structlog, configured once at start-up: JSON lines rendered by orjson.

Per-record context (``image_id``, ``stage``, ``topic``, ``partition``, ``offset``) is bound with
``structlog.contextvars`` by the runner, so every line logged while handling a record carries it.
"""

from __future__ import annotations

import logging
import sys
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


def configure_logging(level: str = "INFO", *, stream: Any = None) -> None:
    """Configure structlog for JSON output on ``stream`` (stderr by default)."""
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


def get_logger(name: str) -> Any:
    """A structlog logger bound with the component ``name``."""
    return structlog.get_logger(component=name)
