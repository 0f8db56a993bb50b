"""``bench/`` holds scripts, run with ``bench/`` on ``sys.path`` (they import each other as
siblings: ``from corpus import build_corpus``), not a package the editable install exposes.
Its tests import them the same way."""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH = str(Path(__file__).resolve().parents[2] / "bench")
if _BENCH not in sys.path:
    sys.path.append(_BENCH)  # after the installed packages: it must not shadow them
