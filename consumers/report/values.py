"""Any JSON-like value as escaped HTML: the report page's metrics, routes and timings.

Every string that reaches the page goes through :func:`escape`: file names, reasons and metric
keys come from uploads and are attacker-controlled.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any, Final

import numpy as np

from consumers.report.records import is_number

__all__ = ["MUTED_DASH", "escape", "fmt_ms", "fmt_number", "render_value"]

MUTED_DASH: Final = '<span class="muted">—</span>'
"""What an empty or missing value shows."""

_MAX_DEPTH: Final = 6
"""Deeper nesting is shown flat (escaped ``str``) rather than recursed into."""


def escape(value: object) -> str:
    """``str(value)`` with ``&``, ``<``, ``>`` and both quotes escaped."""
    return html.escape(str(value), quote=True)


def _fmt_magnitude(number: float) -> str:
    """A finite float with as many decimals as its magnitude deserves."""
    magnitude = abs(number)
    if magnitude == 0:
        text = "0"
    elif magnitude >= 1000:
        text = f"{number:,.0f}"
    elif magnitude >= 100:
        text = f"{number:.1f}"
    elif magnitude >= 1:
        text = f"{number:.2f}"
    elif magnitude >= 1e-3:
        text = f"{number:.4f}"
    else:
        text = f"{number:.2e}"
    return text


def fmt_number(value: float) -> str:
    """Integers with thousands separators; floats by magnitude; NaN and ±∞ spelled out."""
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "∞" if number > 0 else "−∞"
    return _fmt_magnitude(number)


def fmt_ms(value: float) -> str:
    """A duration in milliseconds, one decimal (non-finite values as :func:`fmt_number`)."""
    return f"{float(value):,.1f} ms" if math.isfinite(float(value)) else fmt_number(value)


def _render_scalar(value: Any) -> str | None:
    """A leaf value (None, bool, number, string, path) as HTML; ``None`` for anything else."""
    if value is None:
        return MUTED_DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if is_number(value):
        return f'<span class="num">{escape(fmt_number(value))}</span>'
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, PurePath):
        return f"<code>{escape(value.as_posix())}</code>"
    return None


def _render_mapping(value: Mapping[Any, Any], depth: int) -> str:
    if not value:
        return MUTED_DASH
    items = "".join(
        f"<dt>{escape(key)}</dt><dd>{render_value(item, depth + 1)}</dd>"
        for key, item in value.items()
    )
    return f'<dl class="kv">{items}</dl>'


def _render_sequence(value: Sequence[Any], depth: int) -> str:
    if not value:
        return MUTED_DASH
    if all(not isinstance(item, (Mapping, list, tuple)) for item in value):
        return ", ".join(render_value(item, depth + 1) for item in value)
    items = "".join(f"<li>{render_value(item, depth + 1)}</li>" for item in value)
    return f'<ol class="plain">{items}</ol>'


def render_value(value: Any, depth: int = 0) -> str:
    """Any JSON-like value as escaped HTML: numbers formatted, mappings as definition lists."""
    scalar = _render_scalar(value)
    if scalar is not None:
        return scalar
    if depth > _MAX_DEPTH:
        return escape(value)
    if isinstance(value, Mapping):
        return _render_mapping(value, depth)
    if isinstance(value, (list, tuple)):
        return _render_sequence(value, depth)
    return escape(value)
