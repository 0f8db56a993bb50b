"""The runtime's one small error tree; the runner decides retry, dlq or review by type.

::

    PixelgateError                 retriable = False
    ├── RetriableError             retriable = True   (retry with bounded, jittered backoff)
    │   ├── StoreUnavailableError       the object store did not answer
    │   ├── TransportUnavailableError   the broker did not answer
    │   └── BreakerOpenError            the stage's circuit breaker is open and its policy is
    │                                   "pause": hold the batch, retry once it half-opens
    └── PermanentError             retriable = False  (dead-letter the record, never block)
        ├── PoisonRecordError           invalid JSON, schema violation, unsafe key
        ├── SourceMissingError          the referenced object does not exist
        └── ConfigError            bad settings or arguments (raised at start-up, never per record)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "BreakerOpenError",
    "ConfigError",
    "PermanentError",
    "PixelgateError",
    "PoisonRecordError",
    "RetriableError",
    "SourceMissingError",
    "StoreUnavailableError",
    "TransportUnavailableError",
]


class PixelgateError(Exception):
    """Base of every error pixelgate raises on purpose."""

    retriable: ClassVar[bool] = False


class RetriableError(PixelgateError):
    """A transient failure: the same call may succeed later."""

    retriable: ClassVar[bool] = True


class StoreUnavailableError(RetriableError):
    """The object store did not answer, or answered with a server error."""


class TransportUnavailableError(RetriableError):
    """The broker did not answer, or refused a request it may accept later."""


class BreakerOpenError(RetriableError):
    """The stage's circuit breaker is open and its policy pauses the stage: the runner holds the
    batch uncommitted (Kafka partitions paused) and retries it with backoff."""


class PermanentError(PixelgateError):
    """Retrying cannot help; the record goes to the dead-letter topic."""


class PoisonRecordError(PermanentError):
    """The record cannot be parsed or violates the event contract."""


class SourceMissingError(PermanentError):
    """An object the event references does not exist."""


class ConfigError(PermanentError):
    """Settings or command-line arguments are invalid."""
