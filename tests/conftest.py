"""Suite-wide test hygiene and order.

- Logging configuration never leaks from one test into the next.
- Integration tests run first. They spend most of their time waiting on servers, joins and
  timeouts, so under pytest-xdist (``make test`` runs ``-n 2 --dist worksteal``) they start at
  once on one process while the other computes the unit tests, and the process that finishes
  first takes over tests from the end of the other's queue.
"""

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests first; otherwise the collection order (the sort is stable)."""
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)
