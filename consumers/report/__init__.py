"""Run reports: ``report.jsonl`` (one line per input, the CLI contract) and ``report.html``.

``report.jsonl`` is for machines: one compact JSON object per input file, sorted by input path,
with the contract's keys in the contract's order (see ``CONTRACT_KEYS``)::

    {"input": ..., "status": "done"|"review"|"rejected"|"failed", "reasons": [{"code", "text"}],
     "route": {...}, "output": ..., "metrics": {...}, "timings_ms": {...}}

``report.html`` is for people: one self-contained file that opens from disk. A summary (counts by
status, elapsed time, mean and p95 latency per stage, a tally of reason codes, circuit-breaker
transitions), then one card per input: path, status, reasons, route, before/after/mask/candidate
thumbnails, metrics and timings. Thumbnails are embedded as base64 JPEG ``data:`` URIs; there is
no external CSS, JS, font or image, and a Content-Security-Policy forbids loading any. The status
filter is pure CSS (radio buttons), so the page reads fully without JavaScript.

File names and every other string come from uploads and are attacker-controlled, so all text
goes through ``html.escape``. Images are decoded only from ``ReportRow.before``, ``after``,
``mask`` and ``candidate``, which are pixelgate's own outputs, never raw uploads, and with
Pillow's default decompression-bomb limit; a file that fails to decode gets a placeholder,
never an exception.

Modules: ``records`` (the row types and ``report.jsonl``), ``page`` (``report.html``),
``thumbnails``, ``values`` (value formatting) and ``style`` (the page's CSS).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from consumers.report.page import write_html
from consumers.report.records import (
    CONTRACT_KEYS,
    STATUSES,
    BreakerTransition,
    ReportRow,
    write_jsonl,
)
from consumers.report.thumbnails import THUMBNAIL_PX

__all__ = [
    "CONTRACT_KEYS",
    "STATUSES",
    "THUMBNAIL_PX",
    "BreakerTransition",
    "ReportRow",
    "write_html",
    "write_jsonl",
    "write_reports",
]


def write_reports(
    out_dir: Path,
    rows: Sequence[ReportRow],
    *,
    title: str = "pixelgate report",
    elapsed_s: float | None = None,
    transitions: Sequence[BreakerTransition] = (),
) -> tuple[Path, Path]:
    """Write ``out_dir/report.jsonl`` and ``out_dir/report.html``; return both paths."""
    jsonl_path, html_path = out_dir / "report.jsonl", out_dir / "report.html"
    write_jsonl(jsonl_path, (row.record for row in rows))
    write_html(html_path, rows, title=title, elapsed_s=elapsed_s, transitions=transitions)
    return jsonl_path, html_path
