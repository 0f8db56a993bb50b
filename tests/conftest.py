"""Suite-wide test hygiene and order.

- Logging configuration never leaks from one test into the next.
- Scenes for the processor and benchmark tests: fixture factories (``photo``, ``overlay``) with
  ready defaults (``astronaut``, ``smooth``, ``captioned``), built by
  :mod:`consumers.dev.scenes`: each overlay returns a :class:`~consumers.dev.scenes.Scene` with
  the composited image, the clean image, the ground-truth glyph mask and every pixel the
  overlay touched.
- Integration tests run first. They spend most of their time waiting on servers, joins and
  timeouts, so under pytest-xdist (``make test`` runs ``-n 2 --dist worksteal``) they start at
  once on one process while the other computes the unit tests, and the process that finishes
  first takes over tests from the end of the other's queue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import structlog

from consumers.dev.scenes import (
    Scene,
    bar_caption,
    caption,
    gradient,
    load_photo,
    promo,
    recall,
    timestamp,
    watermark,
)


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


@pytest.fixture(scope="session")
def photo() -> Callable[[str], np.ndarray]:
    """Factory: a scikit-image sample by name (``astronaut``, ``grass``, ...), read-only RGB."""
    return load_photo


@pytest.fixture(scope="session")
def overlay() -> SimpleNamespace:
    """Factories that draw text on a base image and return a :class:`Scene`: ``caption``,
    ``bar_caption``, ``timestamp``, ``promo``, ``watermark``; plus ``recall(found, truth)``."""
    return SimpleNamespace(
        caption=caption,
        bar_caption=bar_caption,
        timestamp=timestamp,
        promo=promo,
        watermark=watermark,
        recall=recall,
    )


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return load_photo("astronaut")


@pytest.fixture(scope="session")
def smooth() -> np.ndarray:
    """A studio-like diagonal colour gradient, 256 x 384."""
    image = gradient()
    image.flags.writeable = False
    return image


@pytest.fixture(scope="session")
def captioned(astronaut: np.ndarray) -> Scene:
    """The astronaut crop with a white, outlined, shadowed caption across its lower part."""
    crop = astronaut[200:456, 64:448].copy()
    return caption(crop, "Limited edition 2024", (24, 190), size=32)
