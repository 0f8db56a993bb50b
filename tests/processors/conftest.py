"""The processor tests run torch on one thread, as pixelgate does. Their scenes (photos,
textures, rendered overlay text) are the suite-wide fixtures of ``tests/conftest.py``."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """torch on one thread, as pixelgate runs it (``Settings.torch_threads``): the fastest
    setting for the processors' small crops and tiles, and the machine is shared."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
