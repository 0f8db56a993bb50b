"""Scenes for the benchmark tests (the classical detector's suite): the same photos, smooth
gradient and overlay factories as the processor tests, built by :mod:`consumers.dev.scenes`."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest

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


@pytest.fixture(scope="session")
def photo() -> Callable[[str], np.ndarray]:
    """Factory: a scikit-image sample by name (``astronaut``, ``grass``, ...), read-only RGB."""
    return load_photo


@pytest.fixture(scope="session")
def overlay() -> SimpleNamespace:
    """Factories that draw text on a base image and return a :class:`Scene`, and ``recall``."""
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
