"""Session-wide test hygiene: logging configuration never leaks from one test into the next."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """CLI tests call ``configure_logging`` (global); undo it after every test."""
    yield
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_pixelgate", False)]:
        root.removeHandler(handler)
