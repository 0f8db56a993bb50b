"""Shared scenes for the processor tests: photos, textures and rendered overlay text.

Fixture factories (``photo``, ``overlay``) with ready defaults (``astronaut``, ``smooth``,
``captioned``), built by :mod:`consumers.dev.scenes`: each overlay returns a
:class:`~consumers.dev.scenes.Scene` with the composited image, the clean image, the
ground-truth glyph mask and every pixel the overlay touched.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pytest
import torch

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


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """torch on one thread, as pixelgate runs it (``Settings.torch_threads``): the fastest
    setting for the processors' small crops and tiles, and the machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
